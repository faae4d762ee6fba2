"""The adaptive-law heuristic: its table on scripted window outcomes, and its effect on real training."""

from __future__ import annotations

from typing import Any

import pytest
from gymnasium import spaces
from heuristic_helpers import OBS_SPACE, THRESHOLDS, Outcomes, window

from aees_gym import Candidate, CandidateGrid
from aees_gym.suite.run_spec import RunSpec
from agents.heuristic import CUT, HOLD, PATIENCE_CUT, PLATEAU, RAISE, HeuristicAgent, classify_window


@pytest.mark.parametrize(
    ("info", "previous_mean", "rule"),
    [
        ({"candidate_grid": None, "trend_bucket": "stable"}, None, HOLD),  # reset info: no window yet
        (window(diverged=True), 1.0, CUT),
        (window(change=float("nan")), 1.0, CUT),
        (window(change=0.06), 1.0, CUT),  # the mean rose by more than 5 %
        (window(change=-0.5, trend="improving", instability=0.3), 1.0, CUT),  # unstable wins
        (window(change=-0.02), 1.0, RAISE),  # the mean fell by more than 1 %
        (window(change=-0.02, trend="worsening"), 1.0, RAISE),  # the window mean decides
        (window(change=0.005), 1.0, PLATEAU),
        (window(change=0.04), 1.0, PLATEAU),  # within both tolerances, stable trend
        (window(change=-0.005, trend="improving"), 1.0, HOLD),  # within tolerances, trend not flat
        # The first window compares its own last and first loss.
        ({**window(), "loss_first": 1.0, "loss_last": 0.9, "loss_mean": 5.0}, None, RAISE),
        # Later windows compare means: 0.9 after a previous mean of 0.8 is +12.5 %.
        ({**window(), "loss_first": 1.0, "loss_last": 0.5, "loss_mean": 0.9}, 0.8, CUT),
    ],
)
def test_classify_window_applies_the_documented_thresholds(
    info: dict[str, Any], previous_mean: float | None, rule: str
) -> None:
    assert classify_window(info, previous_mean, **THRESHOLDS) == rule


GRID = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005, 0.01))
MOMENTUM_GRID = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.01), momenta=(0.0, 0.5, 0.95))


def reset_agent(grid: CandidateGrid = GRID, mode: str = "index", **kwargs: Any) -> HeuristicAgent:
    agent = HeuristicAgent(**kwargs)
    agent.reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Discrete(grid.size),
                info={"candidate_grid": grid, "action_mode": mode})
    return agent


def step(agent: HeuristicAgent, info: dict[str, Any]) -> Candidate:
    agent.update(agent.act(None, {}), 0.0, None, False, False, info)
    return agent.act(None, info)


def test_first_window_runs_the_baseline_candidate() -> None:
    assert reset_agent().act(None, {}) == Candidate(1.0, 1e-3)
    assert reset_agent(MOMENTUM_GRID).act(None, {}) == Candidate(1.0, 1e-3, 0.9)


def test_lr_rises_on_gains_falls_on_trouble_damped_by_variance() -> None:
    agent, outcome = reset_agent(), Outcomes()
    # Improving with variance 0.01: α·(1 + 0.02 / 1.01); the noise returns to σ₀.
    c = step(agent, outcome(-0.1, trend="improving"))
    assert c.lr_multiplier == pytest.approx(1.0 + 0.02 / 1.01) and c.noise_std == 1e-3
    alpha = c.lr_multiplier
    # Worsening with variance 0.2: α·0.8 / 1.2, then a 2-window cooldown holds α despite gains.
    c = step(agent, outcome(0.1, instability=0.2))
    assert c.lr_multiplier == pytest.approx(alpha * 0.8 / 1.2) and agent.last_rule == CUT
    alpha = c.lr_multiplier
    held = [step(agent, outcome(-0.1, trend="improving")).lr_multiplier for _ in range(3)]
    assert held[:2] == [alpha, alpha] and held[2] == pytest.approx(alpha * (1 + 0.02 / 1.01))
    # Unstable windows keep cutting but never below the grid's 0.5.
    for _ in range(10):
        c = step(agent, outcome(-0.1, instability=5.0))
    assert c.lr_multiplier == 0.5 and agent.last_rule == CUT
    # Sustained gains climb, bounded by the grid's 2.0: the LR really moves between cells.
    seen = [step(agent, outcome(-0.05, trend="improving", instability=0.0)).lr_multiplier for _ in range(80)]
    assert seen[-1] == 2.0 and len({round(x, 9) for x in seen}) > 30


def test_patience_cuts_once_then_cooldown() -> None:
    agent, outcome = reset_agent(patience=3, cooldown=2), Outcomes()
    rules, lrs = [], []
    for _ in range(7):
        lrs.append(step(agent, outcome(0.0)).lr_multiplier)
        rules.append(agent.last_rule)
    assert rules == [PLATEAU, PLATEAU, PATIENCE_CUT, PLATEAU, PLATEAU, PATIENCE_CUT, PLATEAU]
    assert lrs == pytest.approx([1.0, 1.0, 0.8, 0.8, 0.8, 0.64, 0.64])


def test_noise_rises_on_plateaus_and_is_cut_when_unstable() -> None:
    agent, outcome = reset_agent(patience=100), Outcomes()
    sigmas = [step(agent, outcome(0.0)).noise_std for _ in range(5)]
    assert sigmas == pytest.approx([2e-3, 4e-3, 8e-3, 0.01, 0.01])  # bounded by the grid's 0.01
    assert step(agent, outcome(0.0, instability=1.0)).noise_std == pytest.approx(0.005)
    assert step(agent, outcome(0.0, trend="improving")).noise_std == pytest.approx(0.005)  # hold: unchanged
    assert step(agent, outcome(-0.1, trend="improving")).noise_std == 1e-3


def test_momentum_rises_with_consistent_gains_and_decays_on_stalls() -> None:
    agent, outcome = reset_agent(MOMENTUM_GRID, patience=100), Outcomes()
    mus = [step(agent, outcome(-0.1, trend="improving")).momentum for _ in range(8)]
    # One improving window is not yet consistent; from the second on, +0.01 each, up to 0.95.
    assert mus == pytest.approx([0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.95, 0.95])
    assert step(agent, outcome(0.0)).momentum == pytest.approx(0.93)
    assert step(agent, outcome(0.2)).momentum == pytest.approx(0.91)
    assert reset_agent().act(None, {}).momentum is None  # no axis, no momentum


def test_relative_mode_sends_the_step_factor() -> None:
    agent, outcome = reset_agent(mode="relative"), Outcomes()
    assert step(agent, outcome(-0.1, trend="improving", instability=0.0)).lr_multiplier == pytest.approx(1.02)
    assert step(agent, outcome(0.2, instability=0.0)).lr_multiplier == pytest.approx(0.8)
    assert step(agent, outcome(-0.1, trend="improving", instability=0.0)).lr_multiplier == 1.0  # cooldown
    assert agent.state()["lr_multiplier"] == pytest.approx(1.02 * 0.8)


def test_every_candidate_is_inside_the_grid_ranges_and_the_env_runs_it() -> None:
    agent, outcome = reset_agent(MOMENTUM_GRID), Outcomes()
    for change, kw in [(-0.5, {"trend": "improving"}), (0.5, {}), (0.0, {}), (0.0, {"instability": 9.0})] * 20:
        MOMENTUM_GRID.check_candidate(step(agent, outcome(change, **kw)))


def test_state_dict_round_trip_and_bad_arguments() -> None:
    agent, outcome = reset_agent(MOMENTUM_GRID), Outcomes()
    for info in (outcome(-0.1, trend="improving"), outcome(), outcome(0.1, trend="worsening")):
        step(agent, info)
    state = agent.state_dict()
    other = reset_agent(MOMENTUM_GRID)
    other.load_state_dict(state)
    assert other.state_dict() == state
    same = outcome(-0.2, trend="improving")
    assert step(other, same) == step(agent, same)
    for kwargs in ({"raise_factor": 1.0}, {"cut_factor": 1.2}, {"instability_threshold": -1.0},
                   {"momentum": 1.0}, {"patience": 0}, {"noise_std": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            HeuristicAgent(**kwargs)
    with pytest.raises(ValueError, match=r"lr_bounds \(0.1, 1.0\) must satisfy 0.5 <= low <= high <= 2.0"):
        reset_agent(lr_bounds=(0.1, 1.0))
    with pytest.raises(RuntimeError, match="reset"):
        HeuristicAgent().act(None, {})
    with pytest.raises(TypeError, match="Discrete"):
        HeuristicAgent().reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Box(-1, 1, (2,)),
                               info={"candidate_grid": GRID})


@pytest.mark.slow
def test_on_digits_noisy_its_lr_moves_and_the_run_differs_from_fixed() -> None:
    from aees_gym.suite.one_run import run_one

    def run(agent: str, **kwargs: Any) -> Any:
        spec = RunSpec(suite="t", task="DigitsNoisy", task_label="DigitsNoisy", agent=agent, agent_label=agent, seed=0,
                       env_overrides={"total_steps": 300, "window_length": 20, "eval_every": 0}, agent_kwargs=kwargs)
        result = run_one(spec)
        assert result.status == "ok", result.error
        return result

    heuristic = run("heuristic")
    fixed = run("fixed", lr_multiplier=1.0, noise_std=0.0)
    lrs = [w["lr_multiplier"] for w in heuristic.windows]
    assert lrs[0] == 1.0 and len(set(lrs)) > 5 and max(abs(x - 1.0) for x in lrs) > 0.05
    assert {w["lr_multiplier"] for w in fixed.windows} == {1.0}
    assert heuristic.windows[0]["noise_std"] == 1e-3 and all("frozen_fraction" in w for w in heuristic.windows)
    assert [w["loss_mean"] for w in heuristic.windows] != [w["loss_mean"] for w in fixed.windows]
