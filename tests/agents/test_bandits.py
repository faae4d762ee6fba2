"""Discounted-UCB agents: decision parity with pulseopt 0.3.0, checkpoints and failure modes.

pulseopt is driven through its own ``StructuredEpisodeManager`` (the object that routes selections
and rewards inside ``AEES``) with controllers built by its own ``scheduler`` helpers, so the
reference side is wired exactly as AEES wires it. Windows are one step long and the reward
function is replaced by a scripted reward stream, so both sides see identical rewards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from pulseopt.controller import (
    TREND_CONTEXT_BUCKETS,
    BucketedContextualController,
    DiscountedUCBController,
)
from pulseopt.episode import StructuredEpisodeManager
from pulseopt.scheduler import _build_controller, _build_noise_controller

from agents import make_agent
from agents.bandits import (
    TREND_BUCKETS,
    TREND_PHASE_BUCKETS,
    ContextualUCBAgent,
    DiscountedUCB,
    DiscountedUCBAgent,
)

WINDOWS = 320
SEEDS = [0, 1, 7, 42, 12345]
GRIDS = [(3, 3), (3, 1), (1, 3), (2, 2)]
MODES = ["independent", "conditional"]
# None: pulseopt's defaults through its own builders; else (c, gamma, warmup) built by hand
# with the scheduler's seed rules. warmup 0 and gamma 1 make exact score ties common.
HYPERS: list[tuple[float, float, int] | None] = [None, (0.5, 1.0, 2), (2.0, 0.8, 0)]
OBS_SPACE = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
OBS = np.zeros(1, dtype=np.float32)


@dataclass(frozen=True)
class StandInGrid:
    """The members of aees_gym's CandidateGrid that agents use."""

    lr_multipliers: tuple[float, ...]
    noise_stds: tuple[float, ...]

    def index(self, lr_idx: int, noise_idx: int) -> int:
        return lr_idx * len(self.noise_stds) + noise_idx

    def split(self, action: int) -> tuple[int, int]:
        return divmod(action, len(self.noise_stds))


def make_grid(n_lr: int, n_noise: int) -> StandInGrid:
    return StandInGrid(
        tuple(0.5 * 2.0**i for i in range(n_lr)), tuple(0.005 * i for i in range(n_noise))
    )


def reward_stream(seed: int, n_modes: int) -> Callable[[int, int, int], float]:
    """reward(t, bucket index, mode id): noisy and nonstationary, with stretches of exact 0.0."""
    rng = np.random.default_rng(seed + 555)
    means = rng.uniform(-0.4, 0.4, size=(2, len(TREND_PHASE_BUCKETS), n_modes))
    noise = rng.normal(0.0, 0.2, size=WINDOWS)

    def reward(t: int, bucket: int, mode: int) -> float:
        if 120 <= t < 200 or t % 9 == 0:
            return 0.0
        value = means[int(t >= 200), bucket, mode] + noise[t]
        return float(min(1.0, max(-1.0, value)))

    return reward


def bucket_stream(seed: int, names: Sequence[str]) -> list[str]:
    """Sticky random buckets, like a trend that persists for a few windows."""
    rng = np.random.default_rng(seed + 999)
    stream = [names[int(rng.integers(len(names)))]]
    for _ in range(WINDOWS - 1):
        stream.append(stream[-1] if rng.random() < 0.7 else names[int(rng.integers(len(names)))])
    return stream


class ScriptedReward:
    """pulseopt reward function that returns the scripted reward of the window's mode."""

    def __init__(self, reward: Callable[[int, int, int], float], buckets: list[int]) -> None:
        self._reward, self._buckets, self._t = reward, buckets, 0

    def compute(self, summary: Any) -> float:
        value = self._reward(self._t, self._buckets[self._t], summary.mode_id)
        self._t += 1
        return value


def reference_controllers(
    n_lr: int,
    n_noise: int,
    mode: str,
    seed: int,
    hyper: tuple[float, float, int] | None,
    bucket_names: list[str] | None,
) -> tuple[Any, Any]:
    """pulseopt's (lr controller, noise controller(s)), wired as ``AEES.__init__`` wires them."""
    if hyper is None:
        lr = _build_controller(n_lr, "adaptive", bucket_names, seed)
        noise = _build_noise_controller(
            [0.0] * n_noise, [1.0] * n_lr, "adaptive", mode, bucket_names, seed
        )
        return lr, noise
    c, gamma, warmup = hyper

    def build(n_arms: int, arm_seed: int) -> Any:
        if n_arms == 1:
            return None
        common = {"exploration_coef": c, "discount": gamma, "warmup_rounds": warmup}
        if bucket_names is None:
            return DiscountedUCBController(n_arms, random_seed=arm_seed, **common)
        return BucketedContextualController(
            n_arms, bucket_names, random_seed=arm_seed, prior_from_global=True, **common
        )

    lr = build(n_lr, seed)
    if n_noise == 1:
        return lr, None
    if mode == "independent" or n_lr == 1:
        return lr, build(n_noise, seed + 101)
    return lr, [build(n_noise, seed + 101 + i) for i in range(n_lr)]


def run_reference(
    n_lr: int,
    n_noise: int,
    mode: str,
    seed: int,
    hyper: tuple[float, float, int] | None,
    bucket_names: list[str] | None = None,
    buckets: list[str] | None = None,
) -> tuple[list[tuple[int, int]], Any, Any]:
    lr, noise = reference_controllers(n_lr, n_noise, mode, seed, hyper, bucket_names)
    bucket_ids = [0] * WINDOWS if buckets is None else [bucket_names.index(b) for b in buckets]
    manager = StructuredEpisodeManager(
        lr_candidates=[1.0 + i for i in range(n_lr)],
        noise_candidates=[0.001 * i for i in range(n_noise)],
        lr_controller=lr,
        noise_controller=noise,
        reward_fn=ScriptedReward(reward_stream(seed, n_lr * n_noise), bucket_ids),
        episode_length=1,
        structured_control_mode=mode,
        context_mode="none" if buckets is None else "trend",
    )
    if buckets is not None:
        # The manager derives buckets from losses; script them instead so any bucket sequence
        # (including trend × phase names) goes through pulseopt's own routing.
        scripted = iter(buckets)
        manager._resolve_context = lambda: next(scripted)  # type: ignore[method-assign]
    for step in range(WINDOWS):
        manager.on_step_start(step)
        manager.on_step_end(1.0)
    logs = manager.get_logs()
    choices = list(zip(logs["selected_lr_indices"], logs["selected_noise_indices"], strict=True))
    return choices, lr, noise


def agent_kwargs(hyper: tuple[float, float, int] | None, mode: str) -> dict[str, Any]:
    if hyper is None:
        return {"structured": mode}
    c, gamma, warmup = hyper
    return {"c": c, "gamma": gamma, "warmup": warmup, "structured": mode}


def reset(agent: Any, grid: StandInGrid, seed: int, **info: Any) -> dict[str, Any]:
    info = {"candidate_grid": grid, **info}
    space = spaces.Discrete(len(grid.lr_multipliers) * len(grid.noise_stds))
    agent.reset(seed=seed, observation_space=OBS_SPACE, action_space=space, info=info)
    return info


def drive(
    agent: Any,
    grid: StandInGrid,
    reward: Callable[[int, int, int], float],
    windows: range,
    buckets: list[str] | None = None,
    info_key: str = "trend_bucket",
    names: Sequence[str] = ("",),
) -> list[tuple[int, int]]:
    choices = []
    for t in windows:
        info: dict[str, Any] = {"candidate_grid": grid}
        if buckets is not None:
            info[info_key] = buckets[t]
        action = agent.act(OBS, info)
        assert type(action) is int
        bucket = 0 if buckets is None else list(names).index(buckets[t])
        agent.update(action, reward(t, bucket, action), OBS, False, False, info)
        choices.append(grid.split(action))
    return choices


def assert_same_statistics(mine: dict[str, Any], reference: Any) -> None:
    theirs = reference.get_state()
    for mine_key, their_key in [
        ("counts", "counts"),
        ("sums", "reward_sums"),
        ("mean_rewards", "mean_rewards"),
        ("warmup_counts", "warmup_counts"),
        ("total_updates", "total_updates"),
    ]:
        assert mine[mine_key] == theirs[their_key], mine_key  # exact: same float operations


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("hyper", HYPERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", GRIDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_ducb_matches_pulseopt(
    seed: int, shape: tuple[int, int], mode: str, hyper: tuple[float, float, int] | None
) -> None:
    n_lr, n_noise = shape
    expected, ref_lr, ref_noise = run_reference(n_lr, n_noise, mode, seed, hyper)
    grid = make_grid(n_lr, n_noise)
    agent = DiscountedUCBAgent(**agent_kwargs(hyper, mode))
    reset(agent, grid, seed)
    assert drive(agent, grid, reward_stream(seed, n_lr * n_noise), range(WINDOWS)) == expected

    state = agent.state()
    assert (state["lr"] is None) == (ref_lr is None)
    if ref_lr is not None:
        assert_same_statistics(state["lr"], ref_lr)
    if ref_noise is None:
        ref_noise = []
    elif not isinstance(ref_noise, list):
        ref_noise = [ref_noise]
    assert len(state["noise"]) == len(ref_noise)
    for mine, theirs in zip(state["noise"], ref_noise, strict=True):
        assert_same_statistics(mine, theirs)


@pytest.mark.parametrize("bucketing", ["trend", "trend_phase"])
@pytest.mark.parametrize("hyper", [None, (0.5, 1.0, 2)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", GRIDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_contextual_matches_pulseopt(
    seed: int,
    shape: tuple[int, int],
    mode: str,
    hyper: tuple[float, float, int] | None,
    bucketing: str,
) -> None:
    n_lr, n_noise = shape
    names = list(TREND_BUCKETS if bucketing == "trend" else TREND_PHASE_BUCKETS)
    buckets = bucket_stream(seed, names)
    expected, ref_lr, _ = run_reference(n_lr, n_noise, mode, seed, hyper, names, buckets)
    grid = make_grid(n_lr, n_noise)
    agent = ContextualUCBAgent(bucketing=bucketing, **agent_kwargs(hyper, mode))
    key = "trend_bucket" if bucketing == "trend" else "context_bucket"
    reset(agent, grid, seed, **{key: buckets[0]})
    reward = reward_stream(seed, n_lr * n_noise)
    assert drive(agent, grid, reward, range(WINDOWS), buckets, key, names) == expected

    if ref_lr is not None:
        mine, theirs = agent.state()["lr"], ref_lr.get_state()
        assert_same_statistics(mine["prior"], ref_lr._global_prior)
        assert mine["bucket_visits"] == theirs["bucket_visit_counts"]
        assert mine["bucket_distinct_arms"] == theirs["bucket_distinct_arm_counts"]
        for name in names:
            assert (mine["buckets"][name] is None) == (theirs["bucket_states"][name] is None)
            if mine["buckets"][name] is not None:
                assert_same_statistics(mine["buckets"][name], ref_lr._bucket_controllers[name])


def test_bucket_names_match_pulseopt_order() -> None:
    assert list(TREND_BUCKETS) == TREND_CONTEXT_BUCKETS
    assert TREND_PHASE_BUCKETS[:3] == ("early_improving", "early_stable", "early_worsening")
    assert TREND_PHASE_BUCKETS[-1] == "late_worsening" and len(TREND_PHASE_BUCKETS) == 9


@settings(max_examples=150, deadline=None)
@given(
    n_arms=st.integers(1, 6),
    c=st.floats(0.0, 3.0),
    gamma=st.floats(0.05, 1.0),
    warmup=st.integers(0, 3),
    seed=st.integers(0, 2**32),
    rewards=st.lists(
        st.one_of(st.sampled_from([0.0, 0.5, -0.5, 1.0]), st.floats(-1.0, 1.0)),
        min_size=1,
        max_size=60,
    ),
)
def test_discounted_ucb_matches_controller(
    n_arms: int, c: float, gamma: float, warmup: int, seed: int, rewards: list[float]
) -> None:
    mine = DiscountedUCB(n_arms, c=c, gamma=gamma, warmup=warmup, seed=seed)
    theirs = DiscountedUCBController(
        n_arms, exploration_coef=c, discount=gamma, warmup_rounds=warmup, random_seed=seed
    )
    for reward in rewards:
        arm = mine.select()
        assert arm == theirs.select_mode()
        mine.update(arm, reward)
        theirs.update(arm, reward)
    assert_same_statistics(mine.state(), theirs)


def test_scores_within_tolerance_tie_and_the_rng_breaks_them() -> None:
    # Equal counts and means 1e-13 apart: a tie for the reference, so the seed decides.
    picks = set()
    for seed in range(30):
        mine = DiscountedUCB(2, gamma=1.0, seed=seed)
        theirs = DiscountedUCBController(2, discount=1.0, random_seed=seed)
        for _ in range(2):
            arm = mine.select()
            assert arm == theirs.select_mode()
            reward = 0.3 if arm == 0 else 0.3 + 1e-13
            mine.update(arm, reward)
            theirs.update(arm, reward)
        pick = mine.select()
        assert pick == theirs.select_mode()
        picks.add(pick)
    assert picks == {0, 1}


# ----------------------------------------------------------------------------- checkpoints


def json_roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", GRIDS)
def test_ducb_state_dict_resumes_exactly(shape: tuple[int, int], mode: str) -> None:
    grid, seed = make_grid(*shape), 3
    reward = reward_stream(seed, shape[0] * shape[1])
    original = DiscountedUCBAgent(structured=mode, c=0.7)
    reset(original, grid, seed)
    drive(original, grid, reward, range(150))
    state = json_roundtrip(original.state_dict())

    resumed = DiscountedUCBAgent(structured=mode, c=0.7)
    reset(resumed, grid, seed=999)  # the checkpoint, not this seed, decides what follows
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    rest = range(150, WINDOWS)
    assert drive(resumed, grid, reward, rest) == drive(original, grid, reward, rest)
    assert resumed.state_dict() == original.state_dict()


@pytest.mark.parametrize("bucketing", ["trend", "trend_phase"])
@pytest.mark.parametrize("mode", MODES)
def test_contextual_state_dict_resumes_exactly_mid_window(mode: str, bucketing: str) -> None:
    grid, seed = make_grid(3, 3), 11
    names = list(TREND_BUCKETS if bucketing == "trend" else TREND_PHASE_BUCKETS)
    key = "trend_bucket" if bucketing == "trend" else "context_bucket"
    buckets, reward = bucket_stream(seed, names), reward_stream(seed, 9)
    original = ContextualUCBAgent(bucketing=bucketing, structured=mode)
    reset(original, grid, seed, **{key: buckets[0]})
    drive(original, grid, reward, range(100), buckets, key, names)
    # Checkpoint between act and update: the open window's bucket must survive.
    info = {"candidate_grid": grid, key: buckets[100]}
    action = original.act(OBS, info)
    state = json_roundtrip(original.state_dict())
    assert state["pending_bucket"] == buckets[100]

    resumed = ContextualUCBAgent(bucketing=bucketing, structured=mode)
    reset(resumed, grid, seed, **{key: buckets[0]})
    resumed.load_state_dict(state)
    for agent in (original, resumed):
        agent.update(action, reward(100, names.index(buckets[100]), action), OBS, False, False, {})
    rest = range(101, WINDOWS)
    assert drive(resumed, grid, reward, rest, buckets, key, names) == drive(
        original, grid, reward, rest, buckets, key, names
    )
    assert resumed.state_dict() == original.state_dict()


def test_load_state_dict_rejects_other_config_and_needs_reset() -> None:
    grid = make_grid(3, 3)
    agent = DiscountedUCBAgent()
    reset(agent, grid, 0)
    state = agent.state_dict()
    other = DiscountedUCBAgent(gamma=0.9)
    reset(other, grid, 0)
    with pytest.raises(ValueError, match="config"):
        other.load_state_dict(state)
    smaller = DiscountedUCBAgent()
    reset(smaller, make_grid(2, 3), 0)
    with pytest.raises(ValueError, match="grid"):
        smaller.load_state_dict(state)
    with pytest.raises(RuntimeError, match="reset"):
        DiscountedUCBAgent().load_state_dict(state)


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["ducb", "contextual"])
def test_non_finite_reward_raises_and_changes_nothing(name: str, bad: float) -> None:
    grid = make_grid(3, 3)
    agent = make_agent(name, structured="conditional")
    info = reset(agent, grid, 5, trend_bucket="stable")
    drive(agent, grid, reward_stream(5, 9), range(20), ["stable"] * 20, names=TREND_BUCKETS)
    action = agent.act(OBS, info)
    before = agent.state_dict()
    with pytest.raises(ValueError, match="finite"):
        agent.update(action, bad, OBS, False, False, info)
    assert agent.state_dict() == before
    with pytest.raises(ValueError, match="finite"):
        DiscountedUCB(3).update(0, bad)


def test_invalid_arguments_name_the_choices() -> None:
    with pytest.raises(ValueError, match="independent"):
        DiscountedUCBAgent(structured="joint")
    with pytest.raises(ValueError, match="trend_phase"):
        ContextualUCBAgent(bucketing="phase")
    with pytest.raises(ValueError, match="gamma"):
        DiscountedUCBAgent(gamma=0.0)
    with pytest.raises(ValueError, match="arm"):
        DiscountedUCB(3).update(3, 0.0)


def test_contextual_needs_a_known_bucket_in_info() -> None:
    grid = make_grid(2, 2)
    agent = ContextualUCBAgent(bucketing="trend_phase")
    reset(agent, grid, 0)
    with pytest.raises(KeyError, match="context_bucket"):
        agent.act(OBS, {"candidate_grid": grid})
    with pytest.raises(ValueError, match="early_improving"):
        agent.act(OBS, {"context_bucket": "stable"})
    with pytest.raises(RuntimeError, match="act"):
        agent.update(0, 0.1, OBS, False, False, {})


def test_reset_checks_grid_and_action_space() -> None:
    agent = DiscountedUCBAgent()
    with pytest.raises(KeyError, match="candidate_grid"):
        agent.reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Discrete(9), info={})
    info = {"candidate_grid": make_grid(3, 3)}
    with pytest.raises(ValueError, match="9 mode ids"):
        agent.reset(seed=0, observation_space=OBS_SPACE, action_space=spaces.Discrete(6), info=info)
    with pytest.raises(TypeError, match="Discrete"):
        agent.reset(
            seed=0,
            observation_space=OBS_SPACE,
            action_space=spaces.MultiDiscrete([3, 3]),
            info=info,
        )


# ----------------------------------------------------------------------------- with aees_gym


def test_agents_work_with_the_env_grid_and_bucket_names() -> None:
    import aees_gym.core.context as context
    import aees_gym.core.grid as grid_module

    assert tuple(context.TREND_BUCKETS) == TREND_BUCKETS
    assert tuple(context.CONTEXT_BUCKETS) == TREND_PHASE_BUCKETS
    grid = grid_module.CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005, 0.01))
    stand_in = make_grid(3, 3)
    reward = reward_stream(0, 9)
    for mode in MODES:
        real = DiscountedUCBAgent(structured=mode)
        reset(real, grid, 0)
        fake = DiscountedUCBAgent(structured=mode)
        reset(fake, stand_in, 0)
        assert drive(real, grid, reward, range(60)) == drive(fake, stand_in, reward, range(60))


# ----------------------------------------------------------------------------- momentum axis

MOMENTUM_GRID_ARGS = ((0.5, 1.0, 2.0), (0.0, 0.01), (0.0, 0.5, 0.9))


def momentum_grid() -> Any:
    from aees_gym.core.grid import CandidateGrid

    lrs, noises, momenta = MOMENTUM_GRID_ARGS
    return CandidateGrid(lrs, noises, momenta=momenta)


def reset_momentum(agent: Any, seed: int) -> Any:
    grid = momentum_grid()
    agent.reset(seed=seed, observation_space=OBS_SPACE, action_space=spaces.Discrete(grid.size),
                info={"candidate_grid": grid})
    return grid


@pytest.mark.parametrize("mode", MODES)
def test_momentum_axis_gets_its_own_seeded_controllers(mode: str) -> None:
    """Three axes, decided and credited as documented: lr, noise under lr, momentum under (lr, noise)."""
    seed, n_lr, n_noise, n_momentum = 4, 3, 2, 3
    agent = DiscountedUCBAgent(structured=mode)
    grid = reset_momentum(agent, seed)
    lr = DiscountedUCB(n_lr, seed=seed)
    if mode == "independent":
        noise = [DiscountedUCB(n_noise, seed=seed + 101)]
        momentum = [DiscountedUCB(n_momentum, seed=seed + 5003)]
    else:
        noise = [DiscountedUCB(n_noise, seed=seed + 101 + i) for i in range(n_lr)]
        momentum = [DiscountedUCB(n_momentum, seed=seed + 5003 + cell) for cell in range(n_lr * n_noise)]
    reward = reward_stream(seed, grid.size)
    seen = set()
    for t in range(200):
        action = agent.act(OBS, {"candidate_grid": grid})
        i = lr.select()
        noise_ctrl = noise[0 if mode == "independent" else i]
        j = noise_ctrl.select()
        momentum_ctrl = momentum[0 if mode == "independent" else i * n_noise + j]
        k = momentum_ctrl.select()
        assert grid.indices(action) == (i, j, k)
        r = reward(t, 0, action)
        agent.update(action, r, OBS, False, False, {})
        for ctrl, arm in ((lr, i), (noise_ctrl, j), (momentum_ctrl, k)):
            ctrl.update(arm, r)
        seen.add(k)
    assert seen == {0, 1, 2}
    state = agent.state()
    assert len(state["momentum"]) == len(momentum)
    assert state["momentum"][0]["counts"] == momentum[0].state()["counts"]


@pytest.mark.parametrize("mode", MODES)
def test_momentum_state_dict_resumes_exactly(mode: str) -> None:
    grid = momentum_grid()
    reward = reward_stream(1, grid.size)

    def play(agent: Any, windows: range) -> list[int]:
        actions = []
        for t in windows:
            action = agent.act(OBS, {"candidate_grid": grid, "trend_bucket": TREND_BUCKETS[t % 3]})
            agent.update(action, reward(t, 0, action), OBS, False, False, {})
            actions.append(action)
        return actions

    for cls in (DiscountedUCBAgent, ContextualUCBAgent):
        original = cls(structured=mode)
        reset_momentum(original, 1)
        play(original, range(60))
        state = json_roundtrip(original.state_dict())
        assert state["grid"]["momenta"] == [0.0, 0.5, 0.9]
        resumed = cls(structured=mode)
        reset_momentum(resumed, 99)
        resumed.load_state_dict(state)
        assert play(resumed, range(60, 120)) == play(original, range(60, 120))


def test_grids_without_momentum_keep_their_state_layout() -> None:
    agent = DiscountedUCBAgent()
    reset(agent, make_grid(3, 3), 0)
    assert set(agent.state()) == {"lr", "noise"} and "momenta" not in agent.state_dict()["grid"]
