"""The per-window momentum axis and selective freezing of the batched engine, kept out of its step loop.

A window's momenta are checked on the host before any state moves and travel to the device in the
window's packed plan (:mod:`.window_plan`), so a momentum axis adds no host-to-device copy. Rows
that freeze keep their state on the device (:mod:`.freezing`); only when a row both freezes and
adds gradient noise are the frozen sets read to the host, once per window, because each (row,
tensor) noise generator must skip its draws exactly as the single run's does.

Neither fits a CUDA graph: a momentum axis switches SGD to the exact ``torch.optim`` path, and the
freezer makes fresh per-window tensors (its row masks), which a replay would read stale. Windows with
either run eagerly (:meth:`.cuda_graph.WindowGraphs.eligible`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from aees_gym.tasks.batched.freezing import RowFreezer


def window_momenta(momenta: Sequence[float | None] | None, base: Sequence[float]) -> list[float] | None:
    """Each row's momentum for this window when any row has its own (a momentum axis), else ``None``.

    ``None`` entries keep the row's own momentum (``base``). Raises a ``ValueError`` naming the problem.
    """
    if momenta is None or all(m is None for m in momenta):
        return None
    if len(momenta) != len(base):
        raise ValueError(f"momenta needs one value (or None) per run ({len(base)}), got {len(momenta)}.")
    values = [float(b) if m is None else float(m) for m, b in zip(momenta, base, strict=True)]
    if not all(0.0 <= v < 1.0 for v in values):
        raise ValueError(f"momenta must be in [0, 1), got {values}; give each row a momentum in [0, 1) or None.")
    return values


@dataclass(frozen=True)
class Axes:
    """What a window's steps need beyond the plan: whether it has a momentum axis, and the freezer state."""

    momentum_axis: bool = False
    freezer: RowFreezer | None = None  #: the engine's freezer when any row freezes
    frozen_host: list[list[int]] | None = None  #: rows' frozen tensor indices for the noise draws

    def step(self, grads: Sequence[torch.Tensor], active: torch.Tensor | None) -> None:
        """The freezer's per-step EMA update, before the noise (as the single run's freezer)."""
        if self.freezer is not None:
            self.freezer.step(grads, active)

    @property
    def frozen(self) -> torch.Tensor | None:
        return None if self.freezer is None else self.freezer.frozen


def begin_axes(freezer: RowFreezer, counts: Sequence[int], noise_stds: Sequence[float], momentum_axis: bool) -> tuple[Axes, torch.Tensor | None]:
    """Open the window's axes; returns them and each row's frozen share ``[N]`` (device) when any row freezes."""
    if not freezer.active:
        return Axes(momentum_axis), None
    freezer.begin_window(counts)
    noisy_freezers = [i for i, k in enumerate(counts) if k and noise_stds[i] > 0 and freezer.enabled[i]]
    return Axes(momentum_axis, freezer, freezer.host_frozen(noisy_freezers)), freezer.fractions()


def end_axes(axes: Axes, counts: Sequence[int]) -> None:
    """Rows that stepped set their next window's frozen sets."""
    if axes.freezer is not None:
        axes.freezer.decide(counts)
