"""The envs ``SB3Agent.learn`` trains on: one env, ``DummyVecEnv``, ``SubprocVecEnv`` workers or the batched env.

Every env is wrapped in SB3's ``Monitor`` (episode returns for its logs) and, for MaskablePPO, an
all-valid action mask. stable-baselines3 is imported only inside the functions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["VEC_ENVS", "all_valid_mask", "full_env_id", "make_training_env", "training_vec_env"]

#: How ``SB3Agent.learn`` runs its ``n_envs`` training envs (``None``: dummy for one env, else subproc).
VEC_ENVS = (None, "batched", "subproc", "dummy")


def full_env_id(env_id: str) -> str:
    """``"Digits-v0"`` or ``"aees_gym/Digits-v0"`` → ``"aees_gym:aees_gym/Digits-v0"``.

    The ``module:`` prefix makes ``gymnasium.make`` import ``aees_gym`` first, which registers the
    ids in a freshly spawned worker process. Ids that already name a module are kept.
    """
    from aees_gym.envs.registration import importable_env_id  # deferred: listing agents must not import torch

    return importable_env_id(env_id)


def all_valid_mask(action_space: spaces.Space[Any]) -> np.ndarray:
    """An action mask that allows every action (MaskablePPO's format for this space)."""
    if isinstance(action_space, spaces.Discrete):
        return np.ones(int(action_space.n), dtype=bool)
    if isinstance(action_space, spaces.MultiDiscrete):
        return np.ones(int(np.sum(action_space.nvec)), dtype=bool)
    if isinstance(action_space, spaces.MultiBinary):
        return np.ones(2 * int(np.prod(action_space.shape)), dtype=bool)
    raise TypeError(f"action masks are defined for discrete action spaces, got {action_space}.")


def _mask_env(env: gym.Env[Any, Any]) -> np.ndarray:
    return all_valid_mask(env.action_space)


def _wrap(env: gym.Env[Any, Any], masked: bool) -> gym.Env[Any, Any]:
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(env)  # episode return/length for SB3's logs (and TensorBoard)
    if masked:
        from sb3_contrib.common.wrappers import ActionMasker

        env = ActionMasker(env, _mask_env)
    return env


def make_training_env(env_id: str, env_kwargs: Mapping[str, Any], masked: bool, single_thread: bool) -> gym.Env[Any, Any]:
    """Build one training env; a top-level function so that spawned workers can unpickle it."""
    if single_thread:
        from aees_gym.core.threads import init_worker  # deferred: listing agents must not import torch

        init_worker()  # one thread per vector-env worker; the workers share the cores
    return _wrap(gym.make(env_id, **env_kwargs), masked)


def training_vec_env(masked: bool, env: str | gym.Env[Any, Any], n_envs: int, env_kwargs: dict[str, Any],
                     kind: str | None = None) -> Any:
    """The ``VecEnv`` of ``n_envs`` training envs of ``env`` (an id, or one env instance) run as ``kind`` says.

    Raises:
        ValueError: If ``kind`` is not one of :data:`VEC_ENVS`, or an env instance is given with
            several envs, env overrides or the batched kind.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    if kind not in VEC_ENVS:
        raise ValueError(f"vec_env={kind!r} is not valid; choose one of {list(VEC_ENVS)}.")
    if isinstance(env, gym.Env):
        if n_envs != 1 or env_kwargs or kind == "batched":
            raise ValueError("an env instance trains with n_envs=1, no env_kwargs and no batched vec_env; pass an env id instead.")
        wrapped = _wrap(env, masked)
        return DummyVecEnv([lambda: wrapped])
    if kind == "batched":
        from agents.sb3.vec import BatchedVecEnv

        return VecMonitor(BatchedVecEnv(env, n_envs, env_kwargs))  # episode returns for SB3's logs
    factory = functools.partial(make_training_env, full_env_id(env), env_kwargs, masked)
    if kind == "dummy" or (kind is None and n_envs == 1):
        return DummyVecEnv([functools.partial(factory, False)] * n_envs)
    return SubprocVecEnv([functools.partial(factory, True)] * n_envs, start_method="spawn")
