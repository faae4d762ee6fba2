"""A functional optimizer for N independent runs whose parameters are stacked along dim 0.

``torch.optim`` keeps one learning rate per param group, so N runs stacked into one tensor per
parameter cannot each get their own LR (or momentum) through it. :class:`BatchedOptimizer` applies
AdamW, Adam (L2 weight decay) or SGD with momentum to every row at once with per-row
hyperparameter tensors of shape ``[N]``, reproducing ``torch.optim``'s single-tensor arithmetic
(same operation order, bias corrections computed in float64 like its Python-float path), so row
``i`` follows the run that ``torch.optim`` would produce with that row's settings.

Rows are independent: no operation mixes rows, so a non-finite row never reaches another. Steps
read nothing back to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

OPTIMIZER_KINDS = ("adamw", "adam", "sgd")


def row_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` of shape ``[N]`` viewed as ``[N, 1, …, 1]`` to broadcast over a stacked ``like``."""
    return values.view(values.shape[0], *([1] * (like.dim() - 1)))


class BatchedOptimizer:
    """AdamW / Adam / SGD over parameters stacked along dim 0, with per-row hyperparameters.

    Args:
        params: Stacked parameters, each of shape ``[N, ...]`` (one row per run); their ``.grad``
            holds each row's gradient when :meth:`step` is called.
        kind: ``adamw``, ``adam`` (L2 weight decay added to the gradient, like ``torch.optim.Adam``)
            or ``sgd`` (momentum, dampening 0, no Nesterov; the first step's buffer is the gradient).
        betas: Adam's ``(beta1, beta2)``; ``beta1`` is only the initial value of :attr:`momentum`.
        eps: Adam's epsilon.

    Per-row settings live in ``[N]`` float64 tensors on the parameters' device that the caller
    may write into: :attr:`weight_decay` and :attr:`momentum` (SGD momentum or Adam's beta1).
    """

    def __init__(
        self, params: Sequence[torch.Tensor], kind: str, *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if kind not in OPTIMIZER_KINDS:
            raise ValueError(f"kind={kind!r} is not valid; choose one of {list(OPTIMIZER_KINDS)}.")
        self.params = list(params)
        if not self.params:
            raise ValueError("BatchedOptimizer needs at least one stacked parameter.")
        n = self.params[0].shape[0]
        if any(p.dim() < 1 or p.shape[0] != n for p in self.params):
            raise ValueError(f"Every parameter must be stacked along dim 0 with the same N; got {[tuple(p.shape) for p in self.params]}.")
        self.kind, self.n_runs, self.beta2, self.eps = kind, n, float(betas[1]), float(eps)
        device = self.params[0].device
        f64 = {"dtype": torch.float64, "device": device}
        self.weight_decay = torch.zeros(n, **f64)
        self.momentum = torch.full((n,), float(betas[0]) if kind != "sgd" else 0.0, **f64)
        #: Optimizer steps taken by each row since its last reset (float64 for the bias corrections).
        self.steps = torch.zeros(n, **f64)
        self._work: tuple[torch.Tensor, torch.Tensor] | None = None
        with torch.no_grad():
            if kind == "sgd":
                self.state = [[torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]]
            else:  # exp_avg, exp_avg_sq
                self.state = [[torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params] for _ in range(2)]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def reset_rows(self, rows: torch.Tensor | Sequence[int]) -> None:
        """Forget the state of ``rows`` (a run restarts there): moments, buffers and step counts."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.steps.device)
        self.steps.index_fill_(0, index, 0.0)
        for tensors in self.state:
            for t in tensors:
                t.index_fill_(0, index, 0.0)

    @torch.no_grad()
    def step(self, lr: torch.Tensor, *, momentum: torch.Tensor | None = None, active: torch.Tensor | None = None) -> None:
        """One optimizer step of every active row.

        Args:
            lr: ``[N]`` learning rate of each row for this step (base LR × schedule × multiplier).
            momentum: ``[N]`` SGD momentum / Adam beta1 for this step (default :attr:`momentum`).
            active: ``[N]`` bool; inactive rows keep their parameters, state and step count exactly.
                ``None`` means all rows are active (the fast path).
        """
        n = self.n_runs
        if lr.shape != (n,):
            raise ValueError(f"lr must have shape [{n}] (one value per run), got {tuple(lr.shape)}.")
        beta1 = self.momentum if momentum is None else momentum
        if beta1.shape != (n,):
            raise ValueError(f"momentum must have shape [{n}], got {tuple(beta1.shape)}.")
        if active is not None and (active.shape != (n,) or active.dtype != torch.bool):
            raise ValueError(f"active must be a bool tensor of shape [{n}], got {active.dtype} {tuple(active.shape)}.")
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("Every stacked parameter needs a .grad before step(); run backward first.")
        tracked = self.params + [t for tensors in self.state for t in tensors]
        backup = [t.clone() for t in tracked] if active is not None else None
        lr64 = lr.to(torch.float64)
        if self.kind == "sgd":
            self._sgd(grads, lr64, beta1.to(torch.float64))
        else:
            self._adam(grads, lr64, beta1.to(torch.float64))
        if active is None:
            self.steps.add_(1.0)
        else:
            # Rows that sat out get back exactly what they had (NaN arithmetic in them included).
            for t, old in zip(tracked, backup, strict=True):
                t.copy_(torch.where(row_view(active, t), t, old))
            self.steps.add_(active.to(torch.float64))

    def _scratch(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two reusable buffers shaped like ``p``: allocating step-sized temporaries costs more than the math."""
        if self._work is None or self._work[0].dtype != p.dtype:
            numel = max(q.numel() for q in self.params)
            self._work = tuple(torch.empty(numel, dtype=p.dtype, device=p.device) for _ in range(2))
        return tuple(w[: p.numel()].view_as(p) for w in self._work)  # type: ignore[return-value]

    def _adam(self, grads: list[torch.Tensor], lr: torch.Tensor, beta1: torch.Tensor) -> None:
        dtype = self.params[0].dtype
        step = self.steps + 1.0
        # torch.optim's single-tensor path computes these in Python floats (float64), then casts.
        bias1 = 1.0 - torch.pow(beta1, step)
        bias2_sqrt = torch.sqrt(1.0 - torch.pow(torch.full_like(step, self.beta2), step))
        neg_step_size = (-lr / bias1).to(dtype)
        bias2_sqrt = bias2_sqrt.to(dtype)
        weight1 = (1.0 - beta1).to(dtype)
        wd = self.weight_decay
        decay = (1.0 - lr * wd).to(dtype) if self.kind == "adamw" else None
        wd = wd.to(dtype)
        exp_avgs, exp_avg_sqs = self.state
        for p, g, m, v in zip(self.params, grads, exp_avgs, exp_avg_sqs, strict=True):
            denom, update = self._scratch(p)
            if decay is not None:
                p.mul_(row_view(decay, p))
            else:  # grad + wd·param, as Adam's L2 term (the .grad itself stays untouched)
                g = torch.addcmul(g, p, row_view(wd, p), out=update)
            m.lerp_(g, row_view(weight1, p))
            v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            torch.sqrt(v, out=denom).div_(row_view(bias2_sqrt, p)).add_(self.eps)
            # torch.optim's addcdiv computes param + (value·exp_avg) / denom; the same order, value per row.
            p.addcdiv_(torch.mul(m, row_view(neg_step_size, p), out=update), denom)

    def _sgd(self, grads: list[torch.Tensor], lr: torch.Tensor, momentum: torch.Tensor) -> None:
        dtype = self.params[0].dtype
        # First step: buffer = gradient (torch clones it); momentum 0 keeps buffer = gradient too.
        carry = (momentum * (self.steps > 0)).to(dtype)
        neg_lr = (-lr).to(dtype)
        wd = self.weight_decay.to(dtype)
        for p, g, buf in zip(self.params, grads, self.state[0], strict=True):
            _, decayed = self._scratch(p)
            buf.mul_(row_view(carry, p)).add_(torch.addcmul(g, p, row_view(wd, p), out=decayed))
            p.addcmul_(buf, row_view(neg_lr, p))
