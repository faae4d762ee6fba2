"""The grid-cell heuristic variant on given window outcomes and on real training (the shared window
classification is tested in test_heuristic.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from gymnasium import spaces
from heuristic_helpers import OBS_SPACE, Outcomes

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym import CandidateGrid
from aees_gym.envs.episode import run_episode
from agents.heuristic import CUT
from agents.heuristic_grid import GridHeuristicAgent as HeuristicAgent


def reset_agent(grid: CandidateGrid, mode: str = "index", **kwargs: Any) -> HeuristicAgent:
    agent = HeuristicAgent(**kwargs)
    agent.reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Discrete(grid.size),
                info={"candidate_grid": grid, "action_mode": mode})
    return agent


def step(agent: HeuristicAgent, info: dict[str, Any]) -> int:
    agent.update(agent.act(None, {}), 0.0, None, False, False, info)
    return agent.act(None, info)


def test_transient_mode_keeps_a_cumulative_scale_and_maps_it_to_the_nearest_cell() -> None:
    grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005, 0.01))
    agent = reset_agent(grid)
    window = Outcomes()
    assert agent.act(None, {}) == grid.index_of(1.0, 0.0)
    # Plateaus raise the noise one level per consecutive plateau window, capped at the largest.
    assert [grid.values(step(agent, window())) for _ in range(3)] == [(1.0, 0.005), (1.0, 0.01), (1.0, 0.01)]
    # An improving window sets the noise back to zero and nudges the scale up (still nearest ×1).
    assert grid.values(step(agent, window(-0.1, trend="improving"))) == (1.0, 0.0)
    assert agent.state()["lr_scale"] == pytest.approx(1.02)
    # Two cuts: 1.02 · 0.8² = 0.65, nearer 0.5 than 1 in log distance.
    assert grid.values(step(agent, window(0.1, trend="worsening"))) == (1.0, 0.0)
    assert grid.values(step(agent, window(0.1, trend="worsening"))) == (0.5, 0.0)
    # The scale is clamped to the grid's range, so it never runs away from the cells.
    for _ in range(10):
        step(agent, window(instability=1.0))
    assert agent.state()["lr_scale"] == 0.5 and agent.last_rule == CUT
    # Sustained improvement climbs back: ×1 is nearest once 0.5 · 1.02^k > √0.5 (k = 18) and ×2
    # once it exceeds √2 (k = 53).
    lrs = [grid.values(step(agent, window(-0.1, trend="improving")))[0] for _ in range(53)]
    assert lrs[16] == 0.5 and lrs[17] == 1.0 and lrs[51] == 1.0 and lrs[52] == 2.0


def test_relative_mode_picks_the_multiplier_nearest_to_each_factor() -> None:
    grid = CandidateGrid((0.8, 1.0, 1.02), (0.0, 0.01))
    agent = reset_agent(grid, mode="relative")
    window = Outcomes()
    assert grid.values(agent.act(None, {})) == (1.0, 0.0)
    assert grid.values(step(agent, window(-0.1, trend="improving"))) == (1.02, 0.0)
    assert grid.values(step(agent, window(-0.1, trend="improving"))) == (1.02, 0.0)
    assert grid.values(step(agent, window(0.2))) == (0.8, 0.0)
    assert grid.values(step(agent, window())) == (1.0, 0.01)
    # With the default grid neither 0.8 nor 1.02 is near another cell than ×1: documented.
    coarse_grid = CandidateGrid((0.5, 1.0, 2.0), (0.0,))
    coarse = reset_agent(coarse_grid, mode="relative")
    outcomes = (window(-0.1, trend="improving"), window(0.1, trend="worsening"))
    assert {coarse_grid.values(step(coarse, w)) for w in outcomes} == {(1.0, 0.0)}


def run_relative(**overrides: Any) -> tuple[list[float], dict[str, Any]]:
    """The lr multiplier chosen for every window of one run, and the last window's info."""
    env = gym.make(
        "aees_gym/Synthetic-v0", action_mode="relative", eval_every=0,
        grid={"lr_multipliers": (0.8, 1.0, 1.02), "noise_stds": (0.0, 0.005)}, **overrides,
    )
    trace = run_episode(env, HeuristicAgent(), seed=0)
    chosen = [info["candidate_grid"].values(info["action"])[0] for info in trace.infos]
    return chosen, trace.infos[-1]


def test_on_real_training_it_raises_a_healthy_lr_and_cuts_an_unstable_one() -> None:
    chosen, last = run_relative(total_steps=400, window_length=20, base_lr=1e-3)
    assert last["lr_scale"] > 1.2  # improving windows compound ×1.02
    assert min(chosen) == 1.0 and chosen.count(1.02) >= len(chosen) - 3  # never cut
    # SGD at lr 1 with momentum: the loss jumps around and rises; the law cuts at once.
    chosen, last = run_relative(total_steps=400, window_length=20, optimizer="sgd", base_lr=1.0, momentum=0.9)
    assert chosen[1:3] == [0.8, 0.8]
    assert last["lr_scale"] < 0.5 and not last["diverged"]


def test_state_dict_round_trip_and_bad_arguments() -> None:
    grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005))
    agent = reset_agent(grid)
    window = Outcomes()
    for info in (window(), window(), window(0.1, trend="worsening")):
        step(agent, info)
    state = agent.state_dict()
    other = reset_agent(grid)
    other.load_state_dict(state)
    assert other.state_dict() == state
    same = window()
    assert step(other, same) == step(agent, same)
    for kwargs in ({"raise_factor": 1.0}, {"cut_factor": 1.2}, {"instability_threshold": -1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            HeuristicAgent(**kwargs)
    with pytest.raises(RuntimeError, match="reset"):
        HeuristicAgent().act(None, {})
    with pytest.raises(TypeError, match="Discrete"):
        HeuristicAgent().reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Box(-1, 1, (2,)),
                               info={"candidate_grid": grid})
