"""How EpisodeControl guards its use: outside optimizer/scheduler steps, step_end inputs, loaded
states, and reward functions whose output cannot be used."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym import CandidateGrid, EpisodeControl
from aees_gym.core.reward import RewardTerms, aees_reward, register_reward
from agents import make_agent
from agents.deploy import ControlledTraining


class Loop:
    """A small real regression loop of a user's own."""

    def __init__(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(64, 4, generator=gen)
        self.y = self.x @ torch.randn(4, 1, generator=gen)
        torch.manual_seed(seed)
        self.model = nn.Linear(4, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.steps = 0
        self.optimizer.register_step_post_hook(lambda *_: setattr(self, "steps", self.steps + 1))

    def backward(self) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = nn.functional.mse_loss(self.model(self.x), self.y)
        loss.backward()
        return loss


def controlled(loop: Loop, scheduler=None, **kwargs) -> ControlledTraining:
    return ControlledTraining(loop.optimizer, make_agent("fixed", lr_multiplier=1.0, noise_std=0.0),
                              lr_scheduler=scheduler, seed=0, **{"total_steps": 100, "window_length": 10, **kwargs})


# ---------------------------------------------------------------- double stepping
def test_own_optimizer_and_scheduler_steps_fail_at_the_next_step_naming_the_line_to_remove():
    loop = Loop()
    sched = torch.optim.lr_scheduler.StepLR(loop.optimizer, step_size=1, gamma=0.99)
    ct = controlled(loop, sched)
    ct.before_step()
    ct.after_step(loop.backward())
    loop.optimizer.step()  # the user kept their own calls
    sched.step()
    ct.before_step()
    with pytest.raises(RuntimeError, match=r"optimizer.step\(\) ran 1 time\(s\) outside .*Remove your own `optimizer.step\(\)` line"):
        ct.after_step(loop.backward())


def test_own_scheduler_step_alone_is_named():
    loop = Loop()
    sched = torch.optim.lr_scheduler.StepLR(loop.optimizer, step_size=1, gamma=0.99)
    ct = controlled(loop, sched)
    ct.before_step()
    ct.after_step(loop.backward())
    sched.step()
    ct.before_step()
    with pytest.raises(RuntimeError, match=r"last_epoch 1 -> 2.*Remove your own `scheduler.step\(\)` line"):
        ct.after_step(loop.backward())


def test_own_plateau_step_is_detected():
    loop = Loop()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(loop.optimizer, patience=0)
    ct = controlled(loop, plateau, window_length=2)
    for _ in range(2):
        ct.before_step()
        ct.after_step(loop.backward())
    plateau.step(1.0)
    ct.before_step()
    with pytest.raises(RuntimeError, match="scheduler.step"):
        ct.after_step(loop.backward())


def test_normal_use_steps_once_per_batch_with_step_lr_and_plateau():
    loop = Loop()
    sched = torch.optim.lr_scheduler.StepLR(loop.optimizer, step_size=1, gamma=0.99)
    ct = controlled(loop, sched)
    for _ in range(100):
        ct.before_step()
        ct.after_step(loop.backward())
    assert ct.done and loop.steps == 100 and sched.last_epoch == 100

    loop = Loop()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(loop.optimizer, patience=0)
    ct = controlled(loop, plateau, total_steps=30)
    for _ in range(30):
        ct.before_step()
        ct.after_step(loop.backward())
    assert ct.done and loop.steps == 30 and plateau.last_epoch == 3  # once per window


def test_grad_scaler_path_and_close_window_are_unaffected():
    loop = Loop()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    ct = controlled(loop, grad_scaler=scaler, total_steps=25)
    for _ in range(25):
        ct.before_step()
        loop.optimizer.zero_grad()
        loss = nn.functional.mse_loss(loop.model(loop.x), loop.y)
        scaler.scale(loss).backward()
        ct.after_step(loss)
    assert ct.done and loop.steps == 25

    loop = Loop()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(loop.optimizer)
    control = EpisodeControl(loop.optimizer, lr_scheduler=sched, window_length=4, total_steps=8, seed=0)
    control.begin_window(0)
    control.step_end(loop.backward())
    assert control.close_window() is not None  # steps the plateau scheduler; the next window is fine
    control.begin_window(0)
    control.step_end(loop.backward())


def test_steps_between_runs_or_before_the_first_step_are_not_outside_steps():
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=2, total_steps=2, seed=0)
    loop.backward()
    loop.optimizer.step()  # e.g. a warm-up of the user's before the controlled run
    control.begin_window(0)
    control.step_end(loop.backward())
    control.step_end(loop.backward())
    loop.optimizer.step()
    control.reset()  # a new run starts clean
    control.begin_window(0)
    assert control.step_end(loop.backward()) is None


# ---------------------------------------------------------------- step_end inputs
@pytest.mark.parametrize("loss", [torch.tensor(0.5), torch.tensor([0.5]), 0.5, 1, np.float32(0.5)])
def test_step_end_accepts_scalar_tensors_and_numbers(loss):
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=1, total_steps=1, seed=0)
    control.begin_window(0)
    loop.backward()
    outcome = control.step_end(loss)
    assert outcome is not None and outcome.info["step_losses"] == [0.5 if loss != 1 else 1.0]


@pytest.mark.parametrize(
    "loss, error, message",
    [
        ("0.5", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
        (True, TypeError, "got bool"),
        ([0.5], TypeError, "got list"),
        (torch.ones(3), ValueError, r"shape \(3,\)"),
        (torch.ones(2, 2), ValueError, r"shape \(2, 2\)"),
    ],
)
def test_step_end_names_what_it_cannot_take(loss, error, message):
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=2, total_steps=2, seed=0)
    control.begin_window(0)
    loop.backward()
    with pytest.raises(error, match=message):
        control.step_end(loss)
    assert loop.steps == 0  # rejected before any optimizer step


def test_loss_buffer_is_sized_by_what_a_window_can_hold():
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=10**9, total_steps=3, seed=0)
    assert control._losses.numel() == 3
    control.begin_window(0)
    outcomes = [control.step_end(loop.backward()) for _ in range(3)]
    assert outcomes[-1] is not None and outcomes[-1].terminated


# ---------------------------------------------------------------- load_state_dict
def saved_state(loop: Loop, **kwargs) -> dict:
    control = EpisodeControl(loop.optimizer, seed=0, **{"window_length": 4, "total_steps": 8, **kwargs})
    control.begin_window(1)
    control.step_end(loop.backward())
    return control.state_dict()


@pytest.mark.parametrize(
    "other, message",
    [
        ({"window_length": 2}, "window_length: saved 4, here 2"),
        ({"total_steps": 12}, "total_steps: saved 8, here 12"),
        ({"grid": CandidateGrid((1.0, 2.0), (0.0,))}, "grid: saved"),
    ],
)
def test_load_state_dict_names_settings_that_differ(other, message):
    loop = Loop()
    state = saved_state(loop)
    control = EpisodeControl(loop.optimizer, seed=0, **{"window_length": 4, "total_steps": 8, **other})
    with pytest.raises(ValueError, match=message):
        control.load_state_dict(state)


def test_load_state_dict_names_another_optimizer_layout():
    state = saved_state(Loop())
    other = torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match=r"param_shapes: saved \[\[\[1, 4\], \[1\]\]\], here \[\[\[3\]\]\]"):
        EpisodeControl(other, window_length=4, total_steps=8, seed=0).load_state_dict(state)


def test_load_state_dict_reports_missing_keys_and_old_states_of_another_window_length():
    loop = Loop()
    state = saved_state(loop)
    control = EpisodeControl(loop.optimizer, window_length=2, total_steps=8, seed=0)
    with pytest.raises(KeyError, match=r"lacks the key\(s\) \['window'\]"):
        control.load_state_dict({k: v for k, v in state.items() if k != "window"})
    with pytest.raises(KeyError, match=r"state\['window'\] lacks the key\(s\) \['losses'\]"):
        control.load_state_dict({**state, "layout": None, "window": {k: v for k, v in state["window"].items() if k != "losses"}})
    with pytest.raises(ValueError, match="saved under another window length"):
        control.load_state_dict({**state, "layout": None})  # a state without its layout
    with pytest.raises(TypeError, match="must be a dict"):
        control.load_state_dict([1, 2])


def test_load_state_dict_round_trip_still_continues_exactly():
    loop_a, loop_b = Loop(), Loop()
    a = EpisodeControl(loop_a.optimizer, window_length=4, total_steps=8, seed=0, grid=CandidateGrid((1.0,), (0.0, 0.01)))
    a.begin_window(1)
    a.step_end(loop_a.backward())
    b = EpisodeControl(loop_b.optimizer, window_length=4, total_steps=8, seed=5, grid=CandidateGrid((1.0,), (0.0, 0.01)))
    b.load_state_dict(a.state_dict())
    loop_b.model.load_state_dict(loop_a.model.state_dict())
    outs = [[c.step_end(lp.backward()) for _ in range(3)][-1] for c, lp in ((a, loop_a), (b, loop_b))]
    assert outs[0].reward == outs[1].reward and outs[0].info["step_losses"] == outs[1].info["step_losses"]


# ---------------------------------------------------------------- reward output
def test_register_reward_needs_a_callable_and_a_name():
    with pytest.raises(TypeError, match="must be callable"):
        register_reward("not_callable", 3.0)
    with pytest.raises(TypeError, match="non-empty string"):
        register_reward("", aees_reward)


def _nan_reward(losses, config):
    return RewardTerms(math.nan, 0.0, 0.0, 0.0, 0.0, losses[0], losses[-1])


def _tensor_reward(losses, config):
    return RewardTerms(torch.tensor(0.1), 0.0, 0.0, 0.0, 0.0, losses[0], losses[-1])


def _bare_float_reward(losses, config):
    return 0.1


@pytest.mark.parametrize(
    "name, fn, what",
    [("nan_reward", _nan_reward, "reward=nan"), ("tensor_reward", _tensor_reward, "of type Tensor"),
     ("bare_float", _bare_float_reward, "must return RewardTerms")],
)
def test_unusable_reward_output_ends_the_run_flagged_with_the_function_named(name, fn, what):
    register_reward(name, fn, overwrite=True)
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=2, total_steps=6, seed=0, reward={"name": name, "clip_min": -0.5})
    control.begin_window(0)
    control.step_end(loop.backward())
    outcome = control.step_end(loop.backward())
    error = outcome.info["reward_error"]
    assert outcome.terminated and outcome.info["diverged"] and control.done
    assert outcome.reward == -0.5  # the divergence reward
    assert f"reward {name!r}" in error and fn.__qualname__ in error and what in error


def test_env_step_flags_a_non_finite_custom_reward():
    register_reward("nan_reward", _nan_reward, overwrite=True)
    env = gym.make("aees_gym/Synthetic-v0", total_steps=20, window_length=10, reward={"name": "nan_reward"})
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(0)
    assert terminated and info["diverged"] and math.isfinite(reward)
    assert "nan_reward" in info["reward_error"] and info["final_metrics"]["diverged"]
    env.close()


def test_a_good_reward_leaves_reward_error_empty():
    loop = Loop()
    control = EpisodeControl(loop.optimizer, window_length=1, total_steps=1, seed=0)
    control.begin_window(0)
    assert control.step_end(loop.backward()).info["reward_error"] == ""
