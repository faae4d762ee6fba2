"""The learned controller's divergence guard: it takes over exactly while the held-out loss is above its start."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.core.grid import CandidateGrid
from aees_gym.envs.tracks import track_overrides
from aees_gym.envs.wrappers import BoxDecoder
from agents import make_agent
from agents.learned import DEFAULT_POLICY, LearnedAgent, shipped_policies
from agents.learned_guard import GUARD_FEATURE, check_guard, guard_policy
from agents.learned_policy import MLPPolicy

SMALL = {"total_steps": 100, "window_length": 25, "torch_threads": 1}


def _obs(agent: LearnedAgent, levels: list[float]) -> np.ndarray:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (len(levels), agent.policy.n_inputs)).astype(np.float32)
    obs[:, agent.features.index(GUARD_FEATURE)] = levels
    return obs


def test_the_guard_steps_the_scale_down_on_exactly_the_rows_whose_heldout_loss_is_above_the_threshold():
    plain, guarded = LearnedAgent("learned-relative"), LearnedAgent("learned-relative", guard=0.0)
    levels = [-2.0, 0.3, -0.01, 0.01, 1.5, -0.5]
    obs = _obs(plain, levels)
    grid = CandidateGrid.from_dict(dict(plain.env_overrides["grid"]))
    decrease = grid.nearest(0.5, 0.0)
    assert grid.candidate(decrease).lr_multiplier == 0.5 and grid.candidate(decrease).noise_std == 0.0
    mine, theirs = guarded.policy.act(obs), plain.policy.act(obs)
    for level, a, b in zip(levels, mine, theirs, strict=True):
        assert a == (decrease if level > 0 else b)
    assert [guarded.act(row, {}) for row in obs] == list(mine)  # one observation at a time acts the same


def test_a_box_policy_is_guarded_with_its_lowest_lr_step_and_no_noise():
    overrides = track_overrides("continuous")
    features = overrides["context"]["features"]
    n = len(features)
    keep = MLPPolicy((np.zeros((2, n), np.float32),), (np.array([0.5, 0.5], np.float32),), ("none",), "tanh",
                     action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    guarded = guard_policy(keep, features, overrides, 0.0)
    obs = np.zeros((2, n), np.float32)
    obs[1, features.index(GUARD_FEATURE)] = 0.2
    actions = guarded.act(obs)
    assert np.allclose(actions[0], keep.act(obs[:1])[0]) and np.allclose(actions[1], [-1.0, -1.0])
    candidate = BoxDecoder(CandidateGrid.from_dict(overrides["grid"])).candidate(actions[1])
    assert candidate.lr_multiplier == pytest.approx(0.5) and candidate.noise_std == 0.0


def _scales(policy: str, guard: float | None) -> list[float]:
    agent = LearnedAgent(policy, guard=guard)
    env = gym.make("aees_gym/Digits-v0", **SMALL, **agent.env_overrides)
    obs, info = env.reset(seed=3)
    agent.reset(seed=3, observation_space=env.observation_space, action_space=env.action_space, info=info)
    scales, done = [], False
    while not done:
        obs, _, done, _, info = env.step(agent.act(obs, info))
        scales.append(info["lr_scale"])
    env.close()
    return scales


@pytest.mark.parametrize("policy", shipped_policies())
def test_in_a_real_run_the_guard_halves_the_scale_every_window_it_acts_and_is_silent_otherwise(policy):
    assert _scales(policy, -100.0) == pytest.approx([0.5, 0.25, 0.125, 0.0625])  # a threshold every run is above: it always acts
    assert _scales(policy, 100.0) == _scales(policy, None)  # one no run reaches: the policy's own scales


def test_bad_guards_and_unguardable_policies_are_clear_errors():
    for bad in (True, float("nan"), float("inf"), "0", [0.0]):
        with pytest.raises(ValueError, match="guard must be"):
            check_guard(bad)
    with pytest.raises(ValueError, match="guard must be"):
        make_agent("learned", guard=float("nan"))
    agent = LearnedAgent("learned-relative")
    without = [f for f in agent.features if f != GUARD_FEATURE]
    with pytest.raises(ValueError, match="does not observe"):
        guard_policy(agent.policy, without, agent.env_overrides, 0.0)
    with pytest.raises(ValueError, match="relative"):
        guard_policy(agent.policy, agent.features, {**agent.env_overrides, "action_mode": "index"}, 0.0)


def test_a_guarded_row_is_its_own_runs_and_an_unguarded_record_is_unchanged():
    plain = LearnedAgent.run_record(DEFAULT_POLICY)
    guarded = LearnedAgent.run_record(DEFAULT_POLICY, guard=0.0)
    assert "guard" not in plain and guarded == {**plain, "guard": 0.0}
    assert LearnedAgent.env_overrides_for(DEFAULT_POLICY, guard=0.0) == LearnedAgent.env_overrides_for(DEFAULT_POLICY)
    assert LearnedAgent.missing_input(DEFAULT_POLICY, guard=0.0) is None
