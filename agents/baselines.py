"""Non-learning baselines: uniformly random actions and one fixed grid cell.

Random and fixed choices are strong baselines for AEES (see the method notes), so they are agents
like any other and go through the same suite. The named schedule baselines are the plain optimizer
(×1.0, σ = 0) over one of the env's base LR schedules; they exist so that "cosine schedule, no
control" is one agent name in a suite config rather than a per-run env override.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from gymnasium import spaces

from aees_gym.core import checks
from agents.base import BaseAgent, candidate_grid, check_grid_action_space

_SUPPORTED_RANDOM_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.Box)


class RandomAgent(BaseAgent):
    """Uniformly random action every window, from a generator seeded by ``reset``.

    Works on ``Discrete`` (mode ids), ``MultiDiscrete`` (lr index, noise index) and bounded ``Box``
    action spaces. It draws from its own generator, never from the space's, so the env's RNG
    streams are untouched and the choices depend only on the seed.
    """

    name = "random"
    description = "uniformly random action each window (seeded)"

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None
        self._space: spaces.Space[Any] | None = None

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Start a run: check the action space and seed a fresh generator."""
        if not isinstance(action_space, _SUPPORTED_RANDOM_SPACES):
            raise TypeError(
                f"RandomAgent supports Discrete, MultiDiscrete and Box action spaces, "
                f"got {action_space}."
            )
        if isinstance(action_space, spaces.Box) and not action_space.is_bounded("both"):
            raise ValueError(
                f"RandomAgent needs a Box action space with finite bounds, got {action_space}."
            )
        self._space = action_space
        self._rng = np.random.default_rng(seed)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """A uniform sample of the action space (a Python int for ``Discrete``)."""
        rng, space = self._require_reset()
        if isinstance(space, spaces.Discrete):
            return int(space.start) + int(rng.integers(int(space.n)))
        if isinstance(space, spaces.MultiDiscrete):
            return (space.start + rng.integers(space.nvec)).astype(space.dtype)
        assert isinstance(space, spaces.Box)
        if np.issubdtype(space.dtype, np.integer):
            return rng.integers(space.low, space.high, endpoint=True).astype(space.dtype)
        return rng.uniform(space.low, space.high).astype(space.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The generator's state, so a resumed run draws the same remaining actions."""
        rng, _ = self._require_reset()
        return {"rng": rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the generator saved by :meth:`state_dict`."""
        rng, _ = self._require_reset()
        rng.bit_generator.state = dict(state["rng"])

    def _require_reset(self) -> tuple[np.random.Generator, spaces.Space[Any]]:
        if self._rng is None or self._space is None:
            raise RuntimeError("RandomAgent.reset() must be called first.")
        return self._rng, self._space


def _axis_index(axis: str, values: Sequence[float], wanted: float) -> int:
    # Values usually arrive from config files, so compare with a tolerance far below any
    # meaningful difference between candidates instead of bitwise.
    for i, value in enumerate(values):
        if math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-12):
            return i
    raise ValueError(f"{axis} {wanted!r} is not in the candidate grid; available: {list(values)}.")


class FixedAgent(BaseAgent):
    """The same grid cell every window.

    Choose the cell either by mode id (``index``) or by value (``lr_multiplier``/``noise_std``;
    an omitted value means ×1.0 or σ = 0). Values are resolved against ``info["candidate_grid"]``
    at reset. With no arguments this is the plain optimizer: ×1.0, σ = 0.

    Args:
        index: Mode id ``lr_idx * n_noise + noise_idx``; excludes the value arguments.
        lr_multiplier: LR multiplier of the cell; must be in the grid.
        noise_std: Gradient-noise std of the cell; must be in the grid.

    Raises:
        ValueError: If ``index`` is combined with values or is negative.
    """

    name = "fixed"
    description = "one grid cell every window (default: the plain optimizer, lr ×1.0, σ = 0)"

    def __init__(
        self,
        *,
        index: int | None = None,
        lr_multiplier: float | None = None,
        noise_std: float | None = None,
    ) -> None:
        if index is not None:
            if lr_multiplier is not None or noise_std is not None:
                raise ValueError(
                    "give FixedAgent either index or lr_multiplier/noise_std, not both."
                )
            if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
                raise ValueError(f"index must be a non-negative integer, got {index!r}.")
        self._index = None if index is None else int(index)
        self._lr_multiplier = 1.0 if lr_multiplier is None else float(checks.positive("lr_multiplier", lr_multiplier))
        self._noise_std = 0.0 if noise_std is None else float(checks.non_negative("noise_std", noise_std))
        self._action: int | None = None

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Resolve the cell to a mode id of this env's grid.

        Raises:
            KeyError: If values must be resolved and ``info`` has no candidate grid.
            ValueError: If the index is out of range or a value is not in the grid (the message
                names the available values).
        """
        if self._index is not None:
            # A mode id needs no grid, only a Discrete space that holds it.
            if "candidate_grid" in info:
                check_grid_action_space(action_space, candidate_grid(info))
            elif not isinstance(action_space, spaces.Discrete):
                raise TypeError(f"FixedAgent needs a Discrete action space, got {action_space}.")
            if not action_space.contains(self._index):
                raise ValueError(f"index {self._index} is outside the action space {action_space}.")
            self._action = self._index
            return
        grid = candidate_grid(info)
        check_grid_action_space(action_space, grid)
        lr_idx = _axis_index("lr_multiplier", grid.lr_multipliers, self._lr_multiplier)
        noise_idx = _axis_index("noise_std", grid.noise_stds, self._noise_std)
        self._action = grid.index(lr_idx, noise_idx)

    def check_config(self, config: Any) -> None:
        """Check the cell against an env config's grid before any run (suites call this on load).

        Args:
            config: The ``EnvConfig`` the agent will run on; its ``grid`` decides the action space.

        Raises:
            ValueError: If the index or a value is not a cell of ``config.grid`` (names the available values).
        """
        grid, resolved = config.grid, self._action
        try:  # the same resolution as reset, on the action space the env builds from this grid
            self.reset(seed=None, observation_space=spaces.Discrete(1), action_space=spaces.Discrete(grid.size),
                       info={"candidate_grid": grid})
        finally:
            self._action = resolved

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The mode id resolved at reset."""
        if self._action is None:
            raise RuntimeError("FixedAgent.reset() must be called first.")
        return self._action


# The schedule baselines differ from FixedAgent only in the env they ask the suite for, so they are
# data: schedule -> how the description names it.
SCHEDULE_BASELINES: Mapping[str, str] = MappingProxyType({
    "step": "a step-decay",
    "exponential": "an exponential-decay",
    "cosine": "a cosine",
    "linear": "a linear-decay",
    "warmup_linear": "a linear warmup then linear-decay",
})


def schedule_baseline(schedule: str) -> type[FixedAgent]:
    """The plain optimizer (×1.0, σ = 0) over the env's ``schedule`` base schedule, as an agent class."""
    class_name = "Fixed" + "".join(part.title() for part in schedule.split("_")) + "Agent"
    return type(class_name, (FixedAgent,), {
        "__doc__": f"The plain optimizer over the env's ``{schedule}`` base schedule.",
        "__module__": __name__,
        "__qualname__": class_name,
        "name": f"fixed+{schedule}",
        "description": f"lr ×1.0, σ = 0 over {SCHEDULE_BASELINES[schedule]} base schedule",
        "env_overrides": MappingProxyType({"schedule": schedule}),
    })


# Module-level names, so that the entry points in pyproject.toml can point at them.
FixedStepAgent = schedule_baseline("step")
FixedExponentialAgent = schedule_baseline("exponential")
FixedCosineAgent = schedule_baseline("cosine")
FixedLinearAgent = schedule_baseline("linear")
FixedWarmupLinearAgent = schedule_baseline("warmup_linear")
