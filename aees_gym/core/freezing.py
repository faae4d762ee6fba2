"""Selective freezing: skip the updates of parameter tensors whose gradients have faded.

An on-device EMA of every parameter tensor's gradient norm (``ema ← β·ema + (1 − β)·‖g‖``, started
at the first norm) is updated at each optimizer step without any host read. When a window closes,
the tensors whose EMA is below the threshold become the *frozen* set of the next window; the mask
reaches the host in the same transfer as the window's losses. A frozen tensor's ``.grad`` is
released just before ``optimizer.step()``, and every torch optimizer skips a tensor without a
gradient, so neither the tensor nor its optimizer state (momentum buffers, Adam moments, ``step``,
weight decay) changes. Its EMA keeps following the real gradients, so it unfreezes when they revive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


class GradientFreezer:
    """The gradient-norm EMA and frozen set of one optimizer's parameter tensors.

    Args:
        params: The optimizer's parameter tensors, in param-group order.
        threshold: EMA below which a tensor is frozen for the next window.
        beta: Decay of the EMA, in [0, 1).
        device: Device of the EMA (that of the parameters).
    """

    def __init__(self, params: Sequence[torch.Tensor], threshold: float, beta: float, device: torch.device) -> None:
        self.params = list(params)
        self.threshold = float(threshold)
        self.beta = float(beta)
        self.ema = torch.zeros(len(self.params), dtype=torch.float32, device=device)
        self._zero = torch.zeros((), dtype=torch.float32, device=device)
        self._numels = [p.numel() for p in self.params]
        self.reset()

    def reset(self) -> None:
        """Forget the EMA and unfreeze everything (a new run)."""
        self.started = False
        self.frozen: list[int] = []

    @property
    def fraction(self) -> float:
        """Share of the parameters, by element count, in the current frozen set."""
        total = sum(self._numels)
        return sum(self._numels[i] for i in self.frozen) / total if total else 0.0

    def step(self) -> None:
        """Fold this step's gradient norms into the EMA, then release the frozen tensors' gradients."""
        grads = [self._zero if p.grad is None else p.grad for p in self.params]
        norms = torch.stack(torch._foreach_norm(grads)).to(self.ema.dtype)
        if self.started:
            self.ema.lerp_(norms, 1.0 - self.beta)
        else:
            self.ema.copy_(norms)
            self.started = True
        for index in self.frozen:
            self.params[index].grad = None

    def below_threshold(self) -> torch.Tensor:
        """1.0 for every tensor whose EMA is below the threshold (a device tensor, for one joint transfer)."""
        return (self.ema < self.threshold).float()

    def decide(self, flags: Sequence[float]) -> None:
        """Set the next window's frozen set from host values of :meth:`below_threshold`."""
        self.frozen = [i for i, flag in enumerate(flags) if flag] if self.started else []

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.detach().cpu().clone(), "started": self.started, "frozen": list(self.frozen)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ema.copy_(state["ema"].to(self.ema.device))
        self.started = bool(state["started"])
        self.frozen = [int(i) for i in state["frozen"]]
