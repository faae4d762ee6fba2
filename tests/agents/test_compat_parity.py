"""End-to-end parity with pulseopt 0.3.0 on a real training loop, and the compat facade's extras.

Both sides train identical copies of a small MLP (same initial weights, same batches, same seed)
in a plain PyTorch loop: the reference ``pulseopt.AEES`` on one, and on the other either
``EpisodeControl`` driven by the ``ducb``/``contextual`` agents, or the drop-in
``agents.compat.AEES``. They must choose the same candidates and see the same rewards (1e-6) for
the whole run, including the trailing partial window that ``finalize`` closes.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pulseopt
import pytest
import torch
from gymnasium import spaces
from torch import nn

from aees_gym import CandidateGrid, EpisodeControl
from aees_gym.core.context import feature_bounds
from aees_gym.core.reward import compute_reward
from agents.bandits import ContextualUCBAgent, DiscountedUCBAgent
from agents.compat import AEES

STEPS = 215  # 21 full windows of 10 and a trailing partial one of 5
WINDOW = 10
LR_CANDIDATES = [0.5, 1.0, 2.0]
NOISE_CANDIDATES = [0.0, 0.005]


class Problem:
    """A fixed random regression data set, a fixed batch order and one initial MLP."""

    def __init__(self, seed: int = 0, n: int = 256, batch: int = 32) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=gen)
        self.y = torch.sin(self.x @ torch.randn(8, 1, generator=gen)) + 0.1 * torch.randn(n, 1, generator=gen)
        self.batches = [torch.randperm(n, generator=gen)[:batch] for _ in range(STEPS)]
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def fresh(self, optimizer: str) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
        model = copy.deepcopy(self.model)
        if optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=60, gamma=0.5)
        return model, opt, scheduler


def run_wrapper(wrapper: type, problem: Problem, optimizer: str, seed: int, **kwargs: Any) -> tuple[dict[str, list[Any]], nn.Module]:
    """A plain loop under ``pulseopt.AEES`` or ``agents.compat.AEES`` (same arguments, same calls)."""
    model, opt, scheduler = problem.fresh(optimizer)
    aees = wrapper(
        opt, lr_candidates=LR_CANDIDATES, noise_candidates=NOISE_CANDIDATES, episode_length=WINDOW,
        lr_scheduler=scheduler, seed=seed, **kwargs,
    )
    candidates = []
    for step, forward_backward in enumerate(_loop(problem, model, opt)):
        candidate = aees.step_start(step)
        candidates.append((candidate.name, candidate.lr_multiplier, candidate.noise_std))
        aees.step_end(forward_backward())
    aees.finalize()
    return {**aees.get_logs(), "step_candidates": candidates}, model


def run_pulseopt(problem: Problem, optimizer: str, seed: int, **kwargs: Any) -> tuple[dict[str, list[Any]], nn.Module]:
    return run_wrapper(pulseopt.AEES, problem, optimizer, seed, **kwargs)


def run_compat(problem: Problem, optimizer: str, seed: int, **kwargs: Any) -> tuple[dict[str, list[Any]], nn.Module]:
    return run_wrapper(AEES, problem, optimizer, seed, **kwargs)


def _loop(problem: Problem, model: nn.Module, opt: torch.optim.Optimizer) -> Iterator[Callable[[], torch.Tensor]]:
    """One deferred forward/backward per step, so the caller can run step_start before it."""
    for idx in problem.batches:

        def forward_backward(idx: torch.Tensor = idx) -> torch.Tensor:
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(problem.x[idx]), problem.y[idx])
            loss.backward()
            return loss

        yield forward_backward


def run_control(problem: Problem, optimizer: str, seed: int, agent: Any) -> tuple[dict[str, list[Any]], nn.Module]:
    """EpisodeControl + an agent in a plain loop; the budget end closes the partial window."""
    model, opt, scheduler = problem.fresh(optimizer)
    control = EpisodeControl(
        opt, lr_scheduler=scheduler, seed=seed, total_steps=STEPS, window_length=WINDOW,
        grid=CandidateGrid(tuple(LR_CANDIDATES), tuple(NOISE_CANDIDATES)), divergence_loss_ratio=None,
    )
    obs, info = control.reset()
    low, high = feature_bounds(control.config)
    agent.reset(
        seed=seed, observation_space=spaces.Box(low, high, dtype=np.float32),
        action_space=spaces.Discrete(control.grid.size), info=info,
    )
    logs: dict[str, list[Any]] = {"selected_lr_indices": [], "selected_noise_indices": [], "episode_rewards": []}
    for forward_backward in _loop(problem, model, opt):
        if control.needs_action:
            control.begin_window(agent.act(obs, info))
        outcome = control.step_end(forward_backward())
        if outcome is not None:
            agent.update(outcome.action, outcome.reward, outcome.observation, outcome.terminated, False, outcome.info)
            obs, info = outcome.observation, outcome.info
            logs["selected_lr_indices"].append(info["lr_index"])
            logs["selected_noise_indices"].append(info["noise_index"])
            logs["episode_rewards"].append(outcome.reward)
    assert control.done
    return logs, model


def assert_same_run(ours: dict[str, list[Any]], ref: dict[str, list[Any]], keys: list[str]) -> None:
    assert len(ref["episode_rewards"]) == math.ceil(STEPS / WINDOW)
    for key in keys:
        a, b = ours[key], ref[key]
        assert len(a) == len(b), key
        if key.startswith("selected_") or key.endswith("_steps"):
            assert a == b, key
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=key)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("structured", ["independent", "conditional"])
@pytest.mark.parametrize("seed", [0, 3])
def test_episode_control_with_ducb_matches_pulseopt(problem: Problem, optimizer: str, structured: str, seed: int) -> None:
    ref, ref_model = run_pulseopt(problem, optimizer, seed, structured_control_mode=structured)
    ours, model = run_control(problem, optimizer, seed, DiscountedUCBAgent(structured=structured))
    assert_same_run(ours, ref, ["selected_lr_indices", "selected_noise_indices", "episode_rewards"])
    assert_same_weights(model, ref_model)
    # The run must exercise both axes, or parity would be trivial.
    assert len(set(ref["selected_lr_indices"])) == 3 and len(set(ref["selected_noise_indices"])) == 2


@pytest.mark.parametrize("structured", ["independent", "conditional"])
def test_episode_control_with_contextual_matches_pulseopt_trend(problem: Problem, structured: str) -> None:
    ref, ref_model = run_pulseopt(problem, "adamw", 5, structured_control_mode=structured, context_mode="trend")
    agent = ContextualUCBAgent(bucketing="trend", structured=structured)
    ours, model = run_control(problem, "adamw", 5, agent)
    assert_same_run(ours, ref, ["selected_lr_indices", "selected_noise_indices", "episode_rewards"])
    assert_same_weights(model, ref_model)
    assert len(set(ref["context_buckets"])) >= 2


@pytest.mark.parametrize(
    ("optimizer", "kwargs"),
    [
        ("sgd", {}),
        ("adamw", {"structured_control_mode": "conditional"}),
        ("adamw", {"context_mode": "trend"}),
        ("sgd", {"context_mode": "trend", "structured_control_mode": "conditional", "context_trend_window": 4}),
        ("adamw", {"reward_instability_lambda": 0.1, "ema_alpha": 0.2, "reward_clip_max": 0.05}),
    ],
)
def test_compat_facade_matches_pulseopt(problem: Problem, optimizer: str, kwargs: dict[str, Any]) -> None:
    ref, ref_model = run_pulseopt(problem, optimizer, 11, **kwargs)
    ours, model = run_compat(problem, optimizer, 11, **kwargs)
    # Every per-window log of the reference except the update norms, which need a sync per step.
    assert_same_run(ours, ref, [k for k in ref if k not in ("mean_update_norms", "context_buckets", "step_candidates")])
    assert ours["step_candidates"] == ref["step_candidates"]  # what step_start returns, every step
    if "context_mode" in kwargs:
        assert ours["context_buckets"] == ref["context_buckets"]
    assert set(ours) == (set(ref) - {"mean_update_norms"}) | {"episode_diverged"}
    assert len(ours["step_candidates"]) == STEPS
    assert not any(ours["episode_diverged"])
    assert_same_weights(model, ref_model)


def test_compat_random_mode_runs_and_is_seeded(problem: Problem) -> None:
    first, _ = run_compat(problem, "sgd", 2, control_mode="random")
    again, _ = run_compat(problem, "sgd", 2, control_mode="random")
    other, _ = run_compat(problem, "sgd", 9, control_mode="random")
    assert first == again
    assert first["selected_combined_names"] != other["selected_combined_names"]
    assert len(first["episode_rewards"]) == math.ceil(STEPS / WINDOW)


def test_compat_step_end_never_syncs(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``Tensor.item()`` or ``float(tensor)`` inside step_end except when a window closes."""
    model, opt, _ = problem.fresh("sgd")  # torch's Adam reads its step counters with .item()
    aees = AEES(opt, lr_candidates=LR_CANDIDATES, noise_candidates=NOISE_CANDIDATES, episode_length=WINDOW, seed=0)
    syncs: list[str] = []
    for name in ("item", "tolist", "numpy", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counting(self: torch.Tensor, *a: Any, _orig: Any = original, _name: str = name, **k: Any) -> Any:
            syncs.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    for step, forward_backward in enumerate(_loop(problem, model, opt)):
        if step == 3 * WINDOW:
            break
        aees.step_start(step)
        loss = forward_backward()
        before = len(syncs)
        aees.step_end(loss)
        closes_window = (step + 1) % WINDOW == 0
        assert len(syncs) - before == (1 if closes_window else 0), (step, syncs[before:])


def test_compat_nan_loss_flags_window_and_training_goes_on(problem: Problem) -> None:
    model, opt, _ = problem.fresh("sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    aees = AEES(
        opt, lr_candidates=LR_CANDIDATES, noise_candidates=NOISE_CANDIDATES, episode_length=WINDOW, seed=1,
        grad_scaler=scaler,
    )
    for step, idx in enumerate(problem.batches[:60]):
        aees.step_start(step)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(problem.x[idx]), problem.y[idx])
        if step == 13:
            loss = loss * float("nan")
        scaler.scale(loss).backward()
        aees.step_end(loss)
    aees.finalize()
    logs = aees.get_logs()
    assert logs["episode_diverged"] == [False, True, False, False, False, False]
    assert logs["episode_rewards"][1] == -1.0 and logs["reward_final_clipped"][1] == -1.0
    assert math.isnan(logs["reward_base"][1]) and math.isnan(logs["episode_ema_loss_ends"][1])
    assert all(math.isfinite(r) for i, r in enumerate(logs["episode_rewards"]) if i != 1)
    assert aees.diverged
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the scaler skipped that step
    # The controller learned the divergence reward for the lr arm it had chosen.
    diverged_arm = logs["selected_lr_indices"][1]
    assert aees.agent.state()["lr"]["sums"][diverged_arm] < 0.0
    # pulseopt raises on the same loss and stays stuck inside the step.
    ref = pulseopt.AEES(problem.fresh("sgd")[1], lr_candidates=LR_CANDIDATES, episode_length=WINDOW, seed=1)
    ref.step_start(0)
    with pytest.raises(ValueError, match="finite"):
        ref.step_end(torch.tensor(float("nan")))


def test_compat_state_dict_resumes_exactly(problem: Problem) -> None:
    uninterrupted, _ = run_compat(problem, "adamw", 4, context_mode="trend")

    model, opt, scheduler = problem.fresh("adamw")
    kwargs = dict(lr_candidates=LR_CANDIDATES, noise_candidates=NOISE_CANDIDATES, episode_length=WINDOW, seed=4,
                  context_mode="trend")
    aees = AEES(opt, lr_scheduler=scheduler, **kwargs)
    steps = list(_loop(problem, model, opt))
    split = 97  # inside a window, after noise generators have been used
    for step in range(split):
        aees.step_start(step)
        aees.step_end(steps[step]())
    buffer = io.BytesIO()
    torch.save({"aees": aees.state_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                "sched": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)

    model2, opt2, scheduler2 = problem.fresh("adamw")
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    scheduler2.load_state_dict(saved["sched"])
    resumed = AEES(opt2, lr_scheduler=scheduler2, **kwargs)
    resumed.load_state_dict(saved["aees"])
    steps2 = list(_loop(problem, model2, opt2))
    for step in range(split, STEPS):
        resumed.step_start(step)
        resumed.step_end(steps2[step]())
    resumed.finalize()
    assert resumed.get_logs() == {k: v for k, v in uninterrupted.items() if k != "step_candidates"}


def test_compat_total_steps_and_usage_errors(problem: Problem) -> None:
    model, opt, _ = problem.fresh("sgd")
    with pytest.raises(ValueError, match="adaptive"):
        AEES(opt, control_mode="bandit")
    with pytest.raises(ValueError, match="trend"):
        AEES(opt, context_mode="phase")
    with pytest.raises(ValueError, match="conditional"):
        AEES(opt, structured_control_mode="joint")
    aees = AEES(opt, lr_candidates=LR_CANDIDATES, episode_length=4, total_steps=10, seed=0)
    with pytest.raises(RuntimeError, match="preceding step_start"):
        aees.step_end(torch.tensor(1.0))
    steps = list(_loop(problem, model, opt))
    for step in range(10):
        candidate = aees.step_start(step)
        assert candidate is aees.current_candidate and candidate.noise_std == 0.0
        with pytest.raises(RuntimeError, match="twice"):
            aees.step_start(step)
        aees.step_end(steps[step]())
    assert aees.get_logs()["episode_end_steps"] == [3, 7, 9]  # the budget closes the last window
    with pytest.raises(RuntimeError, match="total_steps"):
        aees.step_start(10)


def test_close_window_closes_a_partial_window_exactly() -> None:
    param = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([param], lr=0.1)
    control = EpisodeControl(opt, total_steps=100, window_length=10, seed=0, grid=CandidateGrid((1.0,), (0.0,)))
    assert control.close_window() is None  # nothing open
    control.begin_window(0)
    assert control.close_window() is None  # opened but no step run: discarded
    assert control.needs_action and control.history.steps_done == 0
    losses = []
    control.begin_window(0)
    for _ in range(3):
        opt.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        losses.append(float(loss.detach()))
        assert control.step_end(loss) is None
    outcome = control.close_window()
    assert outcome is not None and outcome.info["window_steps"] == 3
    assert outcome.info["step_losses"] == pytest.approx(losses, rel=1e-6)
    assert outcome.reward == pytest.approx(compute_reward(outcome.info["step_losses"], control.config.reward).reward)
    assert not outcome.terminated and control.needs_action and control.history.steps_done == 3
    assert control.close_window() is None
