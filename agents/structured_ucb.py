"""The machinery both UCB agents of :mod:`agents.bandits` share: one controller per axis (lr, noise
and, with the grid's momentum axis, momentum), independent or conditional on the arms chosen before
it, with the seed offsets that reproduce pulseopt 0.3.0's decisions, and the agents' checked state.

The agents themselves (``ducb``, ``contextual``) live in :mod:`agents.bandits`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from gymnasium import spaces

from agents.base import BaseAgent, CandidateGridLike, candidate_grid, check_grid_action_space, momentum_axis
from agents.ucb import STATE_FIX, BucketedUCB, DiscountedUCB, finite_reward, state_mapping

#: How a structured bandit picks the noise arm: independently of the LR arm or conditioned on it.
STRUCTURED_MODES = ("independent", "conditional")
_NOISE_SEED_OFFSET = 101
# Far from the noise offsets (101 + lr_idx) and their bucket seeds (+ 1000 + bucket).
_MOMENTUM_SEED_OFFSET = 5003

_C = TypeVar("_C", DiscountedUCB, BucketedUCB)


def _offset(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


class _StructuredUCBAgent(BaseAgent, Generic[_C]):
    """One controller on the lr axis and one (or one per lr arm) on the noise axis.

    Subclasses decide what a controller is and how the window's context reaches it.
    """

    def __init__(self, *, c: float, gamma: float, warmup: int, structured: str) -> None:
        if structured not in STRUCTURED_MODES:
            raise ValueError(
                f"structured must be one of {list(STRUCTURED_MODES)}, got {structured!r}."
            )
        # Constructing a throwaway controller validates c/gamma/warmup now rather than at reset.
        DiscountedUCB(1, c=c, gamma=gamma, warmup=warmup)
        self.c = float(c)
        self.gamma = float(gamma)
        self.warmup = int(warmup)
        self.structured = structured
        self._grid: CandidateGridLike | None = None
        self._seed: int | None = None
        self._lr: _C | None = None
        self._noise: list[_C] = []  # empty: fixed axis; one: shared; n_lr: one per lr arm
        self._momentum: list[_C] = []  # empty: no/fixed axis; one: shared; n_lr * n_noise: one per cell
        self._has_momentum = False

    # -- subclass hooks -------------------------------------------------------------------------

    @abstractmethod
    def _new_controller(self, n_arms: int, seed: int | None) -> _C:
        """A fresh controller for one axis."""

    @abstractmethod
    def _select(self, controller: _C) -> int:
        """Ask ``controller`` for an arm in the current window's context."""

    @abstractmethod
    def _learn(self, controller: _C, arm: int, reward: float) -> None:
        """Give ``controller`` the reward of ``arm`` in the context its window started in."""

    def _begin_window(self, info: dict[str, Any]) -> None:
        """Read the context of the window about to start from ``info``."""

    def _end_window(self) -> None:
        """Forget the context of the window that just closed."""

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as recorded in results and checked by :meth:`load_state_dict`."""
        return {
            "c": self.c,
            "gamma": self.gamma,
            "warmup": self.warmup,
            "structured": self.structured,
        }

    # -- Agent API ------------------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Build fresh controllers for this env's grid, seeded as AEES seeds them."""
        grid = candidate_grid(info)
        check_grid_action_space(action_space, grid)
        n_lr, n_noise = len(grid.lr_multipliers), len(grid.noise_stds)
        self._grid = grid
        self._seed = seed
        self._lr = self._new_controller(n_lr, seed) if n_lr > 1 else None
        if n_noise == 1:
            self._noise = []
        elif self.structured == "independent" or n_lr == 1:
            self._noise = [self._new_controller(n_noise, _offset(seed, _NOISE_SEED_OFFSET))]
        else:
            self._noise = [
                self._new_controller(n_noise, _offset(seed, _NOISE_SEED_OFFSET + lr_idx))
                for lr_idx in range(n_lr)
            ]
        momenta = momentum_axis(grid)
        self._has_momentum = momenta is not None
        n_momentum = 1 if momenta is None else len(momenta)
        if n_momentum == 1:
            self._momentum = []
        elif self.structured == "independent" or n_lr * n_noise == 1:
            self._momentum = [self._new_controller(n_momentum, _offset(seed, _MOMENTUM_SEED_OFFSET))]
        else:
            self._momentum = [
                self._new_controller(n_momentum, _offset(seed, _MOMENTUM_SEED_OFFSET + cell))
                for cell in range(n_lr * n_noise)
            ]
        self._end_window()

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The mode id of the next window: the lr arm first, then the noise arm under it."""
        grid = self._require_reset()
        self._begin_window(info)
        lr_idx = 0 if self._lr is None else self._select(self._lr)
        noise = self._noise_controller(lr_idx)
        noise_idx = 0 if noise is None else self._select(noise)
        if not self._has_momentum:
            return int(grid.index(lr_idx, noise_idx))
        momentum = self._momentum_controller(lr_idx, noise_idx)
        momentum_idx = 0 if momentum is None else self._select(momentum)
        return int(grid.index(lr_idx, noise_idx, momentum_idx))  # type: ignore[call-arg]

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Give the window's joint reward to the lr controller and the noise controller used.

        Raises:
            ValueError: If ``reward`` is not finite (no controller is changed).
        """
        grid = self._require_reset()
        if self._has_momentum:
            lr_idx, noise_idx, momentum_idx = grid.indices(int(action))  # type: ignore[attr-defined]
        else:
            (lr_idx, noise_idx), momentum_idx = grid.split(int(action)), 0
        value = finite_reward(reward)  # checked before any controller changes
        if self._lr is not None:
            self._learn(self._lr, lr_idx, value)
        noise = self._noise_controller(lr_idx)
        if noise is not None:
            self._learn(noise, noise_idx, value)
        momentum = self._momentum_controller(lr_idx, noise_idx)
        if momentum is not None:
            self._learn(momentum, momentum_idx, value)
        self._end_window()

    def state(self) -> dict[str, Any]:
        """Per-axis statistics for logging: counts, sums, value estimates (and buckets).

        ``"noise"`` is a list: empty for a fixed axis, one entry when shared, one per lr arm in
        conditional mode. With a momentum axis, ``"momentum"`` is such a list too (one per
        (lr, noise) cell in conditional mode).
        """
        state = {
            "lr": None if self._lr is None else self._lr.state(),
            "noise": [controller.state() for controller in self._noise],
        }
        if self._has_momentum:
            state["momentum"] = [controller.state() for controller in self._momentum]
        return state

    def state_dict(self) -> dict[str, Any]:
        """Configuration, grid and every controller's statistics and RNG state (JSON-compatible)."""
        grid = self._require_reset()
        state = {
            "agent": self.name,
            "config": self.config(),
            "grid": self._grid_dict(grid),
            "seed": self._seed,
            "lr": None if self._lr is None else self._lr.state_dict(),
            "noise": [controller.state_dict() for controller in self._noise],
        }
        if self._has_momentum:
            state["momentum"] = [controller.state_dict() for controller in self._momentum]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` left off; call after :meth:`reset`.

        Raises:
            ValueError: If the state comes from a different configuration or grid.
        """
        grid = self._require_reset()
        state = state_mapping("agent state", state)
        expected = {"config": self.config(), "grid": self._grid_dict(grid)}
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(
                    f"state {key} {state.get(key)!r} does not match this agent's {value!r}."
                )
        momentum_states = state.get("momentum", [])
        for key, value in (("noise", state.get("noise")), ("momentum", momentum_states)):
            if not isinstance(value, list):
                raise ValueError(f"agent state {key!r} must be a list of controller states, got {type(value).__name__}{STATE_FIX}")
        if (
            (state.get("lr") is None) != (self._lr is None)
            or len(state["noise"]) != len(self._noise)
            or len(momentum_states) != len(self._momentum)
        ):
            raise ValueError(f"state has a different controller layout than this agent{STATE_FIX}")
        if self._lr is not None:
            self._lr.load_state_dict(state["lr"])
        for controller, controller_state in zip(self._noise, state["noise"], strict=True):
            controller.load_state_dict(controller_state)
        for controller, controller_state in zip(self._momentum, momentum_states, strict=True):
            controller.load_state_dict(controller_state)
        self._seed = state["seed"]

    # -- helpers --------------------------------------------------------------------------------

    def _noise_controller(self, lr_idx: int) -> _C | None:
        if not self._noise:
            return None
        return self._noise[lr_idx] if len(self._noise) > 1 else self._noise[0]

    def _momentum_controller(self, lr_idx: int, noise_idx: int) -> _C | None:
        if not self._momentum:
            return None
        if len(self._momentum) == 1:
            return self._momentum[0]
        assert self._grid is not None
        return self._momentum[lr_idx * len(self._grid.noise_stds) + noise_idx]

    @staticmethod
    def _grid_dict(grid: CandidateGridLike) -> dict[str, list[float]]:
        data = {"lr_multipliers": list(grid.lr_multipliers), "noise_stds": list(grid.noise_stds)}
        momenta = momentum_axis(grid)
        if momenta is not None:
            data["momenta"] = list(momenta)
        return data

    def _require_reset(self) -> CandidateGridLike:
        if self._grid is None:
            raise RuntimeError(f"{type(self).__name__}.reset() must be called first.")
        return self._grid
