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
        #: ``[P, N]``: each parameter tensor's own step count per row (they differ once tensors are frozen).
        self.tensor_steps = torch.zeros(len(self.params), n, **f64)
        #: ``[P, N]``: whether each tensor's SGD momentum buffer exists (torch creates it at the first nonzero momentum).
        self.has_buffer = torch.zeros(len(self.params), n, dtype=torch.bool, device=device)
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
        self.tensor_steps.index_fill_(1, index, 0.0)
        self.has_buffer.index_fill_(1, index, False)
        for tensors in self.state:
            for t in tensors:
                t.index_fill_(0, index, 0.0)

    @torch.no_grad()
    def step(
        self,
        lr: torch.Tensor,
        *,
        momentum: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
        frozen: torch.Tensor | None = None,
    ) -> None:
        """One optimizer step of every active row.

        Args:
            lr: ``[N]`` learning rate of each row for this step (base LR × schedule × multiplier).
            momentum: ``[N]`` SGD momentum / Adam beta1 for this step (default :attr:`momentum`).
                Given explicitly (a momentum axis), SGD follows ``torch.optim.SGD`` exactly when a
                row's momentum changes between steps: at momentum 0 the step is the plain gradient
                and the momentum buffer is left as it was; a buffer starts as the gradient at the
                first step with nonzero momentum.
            active: ``[N]`` bool; inactive rows keep their parameters, state and step count exactly.
                ``None`` means all rows are active (the fast path).
            frozen: ``[N, P]`` bool, one column per parameter tensor: a frozen (row, tensor) is
                skipped as ``torch.optim`` skips a tensor without ``.grad`` — the tensor, its state,
                its weight decay and its own step count stay as they were.
        """
        n = self.n_runs
        if lr.shape != (n,):
            raise ValueError(f"lr must have shape [{n}] (one value per run), got {tuple(lr.shape)}.")
        beta1 = self.momentum if momentum is None else momentum
        if beta1.shape != (n,):
            raise ValueError(f"momentum must have shape [{n}], got {tuple(beta1.shape)}.")
        if active is not None and (active.shape != (n,) or active.dtype != torch.bool):
            raise ValueError(f"active must be a bool tensor of shape [{n}], got {active.dtype} {tuple(active.shape)}.")
        if frozen is not None and (frozen.shape != (n, len(self.params)) or frozen.dtype != torch.bool):
            raise ValueError(f"frozen must be a bool tensor of shape [{n}, {len(self.params)}], got {frozen.dtype} {tuple(frozen.shape)}.")
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("Every stacked parameter needs a .grad before step(); run backward first.")
        # Rows (per tensor) that take this step; None: every row of every tensor.
        stepping = None
        if frozen is not None:
            rows = torch.ones(n, dtype=torch.bool, device=lr.device) if active is None else active
            stepping = (rows.unsqueeze(1) & ~frozen).t()  # [P, N]
        elif active is not None:
            stepping = active.unsqueeze(0).expand(len(self.params), n)
        per_tensor = [[p, *(tensors[j] for tensors in self.state)] for j, p in enumerate(self.params)]
        backup = [[t.clone() for t in tracked] for tracked in per_tensor] if stepping is not None else None
        lr64, beta64 = lr.to(torch.float64), beta1.to(torch.float64)
        steps = self.tensor_steps if frozen is not None else self.steps.expand(len(self.params), n)
        if self.kind == "sgd":
            self._sgd(grads, lr64, beta64, exact=momentum is not None)
        else:
            self._adam(grads, lr64, beta64, steps + 1.0)
        if stepping is not None:
            # Rows that sat out get back exactly what they had (NaN arithmetic in them included).
            for j, (tracked, old) in enumerate(zip(per_tensor, backup, strict=True)):
                for t, saved in zip(tracked, old, strict=True):
                    t.copy_(torch.where(row_view(stepping[j], t), t, saved))
        self.steps.add_(1.0 if active is None else active.to(torch.float64))
        nonzero = beta64 != 0
        if stepping is None:
            self.tensor_steps.add_(1.0)
            self.has_buffer |= nonzero
        else:
            self.tensor_steps.add_(stepping.to(torch.float64))
            self.has_buffer |= stepping & nonzero

    def _scratch(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two reusable buffers shaped like ``p``: allocating step-sized temporaries costs more than the math."""
        if self._work is None or self._work[0].dtype != p.dtype:
            numel = max(q.numel() for q in self.params)
            self._work = tuple(torch.empty(numel, dtype=p.dtype, device=p.device) for _ in range(2))
        return tuple(w[: p.numel()].view_as(p) for w in self._work)  # type: ignore[return-value]

    def _adam(self, grads: list[torch.Tensor], lr: torch.Tensor, beta1: torch.Tensor, step: torch.Tensor) -> None:
        """``step`` ``[P, N]``: each tensor's step number in each row (torch.optim counts steps per tensor)."""
        dtype = self.params[0].dtype
        shared = step.stride(0) == 0  # one count for every tensor: compute the corrections once
        weight1 = (1.0 - beta1).to(dtype)
        wd = self.weight_decay
        decay = (1.0 - lr * wd).to(dtype) if self.kind == "adamw" else None
        wd = wd.to(dtype)
        exp_avgs, exp_avg_sqs = self.state
        for j, (p, g, m, v) in enumerate(zip(self.params, grads, exp_avgs, exp_avg_sqs, strict=True)):
            if j == 0 or not shared:
                # torch.optim's single-tensor path computes these in Python floats (float64), then casts.
                bias1 = 1.0 - torch.pow(beta1, step[j])
                bias2_sqrt = torch.sqrt(1.0 - torch.pow(torch.full_like(step[j], self.beta2), step[j]))
                neg_step_size = (-lr / bias1).to(dtype)
                bias2_sqrt = bias2_sqrt.to(dtype)
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

    def _sgd(self, grads: list[torch.Tensor], lr: torch.Tensor, momentum: torch.Tensor, *, exact: bool) -> None:
        dtype = self.params[0].dtype
        neg_lr = (-lr).to(dtype)
        wd = self.weight_decay.to(dtype)
        nonzero = momentum != 0
        for j, (p, g, buf) in enumerate(zip(self.params, grads, self.state[0], strict=True)):
            # A buffer starts as the (decayed) gradient (torch clones it): carry 0 until it exists.
            carry = (momentum * self.has_buffer[j]).to(dtype)
            _, decayed = self._scratch(p)
            d = torch.addcmul(g, p, row_view(wd, p), out=decayed)
            if not exact:  # momentum fixed for the run: at 0 the buffer is just the gradient, never read again
                buf.mul_(row_view(carry, p)).add_(d)
                p.addcmul_(buf, row_view(neg_lr, p))
                continue
            use = row_view(nonzero, p)
            moved = buf.mul(row_view(carry, p)).add_(d)
            buf.copy_(torch.where(use, moved, buf))
            p.addcmul_(torch.where(use, moved, d), row_view(neg_lr, p))
