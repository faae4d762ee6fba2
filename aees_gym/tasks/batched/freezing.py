"""Selective freezing for N stacked runs, with the single run's semantics (:mod:`aees_gym.core.freezing`).

Each row keeps an EMA of each parameter tensor's gradient norm (``ema ← β·ema + (1 − β)·‖g‖``,
started at the row's first norm), updated at every step the row takes, before gradient noise.
When a row's window closes, its tensors whose EMA is below its threshold form its frozen set for
the next window; a frozen (row, tensor) is skipped by the optimizer (the tensor, its state and its
step count stay) and draws no gradient noise. Rows without ``freeze_threshold`` never freeze.

The decision stays on the device. The host needs the frozen sets only to skip noise draws (each
row and tensor has its own generator), so they are read once per window, and only when a row that
freezes also adds noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from aees_gym.tasks.classification import to_device_async


class RowFreezer:
    """Gradient-norm EMAs ``[N, P]`` and frozen sets of ``n_runs`` rows over stacked ``params``."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        n, device = self.params[0].shape[0], self.params[0].device
        self.n_runs = n
        self.ema = torch.zeros(n, len(self.params), dtype=torch.float32, device=device)
        #: ``[N, P]`` bool: the tensors each row skips in the current window.
        self.frozen = torch.zeros(n, len(self.params), dtype=torch.bool, device=device)
        self.threshold = torch.full((n,), -torch.inf, dtype=torch.float32, device=device)
        self.weight = torch.zeros(n, 1, dtype=torch.float32, device=device)  # 1 − β per row
        self.enabled = [False] * n
        self._started = [False] * n
        numels = torch.tensor([float(p[0].numel()) for p in self.params], dtype=torch.float64, device=device)
        self._shares = numels / numels.sum()
        self._start: torch.Tensor | None = None

    def reset(self, row: int, threshold: float | None, beta: float) -> None:
        """A new run in ``row``: nothing frozen, the EMA restarts at its next norm."""
        self.enabled[row] = threshold is not None
        self._started[row] = False
        with torch.no_grad():
            self.frozen[row] = False
            self.threshold[row] = -torch.inf if threshold is None else float(threshold)
            self.weight[row] = 1.0 - float(beta)

    @property
    def active(self) -> bool:
        return any(self.enabled)

    def fractions(self) -> torch.Tensor:
        """``[N]`` share of each row's parameters (by element count) in its current frozen set, on the device."""
        return self.frozen.to(torch.float64) @ self._shares

    def host_frozen(self, rows: Sequence[int]) -> list[list[int]]:
        """Each row's frozen tensor indices on the host (one read; empty lists when ``rows`` is empty)."""
        if not rows:
            return [[] for _ in range(self.n_runs)]
        flags = self.frozen.tolist()
        return [[j for j, f in enumerate(flags[i]) if f] if i in rows else [] for i in range(self.n_runs)]

    def begin_window(self, counts: Sequence[int]) -> None:
        """Rows whose first step of their run is in this window start their EMA at that step's norm."""
        starting = [bool(k) and self.enabled[i] and not self._started[i] for i, k in enumerate(counts)]
        self._start = to_device_async(torch.tensor(starting), self.ema.device).unsqueeze(1) if any(starting) else None
        for i, flag in enumerate(starting):
            self._started[i] = self._started[i] or flag

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], active: torch.Tensor | None) -> None:
        """Fold this step's per-row gradient norms into the EMA of the rows that step (``active`` ``[N]``, None: all)."""
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1).to(self.ema.dtype)
        moved = self.ema.lerp(norms, self.weight)
        if self._start is not None:
            moved = torch.where(self._start, norms, moved)
            self._start = None  # only a run's first step copies
        self.ema.copy_(moved if active is None else torch.where(active.unsqueeze(1), moved, self.ema))

    @torch.no_grad()
    def decide(self, counts: Sequence[int]) -> None:
        """Rows that stepped in this window set their next window's frozen set from their EMA."""
        stepped = [bool(k) and self.enabled[i] for i, k in enumerate(counts)]
        if not any(stepped):
            return
        mask = to_device_async(torch.tensor(stepped), self.ema.device).unsqueeze(1)  # no host wait on a GPU
        self.frozen.copy_(torch.where(mask, self.ema < self.threshold.unsqueeze(1), self.frozen))
