"""Agent registry, entry-point discovery and the non-learning baselines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from aees_gym.suite import agent_registry
from agents import Agent, base, make_agent, register_agent, registered_agents
from agents.baselines import FixedAgent, RandomAgent

OBS_SPACE = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
OBS = np.zeros(1, dtype=np.float32)
SCHEDULE_BASELINES = ["step", "exponential", "cosine", "linear", "warmup_linear"]


@dataclass(frozen=True)
class StandInGrid:
    """The members of aees_gym's CandidateGrid that agents use."""

    lr_multipliers: tuple[float, ...] = (0.5, 1.0, 2.0)
    noise_stds: tuple[float, ...] = (0.0, 0.005, 0.01)

    def index(self, lr_idx: int, noise_idx: int) -> int:
        return lr_idx * len(self.noise_stds) + noise_idx

    def split(self, action: int) -> tuple[int, int]:
        return divmod(action, len(self.noise_stds))


class TinyAgent(base.BaseAgent):
    name = "tiny"

    def reset(self, *, seed: Any, observation_space: Any, action_space: Any, info: Any) -> None:
        pass

    def act(self, obs: Any, info: Any) -> int:
        return 0


class OtherTinyAgent(TinyAgent):
    pass


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry with nothing registered or discovered yet, restored afterwards."""
    monkeypatch.setattr(agent_registry, "_explicit", {})
    monkeypatch.setattr(agent_registry, "_loaded", {})
    monkeypatch.setattr(agent_registry, "_discovered", None)
    yield


def reset(agent: Any, action_space: spaces.Space[Any], seed: int | None, **info: Any) -> None:
    agent.reset(seed=seed, observation_space=OBS_SPACE, action_space=action_space, info=info)


# ----------------------------------------------------------------------------- registry


def test_builtins_are_registered_under_their_own_names(registry: None) -> None:
    agents = registered_agents()
    assert set(agent_registry.builtin_agent_names()) <= set(agents)
    for name in ["random", "fixed", "ducb", "contextual"]:
        assert name in agents
    for name, cls in agents.items():
        assert cls.name == name
        assert cls.description and "\n" not in cls.description
        assert isinstance(cls.__new__(cls), Agent)


def test_unknown_name_raises_key_error_listing_sorted_names(registry: None) -> None:
    register_agent("zz-tiny", TinyAgent)
    with pytest.raises(KeyError) as excinfo:
        make_agent("nope")
    message = excinfo.value.args[0]
    listed = message.split("registered agents: ")[1].rstrip(".'").split(", ")
    assert listed == sorted(listed)
    assert set(listed) == set(agent_registry.builtin_agent_names()) | {"zz-tiny"}


def test_register_is_idempotent_and_rejects_conflicts(registry: None) -> None:
    register_agent("tiny", TinyAgent)
    register_agent("tiny", TinyAgent)
    assert isinstance(make_agent("tiny"), TinyAgent)
    with pytest.raises(ValueError, match="already refers to"):
        register_agent("tiny", OtherTinyAgent)
    with pytest.raises(ValueError, match="already refers to"):
        register_agent("ducb", TinyAgent)
    register_agent("fixed", FixedAgent)  # a built-in under its own name is no conflict
    with pytest.raises(TypeError, match="reset/act/update"):
        register_agent("broken", object)
    with pytest.raises(ValueError, match="non-empty"):
        register_agent("", TinyAgent)
    assert registered_agents()["tiny"] is TinyAgent


def test_make_agent_passes_kwargs(registry: None) -> None:
    agent = make_agent("ducb", c=0.5, structured="conditional")
    assert agent.config() == {"c": 0.5, "gamma": 0.95, "warmup": 1, "structured": "conditional"}
    with pytest.raises(TypeError):
        make_agent("random", unknown=1)


def write_distribution(root: Path, package: str, entry_points: str) -> None:
    (root / package).mkdir()
    (root / package / "__init__.py").write_text(
        "from agents.base import BaseAgent\n\n\n"
        "class MyAgent(BaseAgent):\n"
        "    name = 'mine'\n"
        "    description = 'third-party test agent'\n\n"
        "    def __init__(self, value=0):\n"
        "        self.value = value\n\n"
        "    def reset(self, *, seed, observation_space, action_space, info):\n"
        "        pass\n\n"
        "    def act(self, obs, info):\n"
        "        return self.value\n"
    )
    dist_info = root / f"{package}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[aees_gym.agents]\n{entry_points}\n")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None) -> Iterator[None]:
    write_distribution(tmp_path, "myagents", "mine = myagents:MyAgent\nducb = myagents:MyAgent")
    monkeypatch.syspath_prepend(str(tmp_path))
    base.clear_discovery_cache()
    yield
    sys.modules.pop("myagents", None)


def test_third_party_agent_is_found_through_its_entry_point(third_party: None) -> None:
    with pytest.warns(RuntimeWarning, match="ignoring entry point 'ducb'"):
        agent = make_agent("mine", value=3)
    assert type(agent).__module__ == "myagents" and type(agent).__name__ == "MyAgent"
    assert agent.act(OBS, {}) == 3
    assert "mine" in registered_agents()
    # A package cannot take over a built-in name.
    assert type(make_agent("ducb")).__module__ == "agents.bandits"


def test_discovery_is_lazy_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None
) -> None:
    make_agent("fixed")  # discovery happens here, before the package exists
    write_distribution(tmp_path, "lateagents", "late = lateagents:MyAgent")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyError):
        make_agent("late")
    base.clear_discovery_cache()
    try:
        assert type(make_agent("late")).__name__ == "MyAgent"
    finally:
        sys.modules.pop("lateagents", None)


def test_registry_imports_no_agent_module_until_asked() -> None:
    code = (
        "import sys, agents\n"
        "assert 'agents.bandits' not in sys.modules and 'stable_baselines3' not in sys.modules\n"
        "agents.make_agent('contextual'); assert 'agents.bandits' in sys.modules\n"
        "agents.registered_agents(); assert 'agents.sb3' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_base_agent_hooks_are_no_ops() -> None:
    agent = TinyAgent()
    assert agent.update(0, 0.5, OBS, False, False, {}) is None
    assert agent.state_dict() == {}
    agent.load_state_dict({})
    with pytest.raises(ValueError, match="keeps no state"):
        agent.load_state_dict({"x": 1})
    assert dict(TinyAgent.env_overrides) == {}


# ----------------------------------------------------------------------------- random


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(9),
        spaces.Discrete(4, start=2),
        spaces.MultiDiscrete([3, 3]),
        spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32),
        spaces.Box(-2, 5, shape=(3,), dtype=np.int64),
    ],
)
def test_random_agent_is_seeded_and_stays_in_the_space(space: spaces.Space[Any]) -> None:
    def actions(seed: int) -> list[Any]:
        agent = RandomAgent()
        reset(agent, space, seed)
        return [agent.act(OBS, {}) for _ in range(50)]

    first = actions(3)
    assert all(space.contains(a) for a in first)
    assert [np.asarray(a).tolist() for a in first] == [np.asarray(a).tolist() for a in actions(3)]
    assert [np.asarray(a).tolist() for a in first] != [np.asarray(a).tolist() for a in actions(4)]
    if isinstance(space, spaces.Discrete):
        assert all(type(a) is int for a in first)


def test_random_agent_state_dict_resumes_and_leaves_the_space_alone() -> None:
    space = spaces.Discrete(9)
    space.seed(0)
    before = space.np_random.bit_generator.state
    agent = RandomAgent()
    reset(agent, space, 1)
    [agent.act(OBS, {}) for _ in range(10)]
    state = agent.state_dict()
    expected = [agent.act(OBS, {}) for _ in range(10)]
    resumed = RandomAgent()
    reset(resumed, space, 99)
    resumed.load_state_dict(state)
    assert [resumed.act(OBS, {}) for _ in range(10)] == expected
    assert space.np_random.bit_generator.state == before


def test_random_agent_rejects_unsupported_spaces() -> None:
    with pytest.raises(TypeError, match="Discrete, MultiDiscrete and Box"):
        reset(RandomAgent(), spaces.MultiBinary(3), 0)
    with pytest.raises(ValueError, match="finite bounds"):
        reset(RandomAgent(), spaces.Box(-np.inf, np.inf, shape=(1,)), 0)
    with pytest.raises(RuntimeError, match="reset"):
        RandomAgent().act(OBS, {})


# ----------------------------------------------------------------------------- fixed


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 3),  # the plain optimizer: lr ×1.0 (index 1), σ = 0 (index 0)
        ({"lr_multiplier": 2.0, "noise_std": 0.005}, 7),
        ({"lr_multiplier": 0.5}, 0),
        ({"noise_std": 0.01}, 5),
        ({"lr_multiplier": 2.0000000000001, "noise_std": 0.01}, 8),  # config-file rounding
        ({"index": 6}, 6),
    ],
)
def test_fixed_agent_resolves_values_to_the_index(kwargs: dict[str, Any], expected: int) -> None:
    agent = FixedAgent(**kwargs)
    reset(agent, spaces.Discrete(9), 0, candidate_grid=StandInGrid())
    assert [agent.act(OBS, {}) for _ in range(3)] == [expected] * 3


def test_fixed_agent_errors_name_the_choices() -> None:
    with pytest.raises(ValueError, match=r"available: \[0.5, 1.0, 2.0\]"):
        reset(FixedAgent(lr_multiplier=3.0), spaces.Discrete(9), 0, candidate_grid=StandInGrid())
    with pytest.raises(ValueError, match=r"available: \[0.0, 0.005, 0.01\]"):
        reset(FixedAgent(noise_std=0.02), spaces.Discrete(9), 0, candidate_grid=StandInGrid())
    with pytest.raises(KeyError, match="candidate_grid"):
        reset(FixedAgent(), spaces.Discrete(9), 0)
    with pytest.raises(ValueError, match="outside"):
        reset(FixedAgent(index=9), spaces.Discrete(9), 0)
    with pytest.raises(ValueError, match="not both"):
        FixedAgent(index=1, noise_std=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        FixedAgent(index=-1)


def test_fixed_agent_by_index_needs_no_grid() -> None:
    agent = FixedAgent(index=4)
    reset(agent, spaces.Discrete(9), 0)
    assert agent.act(OBS, {}) == 4


@pytest.mark.parametrize("schedule", SCHEDULE_BASELINES)
def test_schedule_baselines_are_the_plain_optimizer_over_a_schedule(
    schedule: str, registry: None
) -> None:
    agent = make_agent(f"fixed+{schedule}")
    assert isinstance(agent, FixedAgent)
    assert dict(type(agent).env_overrides) == {"schedule": schedule}
    reset(agent, spaces.Discrete(9), 0, candidate_grid=StandInGrid())
    assert agent.act(OBS, {}) == 3
    with pytest.raises(TypeError):
        type(agent).env_overrides["schedule"] = "none"  # type: ignore[index]
