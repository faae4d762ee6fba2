"""The batched functional optimizer against torch.optim, step for step."""

from __future__ import annotations

import pytest
import torch

from aees_gym.tasks.batched.optim import BatchedOptimizer

STEPS = 60


def _torch_optimizer(kind, params, lr, wd, momentum):
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=(momentum, 0.999))
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=(momentum, 0.999))
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)


def _problem(seed, n):
    """A small regression per row: stacked weights [n, 5, 3] and bias [n, 5], fixed data per step."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 5, 3, generator=gen)
    b = torch.randn(n, 5, generator=gen)
    data = [(torch.randn(8, 3, generator=gen), torch.randn(8, 5, generator=gen)) for _ in range(STEPS)]
    return w, b, data


def _loss(w, b, x, y):
    # w [..., 5, 3]; works for one run (2-D) and a stack (3-D) alike.
    pred = x @ w.transpose(-1, -2) + b.unsqueeze(-2)
    return ((pred - y) ** 2).mean(dim=(-1, -2))


def _run_torch(kind, w0, b0, data, lr, wd, momentum, lr_of_step=None):
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = _torch_optimizer(kind, [w, b], lr, wd, momentum)
    out = []
    for t, (x, y) in enumerate(data):
        if lr_of_step is not None:
            opt.param_groups[0]["lr"] = lr_of_step(t)
        opt.zero_grad()
        _loss(w, b, x, y).backward()
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out


def _run_batched(kind, w0, b0, data, lrs, wds, momenta, active_of_step=None, lr_of_step=None):
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = BatchedOptimizer([w, b], kind)
    opt.weight_decay.copy_(torch.tensor(wds, dtype=torch.float64))
    opt.momentum.copy_(torch.tensor(momenta, dtype=torch.float64))
    lr = torch.tensor(lrs, dtype=torch.float64)
    out = []
    for t, (x, y) in enumerate(data):
        opt.zero_grad()
        _loss(w, b, x, y).sum().backward()
        step_lr = lr * lr_of_step(t) if lr_of_step is not None else lr
        opt.step(step_lr, active=None if active_of_step is None else active_of_step(t))
        out.append((w.detach().clone(), b.detach().clone()))
    return out


def _assert_close(got, want, rtol=1e-6, atol=1e-7):
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_one_run_matches_torch_optim_step_for_step(kind):
    w0, b0, data = _problem(0, 1)
    momentum = 0.9
    want = _run_torch(kind, w0[0], b0[0], data, 0.01, 0.05, momentum)
    got = _run_batched(kind, w0, b0, data, [0.01], [0.05], [momentum])
    for (gw, gb), (ww, wb) in zip(got, want, strict=True):
        _assert_close(gw[0], ww)
        _assert_close(gb[0], wb)


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_each_row_matches_its_own_torch_run_with_its_own_lr_wd_momentum(kind):
    lrs, wds = [0.003, 0.01, 0.03, 0.001], [0.0, 0.01, 0.1, 0.05]
    momenta = [0.9, 0.8, 0.0, 0.95] if kind == "sgd" else [0.9, 0.8, 0.85, 0.95]
    w0, b0, data = _problem(1, 4)
    got = _run_batched(kind, w0, b0, data, lrs, wds, momenta, lr_of_step=lambda t: 0.5 ** (t // 20))
    for i in range(4):
        want = _run_torch(kind, w0[i], b0[i], data, lrs[i], wds[i], momenta[i], lr_of_step=lambda t, i=i: lrs[i] * 0.5 ** (t // 20))
        for (gw, gb), (ww, wb) in zip(got, want, strict=True):
            _assert_close(gw[i], ww)
            _assert_close(gb[i], wb)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_inactive_rows_neither_move_nor_advance(kind):
    """Row 1 sits out steps 10-29: it freezes there and then continues as a run that never saw them."""
    w0, b0, data = _problem(2, 2)
    skipped = set(range(10, 30))

    def active(t):
        return torch.tensor([True, t not in skipped])

    got = _run_batched(kind, w0, b0, data, [0.01, 0.01], [0.01, 0.01], [0.9, 0.9], active_of_step=active)
    # Row 1 froze during the skipped steps...
    assert torch.equal(got[9][0][1], got[29][0][1]) and torch.equal(got[9][1][1], got[29][1][1])
    # ...and then continued as a torch run that never saw those batches.
    kept = [d for t, d in enumerate(data) if t not in skipped]
    want = _run_torch(kind, w0[1], b0[1], kept, 0.01, 0.01, 0.9)
    _assert_close(got[-1][0][1], want[-1][0])
    # Row 0 is unaffected by row 1's pauses.
    _assert_close(got[-1][0][0], _run_torch(kind, w0[0], b0[0], data, 0.01, 0.01, 0.9)[-1][0])


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_reset_rows_restarts_a_row_like_a_fresh_optimizer(kind):
    w0, b0, data = _problem(3, 2)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = BatchedOptimizer([w, b], kind)
    opt.momentum.fill_(0.9)
    lr = torch.tensor([0.01, 0.01], dtype=torch.float64)
    for x, y in data[:20]:
        opt.zero_grad()
        _loss(w, b, x, y).sum().backward()
        opt.step(lr)
    with torch.no_grad():
        w[1].copy_(w0[1])
        b[1].copy_(b0[1])
    opt.reset_rows([1])
    assert opt.steps.tolist() == [20.0, 0.0]
    for x, y in data[:20]:
        opt.zero_grad()
        _loss(w, b, x, y).sum().backward()
        opt.step(lr)
    want = _run_torch(kind, w0[1], b0[1], data[:20], 0.01, 0.0, 0.9)
    _assert_close(w[1].detach(), want[-1][0])


def test_a_non_finite_row_leaves_the_others_bit_identical():
    w0, b0, data = _problem(4, 3)
    clean = _run_batched("adamw", w0, b0, data, [0.01, 0.01, 0.01], [0.01] * 3, [0.9] * 3)
    w0_bad = w0.clone()
    w0_bad[1, 0, 0] = float("inf")
    dirty = _run_batched("adamw", w0_bad, b0, data, [0.01, 0.01, 0.01], [0.01] * 3, [0.9] * 3)
    assert not torch.isfinite(dirty[-1][0][1]).all()
    for row in (0, 2):
        assert torch.equal(dirty[-1][0][row], clean[-1][0][row])


def test_bad_inputs_raise_clear_errors():
    w = torch.zeros(3, 2, requires_grad=True)
    with pytest.raises(ValueError, match="choose one of"):
        BatchedOptimizer([w], "rmsprop")
    with pytest.raises(ValueError, match="same N"):
        BatchedOptimizer([w, torch.zeros(2, 2)], "sgd")
    opt = BatchedOptimizer([w], "sgd")
    with pytest.raises(RuntimeError, match="backward"):
        opt.step(torch.ones(3, dtype=torch.float64))
    w.grad = torch.zeros_like(w)
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        opt.step(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="bool"):
        opt.step(torch.ones(3, dtype=torch.float64), active=torch.ones(3))
