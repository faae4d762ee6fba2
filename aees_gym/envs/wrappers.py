"""Views of an AEES env for other RL formulations: MultiDiscrete and Box actions, observation subsets.

Each view only changes how actions or observations are *expressed*. All views combine with
``action_mode="relative"`` (then the lr part of the action is a persistent ×/÷ step of the base LR
instead of a one-window multiplier) and with the grid's optional momentum axis (a third component).

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

from aees_gym.core.grid import Candidate, CandidateGrid


def _grid(env: gym.Env) -> CandidateGrid:
    grid = getattr(env.unwrapped, "grid", None)
    if not isinstance(grid, CandidateGrid) or not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError("This view wraps an aees_gym env with its default Discrete action space (apply one action view only).")
    return grid


class MultiDiscreteAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``MultiDiscrete([n_lr, n_noise])`` (``[n_lr, n_noise, n_momentum]`` with a momentum axis):
    the action is the tuple of axis indices instead of the mode id."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.grid = _grid(env)
        self.action_space = gym.spaces.MultiDiscrete(list(self.grid.shape))

    def action(self, action: Any) -> int:
        indices = [int(a) for a in np.asarray(action).reshape(len(self.grid.shape))]
        return self.grid.index(*indices)


class BoxDecoder:
    """How a ``Box(-1, 1)`` action becomes an exact :class:`~aees_gym.core.grid.Candidate` of ``grid``.

    Shared by :class:`ContinuousAction` (one env) and :class:`aees_gym.envs.tracks.ContinuousVectorAction`
    (the batched env), so both decode an action to the same candidate. Arguments as for
    :class:`ContinuousAction`.
    """

    def __init__(
        self,
        grid: CandidateGrid,
        log2_lr_range: tuple[float, float] | None = None,
        noise_range: tuple[float, float] | None = None,
        momentum_range: tuple[float, float] | None = None,
        snap_to_grid: bool = False,
    ) -> None:
        self.grid = grid
        self.snap_to_grid = bool(snap_to_grid)
        ranges = grid.ranges
        lr_low, lr_high = ranges["lr_multiplier"]
        self.log2_lr_range = self._within("log2_lr_range", log2_lr_range, (math.log2(lr_low), math.log2(lr_high)))
        self.noise_range = self._within("noise_range", noise_range, ranges["noise_std"])
        if self.noise_range[0] < 0:
            raise ValueError(f"noise_range must be non-negative, got {self.noise_range}.")
        self.momentum_range: tuple[float, float] | None = None
        if grid.has_momentum:
            self.momentum_range = self._within("momentum_range", momentum_range, ranges["momentum"])
        elif momentum_range is not None:
            raise ValueError("momentum_range needs a grid with a momentum axis (grid={'momenta': [...]}).")
        self.space = gym.spaces.Box(-1.0, 1.0, shape=(len(grid.shape),), dtype=np.float32)

    def _within(self, name: str, given: tuple[float, float] | None, extent: tuple[float, float]) -> tuple[float, float]:
        bounds = _check_range(name, given or extent)
        if not self.snap_to_grid and not (extent[0] <= bounds[0] and bounds[1] <= extent[1]):
            raise ValueError(
                f"{name} {bounds} must lie within the grid's range {extent} for exact candidates; "
                "widen the grid or pass snap_to_grid=True."
            )
        return bounds

    def candidate(self, action: Any) -> Candidate:
        """The exact :class:`Candidate` that ``action`` decodes to (clipped into the ranges)."""
        values = np.clip(np.asarray(action, dtype=np.float64).reshape(len(self.grid.shape)), -1.0, 1.0)
        lr = _clamp(2.0 ** _lerp(self.log2_lr_range, values[0]), 2.0 ** self.log2_lr_range[0], 2.0 ** self.log2_lr_range[1])
        noise = _clamp(_lerp(self.noise_range, values[1]), *self.noise_range)
        momentum = None
        if self.momentum_range is not None:
            momentum = _clamp(_lerp(self.momentum_range, values[2]), *self.momentum_range)
        if not self.snap_to_grid:  # rounding in 2 ** log2 must not step outside the grid
            (lr_low, lr_high), (n_low, n_high) = self.grid.ranges["lr_multiplier"], self.grid.ranges["noise_std"]
            lr, noise = _clamp(lr, lr_low, lr_high), _clamp(noise, n_low, n_high)
        return Candidate(lr, noise, momentum)

    def action(self, action: Any) -> Candidate | int:
        """What the env is given: the exact candidate, or its nearest grid cell with ``snap_to_grid``."""
        candidate = self.candidate(action)
        if self.snap_to_grid:
            return self.grid.nearest(candidate.lr_multiplier, candidate.noise_std, candidate.momentum)
        return candidate


class ContinuousAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Box(-1, 1, (2,))`` for SAC/TD3: a log2 LR multiplier and a noise std (and a momentum), scaled into ranges.

    Action ``(u, v[, w])`` decodes to the :class:`~aees_gym.core.grid.Candidate` with multiplier
    ``2 ** lerp(log2_lr_range, u)``, noise std ``lerp(noise_range, v)`` and, when the grid has a
    momentum axis (the Box is then 3-dimensional), momentum ``lerp(momentum_range, w)``; the window
    runs exactly these values and ``info["lr_multiplier"]``, ``info["noise_std"]`` and
    ``info["momentum"]`` report them (``info["action"]`` is the nearest grid cell, for logs).
    The ranges default to the grid's extent and must lie inside it (exact candidates are checked
    against ``grid.ranges``); widen the grid (``grid={"lr_multipliers": [...], ...}``) for a wider
    control. With ``snap_to_grid=True`` the window runs the nearest grid cell instead (log distance
    on the lr axis, linear on the others), and the ranges are free.
    ``info["requested_lr_multiplier"]`` and ``info["requested_noise_std"]`` carry the decoded request.

    Args:
        env: An aees_gym env with its default Discrete action space.
        log2_lr_range: (low, high) of the log2 LR multiplier (default: the grid's extent).
        noise_range: (low, high) of the noise std (default: the grid's extent).
        momentum_range: (low, high) of the momentum (default: the grid's extent; momentum axis only).
        snap_to_grid: Run the nearest grid cell instead of the exact decoded candidate.
    """

    def __init__(
        self,
        env: gym.Env,
        log2_lr_range: tuple[float, float] | None = None,
        noise_range: tuple[float, float] | None = None,
        momentum_range: tuple[float, float] | None = None,
        snap_to_grid: bool = False,
    ) -> None:
        # Recorded so that env.spec (and gymnasium's checker) can rebuild the wrapped env.
        gym.utils.RecordConstructorArgs.__init__(
            self, log2_lr_range=log2_lr_range, noise_range=noise_range, momentum_range=momentum_range, snap_to_grid=snap_to_grid
        )
        super().__init__(env)
        self.grid = _grid(env)
        self.decoder = BoxDecoder(self.grid, log2_lr_range, noise_range, momentum_range, snap_to_grid)
        self.snap_to_grid = self.decoder.snap_to_grid
        self.log2_lr_range, self.noise_range = self.decoder.log2_lr_range, self.decoder.noise_range
        self.momentum_range = self.decoder.momentum_range
        self.action_space = self.decoder.space
        self._requested = (1.0, 0.0)

    def candidate(self, action: Any) -> Candidate:
        """The exact :class:`Candidate` that ``action`` decodes to (clipped into the ranges)."""
        return self.decoder.candidate(action)

    def requested(self, action: Any) -> tuple[float, float]:
        """The continuous (lr multiplier, noise std) that ``action`` asks for."""
        candidate = self.candidate(action)
        return candidate.lr_multiplier, candidate.noise_std

    def action(self, action: Any) -> Candidate | int:
        candidate = self.candidate(action)
        self._requested = (candidate.lr_multiplier, candidate.noise_std)
        return self.decoder.action(action)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        info["requested_lr_multiplier"], info["requested_noise_std"] = self._requested
        return obs, reward, terminated, truncated, info


def _clamp(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


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
