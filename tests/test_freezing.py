"""Selective freezing: a tensor whose gradients fade stops updating, and resumes when they return."""

from __future__ import annotations

import pytest
import torch

from aees_gym import CandidateGrid, ControlConfig, EnvConfig, EpisodeControl

OPTIMIZERS = {
    "sgd": (lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1), ("momentum_buffer",)),
    "adam": (lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=0.1), ("exp_avg", "exp_avg_sq", "step")),
    "adamw": (lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1), ("exp_avg", "exp_avg_sq", "step")),
}
# Window 0 trains `gated` normally; windows 1-4 give it zero gradients (its EMA, β = 0.5, falls
# below 1e-3 by the end of window 3); from window 5 its gradients return.
GATE = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def _snapshot(opt, param, keys):
    state = opt.state.get(param, {})
    return param.detach().clone(), {k: state[k].detach().clone() for k in keys if k in state}


def run_gated(optimizer, host_reads=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    gated = torch.nn.Parameter(torch.ones(5))
    make, keys = OPTIMIZERS[optimizer]
    opt = make([*model.parameters(), gated])
    control = EpisodeControl(opt, window_length=4, total_steps=4 * len(GATE), seed=0,
                             grid=CandidateGrid((1.0,), (0.0,)), freeze_threshold=1e-3, freeze_beta=0.5)
    calls = host_reads(opt) if host_reads is not None else None
    x = torch.randn(8, 4)
    infos, changed = [], []
    for gate in GATE:
        control.begin_window(0)
        before = _snapshot(opt, gated, keys)
        for step in range(4):
            opt.zero_grad()
            fit = model(x).pow(2).mean()
            (fit + gate * gated.sum()).backward()  # the gated tensor's gradient: ones × gate
            reads = None if calls is None else len(calls)
            outcome = control.step_end(fit + 1.0)  # a positive loss for the log reward
            if calls is not None and step < 3:
                assert len(calls) == reads, f"host read inside a window: {calls[reads:]}"
        after = _snapshot(opt, gated, keys)
        same_param = torch.equal(before[0], after[0])
        same_state = before[1].keys() == after[1].keys() and all(torch.equal(before[1][k], after[1][k]) for k in before[1])
        changed.append(not (same_param and same_state))
        infos.append(outcome.info)
    return infos, changed, calls


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_faded_tensor_freezes_keeps_its_state_and_unfreezes(optimizer):
    infos, changed, _ = run_gated(optimizer)
    fractions = [info["frozen_fraction"] for info in infos]
    # 5 of the 10 parameters (the gated tensor) are frozen in windows 4 and 5, decided at the close
    # of windows 3 and 4; the gradients returning in window 5 revive the EMA, so window 6 is free.
    assert fractions == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
    # Weight decay and the optimizer state moved the gated tensor in every window but the frozen ones.
    assert changed == [True, True, True, True, False, False, True, True]


def test_freezing_reads_the_host_once_per_window(host_reads):
    infos, _, calls = run_gated("adamw", host_reads)
    assert calls.count("tolist") == len(GATE) and set(calls) == {"tolist"}
    assert max(info["frozen_fraction"] for info in infos) == 0.5


def test_freezing_is_off_by_default_and_reported_as_zero():
    p = torch.nn.Parameter(torch.ones(2))
    control = EpisodeControl(torch.optim.SGD([p], lr=0.1), window_length=1, total_steps=1, seed=0)
    control.begin_window(0)
    p.grad = torch.zeros_like(p)
    assert control.step_end(torch.tensor(1.0)).info["frozen_fraction"] == 0.0


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf"), "1e-4", True])
def test_bad_freeze_threshold_is_rejected_with_the_valid_range(bad):
    with pytest.raises(ValueError, match="freeze_threshold must be None \\(off\\) or a finite gradient norm >= 0"):
        ControlConfig(freeze_threshold=bad)
    with pytest.raises(ValueError, match="freeze_threshold"):
        EnvConfig(freeze_threshold=bad)
    with pytest.raises(ValueError, match=r"freeze_beta .* \[0, 1\)"):
        ControlConfig(freeze_threshold=1e-4, freeze_beta=1.0)


def test_freezing_state_survives_a_checkpoint():
    def run(resume):
        torch.manual_seed(0)
        gated = torch.nn.Parameter(torch.ones(3))
        other = torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.AdamW([gated, other], lr=0.01)
        kwargs = dict(window_length=2, total_steps=12, seed=0, grid=CandidateGrid((1.0,), (0.0,)), freeze_threshold=0.05, freeze_beta=0.5)
        control = EpisodeControl(opt, **kwargs)
        fractions = []
        for window in range(6):
            if resume and window == 3:
                state = control.state_dict()
                control = EpisodeControl(opt, **kwargs)
                control.load_state_dict(state)
            control.begin_window(0)
            for _ in range(2):
                opt.zero_grad()
                loss = (0.0 if 1 <= window <= 3 else 1.0) * gated.sum() + other.pow(2).sum()
                loss.backward()
                outcome = control.step_end(loss.detach())
            fractions.append(outcome.info["frozen_fraction"])
        return fractions, gated.detach().clone()

    (plain, p_plain), (resumed, p_resumed) = run(False), run(True)
    assert plain == resumed and 0.6 in plain and torch.equal(p_plain, p_resumed)
