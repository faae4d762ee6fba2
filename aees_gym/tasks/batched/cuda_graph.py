"""Whole training windows of the batched engine replayed as CUDA graphs.

A window in which every row takes the same number of steps ``W``, with no gradient noise and no
dropout, runs the same kernels on the same buffers every time: only the plan's values (LRs, batch
indices) change. Such a window is captured once per ``W`` into a ``torch.cuda.CUDAGraph`` whose
static input is the packed plan buffer on the device, and replayed afterwards: one launch for the
``W`` steps of all rows instead of some hundred kernel launches per step, and no host work between
steps. The kernels are the eager window's, so the results are the same (tested against eager).

Windows outside that shape (rows with different step counts, noise draws or dropout masks, which
use per-row generators the host advances, a momentum axis or rows that freeze) run eagerly, as on CPU. The first uniform window of each
``W`` also runs eagerly, on a side stream: it warms up the kernels and autograd before capture.
Should capture fail (an operation that torch or the driver cannot capture), the engine warns once
and runs every later window eagerly; :attr:`WindowGraphs.failure` says why.

A replay re-reads the memory the captured kernels read. So every per-window input of the window's
steps must come from the packed plan (``window_plan``) or from a persistent buffer written in place
(like the optimizer's per-row ``weight_decay`` and ``momentum``); a tensor made afresh each window
would be read stale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: Widths whose graphs are kept (each holds its own activation memory); later widths run eagerly.
MAX_GRAPHS = 4


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    plan: torch.Tensor  # static packed plan on the device: what the graph reads
    losses: torch.Tensor  # static [W, N] step losses: what the graph writes
    norms: torch.Tensor | None


class WindowGraphs:
    """Capture-and-replay of uniform windows for one engine on one CUDA device.

    Args:
        device: The engine's device; graphs are used only when it is a GPU.
        enabled: ``False`` runs every window eagerly (the reference for equivalence tests).
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.enabled = enabled and device.type == "cuda"
        self.device = device
        self._warm: set[tuple[int, bool]] = set()
        self._graphs: dict[tuple[int, bool], _Captured] = {}
        #: Windows replayed from a graph and windows captured (for tests and benchmarks).
        self.replays = 0
        self.captures = 0
        #: Why capture failed (then every window runs eagerly), or ``None``.
        self.failure: str | None = None

    def eligible(
        self, counts: Sequence[int], noise_stds: Sequence[float], dropout_drew: bool, *, momentum_axis: bool = False, freezing: bool = False
    ) -> bool:
        """Whether this window can be a graph: every row steps ``max(counts)`` times, none draws noise or
        dropout, and it has no momentum axis and no freezing rows (their per-window inputs are not in
        the static plan and buffers a graph re-reads; see :mod:`.window_axes`)."""
        if not self.enabled or dropout_drew or momentum_axis or freezing or not counts:
            return False
        width = counts[0]
        return width > 0 and all(k == width for k in counts) and all(float(s) == 0.0 for s in noise_stds)

    def static_plan(self, key: tuple[int, bool]) -> torch.Tensor | None:
        """The device buffer the graph of ``key`` reads its plan from, once captured."""
        captured = self._graphs.get(key)
        return captured.plan if captured is not None else None

    def run(
        self,
        key: tuple[int, bool],
        plan: torch.Tensor,
        steps: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], None],
        n: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """Run the window ``steps(plan, losses, norms)`` from its graph; ``None`` means run it eagerly.

        ``key`` is ``(W, track_grad_norms)``; ``plan`` the packed plan on the device (the static
        buffer when :meth:`static_plan` gave one). Returns fresh ``[W, N]`` losses (and norms).
        """
        width, tracked = key
        captured = self._graphs.get(key)
        if captured is None:
            if len(self._graphs) >= MAX_GRAPHS:
                return None  # too many widths: the caller runs the window eagerly
            if key not in self._warm:
                self._warm.add(key)
                return self._warm_up(key, plan, steps, n)
            try:
                captured = self._capture(key, plan, steps, n)
            except RuntimeError as exc:  # an op this torch/driver cannot capture: stay correct, run eagerly
                self.enabled, self.failure = False, f"{type(exc).__name__}: {exc}"
                warnings.warn(f"CUDA-graph capture of a training window failed, windows run eagerly from now on: {self.failure}",
                              RuntimeWarning, stacklevel=3)
                return None
        elif plan.data_ptr() != captured.plan.data_ptr():
            captured.plan.copy_(plan)
        captured.graph.replay()
        self.replays += 1
        # Copies: the static buffers are overwritten by the next replay.
        return captured.losses.clone(), (captured.norms.clone() if captured.norms is not None else None)

    def _warm_up(self, key: tuple[int, bool], plan: torch.Tensor, steps: Callable, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The window run eagerly on a side stream, as capture needs (lazy initialisations happen here)."""
        width, tracked = key
        losses = torch.empty(width, n, device=self.device)
        norms = torch.empty(width, n, device=self.device) if tracked else None
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            steps(plan, losses, norms)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return losses, norms

    def _capture(self, key: tuple[int, bool], plan: torch.Tensor, steps: Callable, n: int) -> _Captured:
        width, tracked = key
        static = plan.clone()
        losses = torch.empty(width, n, device=self.device)
        norms = torch.empty(width, n, device=self.device) if tracked else None
        graph = torch.cuda.CUDAGraph()
        # Capture records kernels without running them; the replay right after runs this window.
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            steps(static, losses, norms)
        captured = self._graphs[key] = _Captured(graph, static, losses, norms)
        self.captures += 1
        return captured
