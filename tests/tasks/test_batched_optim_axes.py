"""The batched optimizer's momentum axis and frozen tensors against torch.optim, step for step.

torch.optim is driven the way the single env drives it: the window's momentum written into the
param group (``momentum`` or β1 of ``betas``) and a frozen tensor's ``.grad`` released before the step.
"""

from __future__ import annotations

import pytest
import torch

from aees_gym.tasks.batched.optim import BatchedOptimizer

STEPS = 40
MOMENTA = [0.9, 0.0, 0.5]  # per window of 5 steps, cycled; 0 leaves SGD's buffer stale


def _momentum(t, row):
    return MOMENTA[(t // 5 + row) % len(MOMENTA)]


def _frozen(t, row, j):
    return (t // 5 + row + j) % 3 == 0  # each tensor sits out some windows, differently per row


def _data(n):
    gen = torch.Generator().manual_seed(0)
    w, b = torch.randn(n, 5, 3, generator=gen), torch.randn(n, 5, generator=gen)
    return w, b, [(torch.randn(8, 3, generator=gen), torch.randn(8, 5, generator=gen)) for _ in range(STEPS)]


def _loss(w, b, x, y):
    return ((x @ w.transpose(-1, -2) + b.unsqueeze(-2) - y) ** 2).mean(dim=(-1, -2))


def _torch_run(kind, w0, b0, data, row, freeze):
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[kind]
    extra = {"momentum": 0.0} if kind == "sgd" else {}
    opt = cls([w, b], lr=0.05 if kind == "sgd" else 1e-2, weight_decay=0.01, **extra)
    out = []
    for t, (x, y) in enumerate(data):
        opt.zero_grad()
        _loss(w, b, x, y).backward()
        group = opt.param_groups[0]
        if kind == "sgd":
            group["momentum"] = _momentum(t, row)
        else:
            group["betas"] = (_momentum(t, row), 0.999)
        if freeze:
            for j, p in enumerate((w, b)):
                if _frozen(t, row, j):
                    p.grad = None
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out


@pytest.mark.parametrize("freeze", [False, True], ids=["momentum-axis", "momentum-axis-and-freezing"])
@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_rows_follow_torch_optim_with_per_window_momentum_and_frozen_tensors(kind, freeze):
    n = 3
    w0, b0, data = _data(n)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = BatchedOptimizer([w, b], kind)
    opt.weight_decay.fill_(0.01)
    lr = torch.full((n,), 0.05 if kind == "sgd" else 1e-2, dtype=torch.float64)
    got = []
    for t, (x, y) in enumerate(data):
        opt.zero_grad()
        _loss(w, b, x, y).sum().backward()
        momentum = torch.tensor([_momentum(t, i) for i in range(n)], dtype=torch.float64)
        frozen = torch.tensor([[_frozen(t, i, j) for j in range(2)] for i in range(n)]) if freeze else None
        opt.step(lr, momentum=momentum, frozen=frozen)
        got.append((w.detach().clone(), b.detach().clone()))
    for i in range(n):
        want = _torch_run(kind, w0[i], b0[i], data, i, freeze)
        for t, ((gw, gb), (ww, wb)) in enumerate(zip(got, want, strict=True)):
            torch.testing.assert_close(gw[i], ww, rtol=1e-6, atol=1e-7, msg=f"row {i} step {t} weight")
            torch.testing.assert_close(gb[i], wb, rtol=1e-6, atol=1e-7, msg=f"row {i} step {t} bias")
    if freeze:  # frozen steps were skipped per tensor, as torch.optim's per-tensor step counts are
        assert not torch.equal(opt.tensor_steps[0], opt.tensor_steps[1])


def test_frozen_must_have_one_column_per_tensor():
    w = torch.zeros(2, 3, requires_grad=True)
    opt = BatchedOptimizer([w], "adamw")
    w.grad = torch.zeros_like(w)
    with pytest.raises(ValueError, match=r"frozen must be a bool tensor of shape \[2, 1\]"):
        opt.step(torch.ones(2, dtype=torch.float64), frozen=torch.zeros(2, 2, dtype=torch.bool))
