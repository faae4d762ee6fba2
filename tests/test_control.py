import copy

import pytest
import torch

from aees_gym import CandidateGrid, EpisodeControl


class LrSpy(torch.optim.SGD):
    """SGD that records the lr it sees inside step()."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


def one_param_step(control, param, loss_value=1.0):
    param.grad = torch.zeros_like(param)
    return control.step_end(torch.tensor(loss_value))


def test_lr_multiplier_is_transient_and_scheduler_sees_the_base():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = LrSpy([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    control = EpisodeControl(opt, lr_scheduler=sched, window_length=4, total_steps=4, seed=0,
                             grid=CandidateGrid((1.0, 3.0), (0.0,)))
    control.reset()
    control.begin_window(1)
    for _ in range(4):
        one_param_step(control, p)
    assert opt.seen == [3.0, 1.5, 0.75, 0.375]
    assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0] == 0.0625


def test_lr_restored_even_when_step_raises():
    p = torch.nn.Parameter(torch.zeros(2))

    class Boom(torch.optim.SGD):
        def step(self, closure=None):
            raise RuntimeError("boom")

    opt = Boom([p], lr=0.1)
    control = EpisodeControl(opt, window_length=2, total_steps=2, seed=0, grid=CandidateGrid((4.0,), (0.0,)))
    control.begin_window(0)
    p.grad = torch.zeros_like(p)
    with pytest.raises(RuntimeError, match="boom"):
        control.step_end(torch.tensor(1.0))
    assert opt.param_groups[0]["lr"] == 0.1


def test_gradient_noise_statistics_and_zero_noise():
    p = torch.nn.Parameter(torch.zeros(200_000))
    opt = torch.optim.SGD([p], lr=1.0)
    grid = CandidateGrid((1.0,), (0.0, 0.05))
    control = EpisodeControl(opt, window_length=1, total_steps=2, seed=3, grid=grid)
    control.begin_window(0)
    one_param_step(control, p)
    assert torch.count_nonzero(p.data) == 0  # σ = 0 adds nothing
    control.begin_window(1)
    one_param_step(control, p)
    update = -p.data  # p = 0 - lr * noise
    assert abs(update.mean().item()) < 0.05 * 0.01
    assert update.std().item() == pytest.approx(0.05, rel=0.01)


def test_noise_is_seeded_and_differs_between_seeds():
    def noise(seed):
        p = torch.nn.Parameter(torch.zeros(50))
        control = EpisodeControl(torch.optim.SGD([p], lr=1.0), window_length=1, total_steps=1, seed=seed,
                                 grid=CandidateGrid((1.0,), (0.1,)))
        control.begin_window(0)
        one_param_step(control, p)
        return p.data.clone()

    assert torch.equal(noise(1), noise(1))
    assert not torch.equal(noise(1), noise(2))


def test_losses_cross_to_host_once_per_window(host_reads):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    control = EpisodeControl(opt, window_length=10, total_steps=10, seed=0)
    calls = host_reads(opt)
    x = torch.randn(8, 4)
    control.begin_window(5)  # lr 1.0 with noise: exercises the noise path too
    outcome = None
    for step in range(10):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        before = len(calls)
        outcome = control.step_end(loss)
        if step < 9:
            assert len(calls) == before, f"host sync inside the window: {calls[before:]}"
    assert outcome is not None and len(outcome.info["step_losses"]) == 10
    assert calls.count("tolist") == 1


def test_reduce_lr_on_plateau_is_fed_the_window_mean():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    control = EpisodeControl(opt, lr_scheduler=sched, window_length=2, total_steps=6, seed=0, grid=CandidateGrid((1.0,), (0.0,)))
    for losses in ([1.0, 3.0], [2.0, 2.0], [2.0, 2.5]):
        control.begin_window(0)
        for loss in losses:
            one_param_step(control, p, loss)
    assert sched.best == 2.0  # means were 2.0, 2.0, 2.25
    assert opt.param_groups[0]["lr"] == 0.25


def test_grad_scaler_unscales_before_noise_and_steps():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    control = EpisodeControl(opt, grad_scaler=scaler, window_length=2, total_steps=2, seed=0, grid=CandidateGrid((1.0,), (1e-3,)))
    control.begin_window(0)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 3)
    for _ in range(2):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        scaler.scale(loss).backward()
        out = control.step_end(loss)
    after = model.state_dict()
    delta = (after["weight"] - before["weight"]).abs().max().item()
    assert 0 < delta < 1.0  # a real, unscaled-size update (scaled grads would be ~1000× larger)
    assert out is not None and out.info["loss_first"] > 0


def test_state_dict_roundtrip_continues_identically():
    def make():
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, EpisodeControl(opt, window_length=3, total_steps=12, seed=11)

    x = torch.randn(16, 4)

    def run(model, opt, control, steps, action=4):
        rewards = []
        for _ in range(steps):
            if control.needs_action:
                control.begin_window(action)
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            out = control.step_end(loss)
            if out:
                rewards.append(out.reward)
        return rewards

    m1, o1, c1 = make()
    full = run(m1, o1, c1, 12)
    m2, o2, c2 = make()
    first = run(m2, o2, c2, 5)  # stops mid-window
    state = (copy.deepcopy(m2.state_dict()), copy.deepcopy(o2.state_dict()), c2.state_dict())
    m3, o3, c3 = make()
    m3.load_state_dict(state[0])
    o3.load_state_dict(state[1])
    c3.load_state_dict(state[2])
    rest = run(m3, o3, c3, 7)
    assert first + rest == full
    assert torch.equal(m3.weight, m1.weight)
    # Loading into a control whose generators have moved on must rewind them too.
    run(m2, o2, c2, 7)
    m2.load_state_dict(state[0])
    o2.load_state_dict(state[1])
    c2.load_state_dict(state[2])
    assert run(m2, o2, c2, 7) == rest


def test_lifecycle_errors_are_clear():
    p = torch.nn.Parameter(torch.zeros(1))
    control = EpisodeControl(torch.optim.SGD([p], lr=0.1), window_length=2, total_steps=2, seed=0)
    with pytest.raises(RuntimeError, match="begin_window"):
        control.step_end(1.0)
    control.begin_window(0)
    with pytest.raises(RuntimeError, match="already open"):
        control.begin_window(0)
    with pytest.raises(ValueError, match="out of range"):
        EpisodeControl(torch.optim.SGD([p], lr=0.1), seed=0).begin_window(99)


def test_relative_mode_scales_persistently():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = LrSpy([p], lr=1.0)
    control = EpisodeControl(opt, window_length=1, total_steps=4, seed=0, action_mode="relative",
                             grid=CandidateGrid((0.5, 1.0, 2.0), (0.0,)), relative_lr_bounds=(0.25, 4.0))
    for action in (2, 2, 2, 0):
        control.begin_window(action)
        one_param_step(control, p)
    assert opt.seen == [2.0, 4.0, 4.0, 2.0]  # clamped at the upper bound of 4
    assert opt.param_groups[0]["lr"] == 1.0
