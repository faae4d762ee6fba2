"""Progress over runs (a tqdm bar when tqdm is installed, else one plain line per run) and within runs."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _tqdm() -> Any | None:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Counts finished items of a known total.

    Args:
        total: Items to finish.
        desc: Short label (``runs``, ``training``).
        unit: What one item is (``run``, ``model``).
        enabled: False prints nothing.
        stream: Where to write (stderr by default, so stdout stays parseable).
    """

    def __init__(self, total: int, desc: str, *, unit: str = "run", enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        #: Windows run so far (batched executor): shown beside the count of finished runs.
        self.windows = 0
        tqdm = _tqdm() if enabled and total else None
        self._bar = None if tqdm is None else tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def advance(self, message: str) -> None:
        """One more item finished; ``message`` says which and how it went."""
        self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(message[:60], refresh=False)
            self._bar.update(1)
        else:
            print(f"[{self.done}/{self.total}] {self.desc}: {message}", file=self.stream, flush=True)

    def add_windows(self, count: int) -> None:
        """``count`` more windows ran (one batched step of ``count`` runs); shown in the bar's postfix."""
        self.windows += count
        if self.enabled and self._bar is not None:
            self._bar.set_postfix_str(f"{self.windows} windows", refresh=True)

    def write(self, message: str) -> None:
        """A line that must stay visible (failures, corrupt files), printed above the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def window_callback(self, label: str) -> Any:
        """A ``(done, total)`` callback that shows progress inside one long run (serial executor)."""
        tqdm = _tqdm() if self.enabled else None
        if tqdm is None:
            return None
        state: dict[str, Any] = {}

        def update(done: int, total: int) -> None:
            bar = state.get("bar")
            if bar is None:
                bar = state["bar"] = tqdm(total=total, desc=label[:40], unit="window", leave=False, position=1, file=self.stream)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return update

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
