import copy
import math

import pytest
import torch

from aees_gym import Candidate, CandidateGrid, EpisodeControl


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


# ---------------------------------------------------------------- exact candidates and momentum
class GroupSpy(torch.optim.SGD):
    """SGD that records its param group's lr and momentum inside step()."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.seen = []

    def step(self, closure=None):
        group = self.param_groups[0]
        self.seen.append((group["lr"], group["momentum"]))
        return super().step(closure)


def test_exact_candidate_runs_its_own_values_and_reports_them():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = GroupSpy([p], lr=0.1)
    control = EpisodeControl(opt, window_length=2, total_steps=4, seed=0)
    control.begin_window(Candidate(1.37, 0.0))
    one_param_step(control, p)
    outcome = one_param_step(control, p)
    assert [lr for lr, _ in opt.seen] == pytest.approx([0.137, 0.137])
    info = outcome.info
    assert (info["lr_multiplier"], info["noise_std"], info["momentum"]) == (1.37, 0.0, -1.0)  # -1: no momentum setting
    assert info["candidate_name"] == "lr1p37_n0" and info["action"] == control.grid.index_of(1.0, 0.0)
    # The observation's last_lr is the fractional grid position: ln 1.37 / ln 2 of the way from ×1 to ×2.
    position = 1.0 + math.log(1.37) / math.log(2.0)
    assert outcome.observation[control.config.context.features.index("last_lr")] == pytest.approx(position / 2)


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (Candidate(0.25, 0.0), r"lr_multiplier 0.25 is outside the grid's range \[0.5, 2.0\]"),
        (Candidate(1.0, 0.02), r"noise_std 0.02 is outside the grid's range \[0.0, 0.01\]"),
        (Candidate(1.0, 0.0, 0.5), "no momentum axis"),
    ],
)
def test_candidates_outside_the_declared_ranges_are_rejected(candidate, message):
    p = torch.nn.Parameter(torch.zeros(1))
    control = EpisodeControl(torch.optim.SGD([p], lr=0.1), window_length=2, total_steps=4, seed=0)
    with pytest.raises(ValueError, match=message):
        control.begin_window(candidate)
    assert control.needs_action  # nothing opened


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), 1.5])
def test_momentum_outside_zero_one_is_rejected(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        CandidateGrid((1.0,), (0.0,), momenta=(0.5, bad))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Candidate(1.0, 0.0, bad)


def test_momentum_axis_is_applied_for_the_window_and_restored_sgd():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = GroupSpy([p], lr=0.1, momentum=0.3)
    grid = CandidateGrid((1.0,), (0.0,), momenta=(0.0, 0.9))
    control = EpisodeControl(opt, window_length=2, total_steps=6, seed=0, grid=grid)
    control.begin_window(1)  # momentum 0.9
    one_param_step(control, p)
    assert opt.param_groups[0]["momentum"] == 0.3  # restored between steps too
    outcome = one_param_step(control, p)
    control.begin_window(Candidate(1.0, 0.0, 0.45))
    one_param_step(control, p)
    one_param_step(control, p)
    control.begin_window(0)
    one_param_step(control, p)
    assert [m for _, m in opt.seen] == [0.9, 0.9, 0.45, 0.45, 0.0]
    assert opt.param_groups[0]["momentum"] == 0.3
    assert outcome.info["momentum"] == 0.9 and outcome.info["candidate_name"] == "lr1_n0_m0p9"
    assert "last_momentum" in control.config.context.features  # the default observation extends to it
    control.close_window()
    with pytest.raises(ValueError, match=r"needs a momentum in \[0.0, 0.9\]"):
        control.begin_window(Candidate(1.0, 0.0))


def test_momentum_axis_sets_adamw_beta1_only():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    seen = []
    plain_step = opt.step

    def spy(*a, **k):
        seen.append(opt.param_groups[0]["betas"])
        return plain_step(*a, **k)

    opt.step = spy
    control = EpisodeControl(opt, window_length=1, total_steps=2, seed=0,
                             grid=CandidateGrid((1.0,), (0.0,), momenta=(0.5, 0.99)))
    for action in (1, 0):
        control.begin_window(action)
        opt.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        control.step_end(torch.tensor(1.0))
    assert seen == [(0.99, 0.95), (0.5, 0.95)]
    assert opt.param_groups[0]["betas"] == (0.8, 0.95)


def test_momentum_axis_needs_an_optimizer_with_momentum():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="'momentum' .* or 'betas'"):
        EpisodeControl(torch.optim.Adagrad([p], lr=0.1), grid=CandidateGrid((1.0,), (0.0,), momenta=(0.0, 0.9)))


def test_exact_candidate_and_momentum_survive_a_checkpoint_mid_window():
    def run(resume):
        p = torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.5)
        grid = CandidateGrid((0.5, 2.0), (0.0,), momenta=(0.0, 0.9))
        control = EpisodeControl(opt, window_length=4, total_steps=4, seed=0, grid=grid)
        control.begin_window(Candidate(1.3, 0.0, 0.7))
        for step in range(4):
            if resume and step == 2:
                state = copy.deepcopy(control.state_dict())
                control = EpisodeControl(opt, window_length=4, total_steps=4, seed=0, grid=grid)
                control.load_state_dict(state)
            p.grad = p.detach().clone()
            outcome = control.step_end(p.detach().sum())
        return p.detach().clone(), outcome.info

    (p_plain, info_plain), (p_resumed, info_resumed) = run(False), run(True)
    assert torch.equal(p_plain, p_resumed)
    assert info_resumed["candidate_name"] == info_plain["candidate_name"] == "lr1p3_n0_m0p7"


def test_exact_candidates_with_momentum_and_freezing_read_the_host_once_per_window(host_reads):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    control = EpisodeControl(opt, window_length=5, total_steps=15, seed=0, freeze_threshold=1e-4,
                             grid=CandidateGrid((0.5, 2.0), (0.0, 0.01), momenta=(0.5, 0.95)))
    calls = host_reads(opt)
    x = torch.randn(8, 4)
    for candidate in (Candidate(1.3, 0.004, 0.8), Candidate(0.7, 0.0, 0.6), Candidate(2.0, 0.01, 0.95)):
        control.begin_window(candidate)
        for step in range(5):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            before = len(calls)
            outcome = control.step_end(loss)
            if step < 4:
                assert len(calls) == before, f"host read inside the window: {calls[before:]}"
        assert (outcome.info["lr_multiplier"], outcome.info["momentum"]) == (candidate.lr_multiplier, candidate.momentum)
    assert calls == ["tolist"] * 3
