"""The agent contract and the name → class registry.

An agent chooses one action per training window and, if it learns online, learns from the
window's reward. It needs nothing but the Gymnasium API: the env publishes the candidate grid
(``info["candidate_grid"]``) and the context buckets in its ``reset``/``step`` info.

Agents are found by name. The built-in names are listed in :data:`BUILTIN_AGENTS` as
``"module:Class"`` strings and third-party agents are declared as entry points in the
``aees_gym.agents`` group (``mine = mypackage.agents:MyAgent``); both are resolved the same way,
lazily, on the first :func:`make_agent` or :func:`registered_agents` call, so importing this module
imports no agent implementation. :func:`register_agent` adds a class at runtime.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from aees_gym import plugins
from aees_gym.plugins import ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from gymnasium import spaces


#: Built-in agents, resolved exactly like entry points so that they work from a source checkout
#: that is not pip-installed. ``pyproject.toml`` declares the same names as entry points.
BUILTIN_AGENTS: Mapping[str, str] = MappingProxyType(
    {
        "random": "agents.baselines:RandomAgent",
        "fixed": "agents.baselines:FixedAgent",
        "fixed+step": "agents.baselines:FixedStepAgent",
        "fixed+exponential": "agents.baselines:FixedExponentialAgent",
        "fixed+cosine": "agents.baselines:FixedCosineAgent",
        "fixed+linear": "agents.baselines:FixedLinearAgent",
        "fixed+warmup_linear": "agents.baselines:FixedWarmupLinearAgent",
        "ducb": "agents.bandits:DiscountedUCBAgent",
        "contextual": "agents.bandits:ContextualUCBAgent",
        "heuristic": "agents.heuristic:HeuristicAgent",
        "sb3": "agents.sb3:SB3Agent",
    }
)

_AGENT_METHODS = ("reset", "act", "update")


@runtime_checkable
class Agent(Protocol):
    """What the env loop, the suite and ``EpisodeControl`` need from an agent."""

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Start a new run; every random choice the agent makes afterwards derives from ``seed``."""
        ...

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """Choose the action for the window about to start."""
        ...

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Learn from the outcome of the window that ``action`` ran."""
        ...


class CandidateGridLike(Protocol):
    """The members of ``aees_gym.grid.CandidateGrid`` that agents rely on.

    Agents duck-type the grid so that they depend on the env's published info, not on its classes.
    """

    @property
    def lr_multipliers(self) -> tuple[float, ...]: ...

    @property
    def noise_stds(self) -> tuple[float, ...]: ...

    def index(self, lr_idx: int, noise_idx: int) -> int:
        """Mode id ``lr_idx * n_noise + noise_idx``."""
        ...

    def split(self, action: int) -> tuple[int, int]:
        """``(lr_idx, noise_idx)`` of a mode id."""
        ...


class BaseAgent(ABC):
    """Convenience base for agents: a name, a description and no-op learning/checkpoint hooks.

    Attributes:
        name: Registry name of the agent.
        description: One line for listings such as ``aees-gym list``.
        env_overrides: Env config overrides the suite merges into a run's ``env_overrides`` before
            it builds the env (e.g. ``{"schedule": "cosine"}`` for a schedule baseline). The agent
            itself never applies them, so an agent used outside the suite gets the env it is given.
            Read-only; empty for agents that work with any env.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    env_overrides: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @abstractmethod
    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Start a new run; see :meth:`Agent.reset`."""

    @abstractmethod
    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """Choose the action for the window about to start; see :meth:`Agent.act`."""

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Ignore the outcome; online learners override this."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly, as JSON-compatible data.

        Agents whose behaviour is fully determined by ``reset`` keep no state and return ``{}``.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; call it after :meth:`reset` with the same spaces/grid.

        Raises:
            ValueError: If ``state`` is not empty, since this agent has nothing to restore.
        """
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state but was given keys {sorted(state)}."
            )


def candidate_grid(info: Mapping[str, Any]) -> CandidateGridLike:
    """The candidate grid the env published in its ``reset`` info.

    Raises:
        KeyError: If ``info`` has no ``"candidate_grid"``.
    """
    try:
        return info["candidate_grid"]  # type: ignore[no-any-return]
    except KeyError:
        raise KeyError(
            "info['candidate_grid'] is missing; pass the info returned by the env's reset() "
            f"(got keys {sorted(info)})."
        ) from None


def check_grid_action_space(action_space: spaces.Space[Any], grid: CandidateGridLike) -> None:
    """Check that actions are the grid's mode ids, as agents that return mode ids assume.

    Raises:
        TypeError: If the action space is not ``Discrete``.
        ValueError: If it does not hold exactly the grid's mode ids ``0 .. n_lr * n_noise - 1``.
    """
    from gymnasium import spaces  # deferred: importing the registry must stay cheap

    if not isinstance(action_space, spaces.Discrete):
        raise TypeError(
            f"this agent returns mode ids and needs a Discrete action space, got {action_space}."
        )
    size = len(grid.lr_multipliers) * len(grid.noise_stds)
    if int(action_space.start) != 0 or int(action_space.n) != size:
        raise ValueError(
            f"action space {action_space} does not match the candidate grid of {size} mode ids "
            f"({len(grid.lr_multipliers)} lr multipliers × {len(grid.noise_stds)} noise stds)."
        )


# --------------------------------------------------------------------------- registry

_explicit: dict[str, type] = {}  # register_agent() calls; they survive clear_discovery_cache()
_loaded: dict[str, type] = {}  # discovered names whose class has been imported
_discovered: dict[str, importlib.metadata.EntryPoint] | None = None


def clear_discovery_cache() -> None:
    """Forget discovered entry points so the next lookup scans installed packages again."""
    global _discovered
    _discovered = None
    _loaded.clear()
    plugins.clear_cache()


def _discover() -> dict[str, importlib.metadata.EntryPoint]:
    global _discovered
    if _discovered is None:
        # Built-ins first, so a package declaring a built-in name cannot replace it; this also
        # makes the built-ins work from a source checkout that is not pip-installed.
        found = {
            name: importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
            for name, value in BUILTIN_AGENTS.items()
        }
        for name, entry_point in plugins.agent_entry_points().items():
            if name in found and found[name].value != entry_point.value:
                warnings.warn(
                    f"ignoring entry point {name!r} = {entry_point.value!r} in group {ENTRY_POINT_GROUP!r}: "
                    f"the name already refers to {found[name].value!r}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            found.setdefault(name, entry_point)
        _discovered = found
    return _discovered


def _known_names() -> list[str]:
    return sorted(set(_explicit) | set(_discover()))


def _check_agent_class(name: str, cls: object, origin: str) -> type:
    missing = [m for m in _AGENT_METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise TypeError(
            f"agent {name!r} ({origin}) must be a class with reset/act/update methods; "
            f"got {cls!r}" + (f" missing {missing}." if missing else ".")
        )
    return cls


def _resolve(name: str) -> type:
    if name in _explicit:
        return _explicit[name]
    if name in _loaded:
        return _loaded[name]
    entry_point = _discover().get(name)
    if entry_point is None:
        raise KeyError(f"unknown agent {name!r}; registered agents: {', '.join(_known_names())}.")
    cls = _check_agent_class(name, entry_point.load(), origin=entry_point.value)
    _loaded[name] = cls
    return cls


def register_agent(name: str, cls: type) -> None:
    """Register ``cls`` under ``name``; registering the same class again is a no-op.

    Raises:
        ValueError: If ``name`` is empty or already refers to a different class.
        TypeError: If ``cls`` is not a class with ``reset``/``act``/``update`` methods.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"agent name must be a non-empty string, got {name!r}.")
    _check_agent_class(name, cls, origin=getattr(cls, "__qualname__", repr(cls)))
    existing = _resolve(name) if name in _explicit or name in _discover() else None
    if existing is not None and existing is not cls:
        raise ValueError(
            f"agent name {name!r} already refers to {existing.__module__}.{existing.__qualname__}; "
            f"choose another name for {cls.__module__}.{cls.__qualname__}."
        )
    _explicit[name] = cls


def make_agent(name: str, **kwargs: Any) -> Agent:
    """Construct the agent registered under ``name`` with ``kwargs``.

    Raises:
        KeyError: If no agent has that name; the message lists every registered name.
    """
    return _resolve(name)(**kwargs)  # type: ignore[no-any-return]


def registered_agents() -> dict[str, type]:
    """Every agent that can be constructed, by name (importing each one's module).

    A third-party entry point that fails to import is skipped with a warning, so one broken package
    does not hide the others; :func:`make_agent` on that name raises the underlying error.
    """
    agents: dict[str, type] = {}
    for name in _known_names():
        try:
            agents[name] = _resolve(name)
        except (ImportError, AttributeError, TypeError) as exc:
            if name in BUILTIN_AGENTS:
                raise
            warnings.warn(f"skipping agent {name!r}: {exc}", RuntimeWarning, stacklevel=2)
    return agents
