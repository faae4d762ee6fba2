"""The agent contract and the name → class registry.

An agent chooses one action per training window and, if it learns online, learns from the
window's reward. It needs nothing but the Gymnasium API: the env publishes the candidate grid
(``info["candidate_grid"]``) and the context buckets in its ``reset``/``step`` info.

Agents are found by name in one registry (:mod:`aees_gym.suite.agent_registry`): built-in and
third-party agents are declared as entry points in the ``aees_gym.agents`` group
(``mine = mypackage.agents:MyAgent``) and resolved lazily, so importing this module imports no
agent implementation; :func:`register_agent` adds a class at run time, visible to the suite and
the CLI as well.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from aees_gym.suite import agent_registry

if TYPE_CHECKING:
    from gymnasium import spaces



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
    """The members of ``aees_gym.core.grid.CandidateGrid`` that agents rely on.

    Agents duck-type the grid so that they depend on the env's published info, not on its classes.
    A grid may also have the optional momentum axis: a ``momenta`` tuple (``None`` or absent when
    off), ``indices(action) -> (lr_idx, noise_idx, momentum_idx)`` and a third ``index`` argument;
    read it with :func:`momentum_axis`.
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
        return None

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


def momentum_axis(grid: CandidateGridLike) -> tuple[float, ...] | None:
    """The grid's momentum candidates, or ``None`` when it has no momentum axis."""
    momenta = getattr(grid, "momenta", None)
    return None if momenta is None else tuple(momenta)


def grid_size(grid: CandidateGridLike) -> int:
    """Number of mode ids: ``n_lr * n_noise`` (× ``n_momentum`` with the momentum axis)."""
    momenta = momentum_axis(grid)
    return len(grid.lr_multipliers) * len(grid.noise_stds) * (1 if momenta is None else len(momenta))


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
    size = grid_size(grid)
    if int(action_space.start) != 0 or int(action_space.n) != size:
        momenta = momentum_axis(grid)
        extra = "" if momenta is None else f" × {len(momenta)} momenta"
        raise ValueError(
            f"action space {action_space} does not match the candidate grid of {size} mode ids "
            f"({len(grid.lr_multipliers)} lr multipliers × {len(grid.noise_stds)} noise stds{extra})."
        )


# --------------------------------------------------------------------------- registry
# One registry serves agents, the suite, the CLI and the loaders: see aees_gym.suite.agent_registry.
register_agent = agent_registry.register_agent
registered_agents = agent_registry.registered_agents
clear_discovery_cache = agent_registry.clear_cache


def make_agent(name: str, **kwargs: Any) -> Agent:
    """Construct the agent registered under ``name`` with ``kwargs``.

    Raises:
        KeyError: If no agent has that name; the message lists every registered name.
    """
    return agent_registry.make_agent(name, **kwargs)  # type: ignore[no-any-return]
