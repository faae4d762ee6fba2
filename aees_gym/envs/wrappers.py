"""Views of an AEES env for other RL formulations: MultiDiscrete and Box actions, observation subsets.

Each view only changes how actions or observations are *expressed*; the env underneath still runs
one grid cell per window, so all views combine with ``action_mode="relative"`` (then the lr part of
the action is a persistent ×/÷ step of the base LR instead of a one-window multiplier).

Example:
    >>> import gymnasium as gym, aees_gym
    >>> from aees_gym.envs.wrappers import ContinuousAction, SelectObservation
    >>> env = SelectObservation(ContinuousAction(gym.make("aees_gym/Synthetic-v0")), ["progress", "trend"])
    >>> env.action_space, env.observation_space.shape
    (Box(-1.0, 1.0, (2,), float32), (2,))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from aees_gym.core.grid import CandidateGrid


def _grid(env: gym.Env) -> CandidateGrid:
    grid = getattr(env.unwrapped, "grid", None)
    if not isinstance(grid, CandidateGrid) or not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError("This view wraps an aees_gym env with its default Discrete action space (apply one action view only).")
    return grid


class MultiDiscreteAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``MultiDiscrete([n_lr, n_noise])``: the action is ``(lr_idx, noise_idx)`` instead of the mode id."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.grid = _grid(env)
        self.action_space = gym.spaces.MultiDiscrete([self.grid.n_lr, self.grid.n_noise])

    def action(self, action: Any) -> int:
        lr_idx, noise_idx = (int(a) for a in np.asarray(action).reshape(2))
        return self.grid.index(lr_idx, noise_idx)


class ContinuousAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Box(-1, 1, (2,))`` for SAC/TD3: a log2 LR multiplier and a noise std, each scaled into a range.

    Action ``(u, v)`` requests the multiplier ``2 ** lerp(log2_lr_range, u)`` and the noise std
    ``lerp(noise_range, v)``; the window runs the *nearest grid cell* (log distance on the lr axis,
    linear on the noise axis), because the env runs candidates of its grid only. Enlarge the grid
    (``grid={"lr_multipliers": [...], "noise_stds": [...]}``) for a finer control. The ranges default
    to the grid's own extent, so the Box covers every cell; ``info["requested_lr_multiplier"]`` and
    ``info["requested_noise_std"]`` carry the continuous request.

    Args:
        env: An aees_gym env with its default Discrete action space.
        log2_lr_range: (low, high) of the log2 LR multiplier (default: the grid's extent).
        noise_range: (low, high) of the noise std (default: the grid's extent).
    """

    def __init__(
        self,
        env: gym.Env,
        log2_lr_range: tuple[float, float] | None = None,
        noise_range: tuple[float, float] | None = None,
    ) -> None:
        # Recorded so that env.spec (and gymnasium's checker) can rebuild the wrapped env.
        gym.utils.RecordConstructorArgs.__init__(self, log2_lr_range=log2_lr_range, noise_range=noise_range)
        super().__init__(env)
        self.grid = _grid(env)
        lrs, noises = self.grid.lr_multipliers, self.grid.noise_stds
        self.log2_lr_range = _check_range("log2_lr_range", log2_lr_range or (math.log2(min(lrs)), math.log2(max(lrs))))
        self.noise_range = _check_range("noise_range", noise_range or (min(noises), max(noises)))
        if self.noise_range[0] < 0:
            raise ValueError(f"noise_range must be non-negative, got {self.noise_range}.")
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._requested = (1.0, 0.0)

    def requested(self, action: Any) -> tuple[float, float]:
        """The continuous (lr multiplier, noise std) that ``action`` asks for."""
        u, v = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        log2_lr = _lerp(self.log2_lr_range, u)
        return float(2.0**log2_lr), float(_lerp(self.noise_range, v))

    def action(self, action: Any) -> int:
        self._requested = self.requested(action)
        return self.grid.nearest(*self._requested)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        info["requested_lr_multiplier"], info["requested_noise_std"] = self._requested
        return obs, reward, terminated, truncated, info


def _check_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(b) for b in bounds)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{name} must be finite (low, high) with low <= high, got {bounds}.")
    return low, high


def _lerp(bounds: tuple[float, float], t: float) -> float:
    low, high = bounds
    return low + (t + 1.0) * 0.5 * (high - low)


class SelectObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Keep only the named observation features, in the given order (names: ``env.unwrapped.feature_names``)."""

    def __init__(self, env: gym.Env, features: Sequence[str]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, features=tuple(features))
        super().__init__(env)
        available = tuple(env.get_wrapper_attr("feature_names"))
        features = tuple(features)
        unknown = [f for f in features if f not in available]
        if unknown or not features or len(set(features)) != len(features):
            raise ValueError(
                f"Select distinct observation features from {list(available)}; got {list(features)}"
                + (f" (unknown: {unknown})." if unknown else ".")
                + " Features the env does not compute can be enabled with context={'features': [...]}."
            )
        self._index = np.asarray([available.index(f) for f in features], dtype=np.intp)
        self.feature_names = features
        box = env.observation_space
        self.observation_space = gym.spaces.Box(box.low[self._index], box.high[self._index], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self._index]
