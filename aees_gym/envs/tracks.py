"""Control tracks: the action formulation and observation a learned LR controller trains and acts under.

A track is a set of env settings plus an action view, the same for one env (:class:`~aees_gym.envs.env.AEESEnv`),
the batched env (:class:`~aees_gym.envs.vector_env.AEESVectorEnv`) and a user's own loop
(``ControlledTraining(..., **track_overrides(name))``):

* ``relative`` — ``Discrete``: each window multiplies a *persistent* LR scale by one of
  ×{2^-1, 2^-0.25, 1, 2^0.25, 2} (and picks a gradient-noise std in {0, 0.005}), so a policy can warm
  up, decay, and repair a mis-set base LR. The scale is clamped to :data:`RELATIVE_LR_BOUNDS`
  (2^-6 … 2^6 of the base LR).
* ``continuous`` — ``Box(-1, 1, (2,))``: the same persistent scale, stepped by an exact
  ×2^u (u ∈ [-1, 1]) per window, and an exact noise std in [0, 0.01] (:class:`~aees_gym.envs.wrappers.BoxDecoder`).

Both observe :data:`CONTROLLER_FEATURES`: the log LR scale, progress, the loss on the
reward-validation part (its level against the run's start and its trend; never the part that scores
runs), the training-loss level and trend, the gradient-norm trend and the last action's position.

Example (64 runs at once, Box actions)::

    from aees_gym.envs.tracks import make_track_vector_env
    venv = make_track_vector_env("Digits", 64, "continuous", reward={"name": "heldout"}, torch_threads=1)
    obs, infos = venv.reset(seed=0)
    obs, rewards, terminated, truncated, infos = venv.step(venv.action_space.sample())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorActionWrapper
from gymnasium.vector.utils import batch_space

from aees_gym.core.grid import Candidate
from aees_gym.envs.wrappers import BoxDecoder

__all__ = [
    "CONTROLLER_FEATURES", "CONTROLLER_FEATURES_WITH_LR", "RELATIVE_LR_BOUNDS", "TRACKS", "ContinuousVectorAction", "ControlTrack", "get_track",
    "make_track_env", "make_track_vector_env", "track_overrides",
]

#: What a controller observes (see :data:`aees_gym.core.context.FEATURES` for each definition).
CONTROLLER_FEATURES = (
    "progress", "lr_scale", "loss_level", "trend", "heldout_level", "heldout_trend", "grad_norm_trend", "last_lr", "last_noise",
)
#: The controller's observation plus the run's base LR: with ``lr_scale`` the policy knows the absolute LR.
CONTROLLER_FEATURES_WITH_LR = (*CONTROLLER_FEATURES, "run_log_lr")
#: Lowest and highest persistent LR scale of every track: 2^-6 … 2^6 of the base LR.
RELATIVE_LR_BOUNDS = (2.0**-6, 2.0**6)


@dataclass(frozen=True)
class ControlTrack:
    """One track: its name, its action kind (``discrete`` or ``box``) and the env settings it fixes."""

    name: str
    action: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The EnvConfig / ControlConfig overrides of this track (fresh copies, JSON-compatible)."""
        grid = self.overrides["grid"]
        return {
            "action_mode": self.overrides["action_mode"],
            "relative_lr_bounds": list(self.overrides["relative_lr_bounds"]),
            "grid": {k: list(v) for k, v in grid.items()},
            "context": {"features": list(self.overrides["features"])},
        }


_CONTINUOUS = {"action_mode": "relative", "relative_lr_bounds": RELATIVE_LR_BOUNDS, "features": CONTROLLER_FEATURES,
               "grid": {"lr_multipliers": (0.5, 1.0, 2.0), "noise_stds": (0.0, 0.005, 0.01)}}

TRACKS: dict[str, ControlTrack] = {
    "relative": ControlTrack(
        "relative", "discrete", "persistent LR scale stepped ×2^{-1,-1/4,0,1/4,1} per window, noise {0, 0.005}",
        {"action_mode": "relative", "relative_lr_bounds": RELATIVE_LR_BOUNDS, "features": CONTROLLER_FEATURES,
         "grid": {"lr_multipliers": (0.5, 2.0**-0.25, 1.0, 2.0**0.25, 2.0), "noise_stds": (0.0, 0.005)}},
    ),
    "continuous": ControlTrack(
        "continuous", "box", "persistent LR scale stepped by an exact ×2^u, u in [-1, 1], noise std in [0, 0.01] (Box actions)",
        _CONTINUOUS,
    ),
    # The same actions, one more feature: tests whether knowing the absolute LR stops a policy from
    # ramping an already-good LR (the continuous policies' real-task losses, docs/learned-controller.md).
    "continuous-lr": ControlTrack(
        "continuous-lr", "box", "the continuous track, also observing the run's base LR (run_log_lr: with lr_scale, the absolute LR)",
        {**_CONTINUOUS, "features": CONTROLLER_FEATURES_WITH_LR},
    ),
}


def get_track(name: str) -> ControlTrack:
    """The track called ``name``.

    Raises:
        KeyError: If there is none; the message lists the tracks.
    """
    try:
        return TRACKS[name]
    except KeyError:
        raise KeyError(f"Unknown control track {name!r}; choose one of {sorted(TRACKS)}.") from None


def track_overrides(name: str) -> dict[str, Any]:
    """``gymnasium.make`` / ``make_vec`` / ``ControlledTraining`` keyword settings of track ``name``."""
    return get_track(name).settings()


def _merge(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    mine = track_overrides(name)
    clash = sorted(set(mine) & set(overrides))
    if clash:
        raise ValueError(f"Track {name!r} fixes {clash}; leave them out (they define the track) or build the env without a track.")
    return {**mine, **overrides}


class ContinuousVectorAction(VectorActionWrapper):
    """Box actions for the batched env: row ``i``'s action decodes to an exact candidate, as
    :class:`~aees_gym.envs.wrappers.ContinuousAction` decodes it for one env (the same :class:`BoxDecoder`).

    Args:
        env: An :class:`~aees_gym.envs.vector_env.AEESVectorEnv` with its Discrete actions.
        **ranges: ``log2_lr_range``, ``noise_range``, ``momentum_range``, ``snap_to_grid`` (see ``BoxDecoder``).
    """

    def __init__(self, env: gym.vector.VectorEnv, **ranges: Any) -> None:
        super().__init__(env)
        grid = getattr(env.unwrapped, "grid", None)
        if grid is None or not isinstance(env.single_action_space, gym.spaces.Discrete):
            raise TypeError("ContinuousVectorAction wraps an AEESVectorEnv with its default Discrete actions (one action view only).")
        self.decoder = BoxDecoder(grid, **ranges)
        self.single_action_space = self.decoder.space
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def actions(self, actions: Any) -> list[Candidate | int]:
        rows = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)
        return [self.decoder.action(row) for row in rows]


def make_track_env(task: str, track: str, **overrides: Any) -> gym.Env:
    """One env of ``task`` (a name or id) on ``track``; ``overrides`` are further ``gymnasium.make`` settings."""
    from aees_gym.envs.registration import importable_env_id
    from aees_gym.envs.wrappers import ContinuousAction

    env = gym.make(importable_env_id(task), **_merge(track, overrides))
    return ContinuousAction(env) if get_track(track).action == "box" else env


def make_track_vector_env(task: str, num_envs: int, track: str, **overrides: Any) -> gym.vector.VectorEnv:
    """``num_envs`` batched runs of ``task`` on ``track`` (keywords as for ``AEESVectorEnv``)."""
    from aees_gym.envs.registration import task_of
    from aees_gym.envs.vector_env import AEESVectorEnv

    venv = AEESVectorEnv(task_of(task), num_envs, **_merge(track, overrides))
    return ContinuousVectorAction(venv) if get_track(track).action == "box" else venv
