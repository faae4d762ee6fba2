"""An SB3 ``VecEnv`` over the batched env: N training runs in one process, no subprocesses.

:class:`BatchedVecEnv` adapts :class:`~aees_gym.envs.vector_env.AEESVectorEnv` to
stable-baselines3's ``VecEnv`` API: same-step resets with the final observation in
``info["terminal_observation"]``, one info dict per env, ``seed(s)`` seeding env ``i`` with
``s + i`` at the next ``reset()``. ``SB3Agent.learn(..., vec_env="batched")`` builds it::

    from agents.sb3 import SB3Agent
    SB3Agent("ppo", algo_kwargs={"n_steps": 8}).learn("Digits-v0", 512, seed=0, n_envs=64, vec_env="batched")

stable-baselines3 is imported when this module is, so import it only where SB3 is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv


class BatchedVecEnv(VecEnv):
    """``n_envs`` runs of ``task`` trained together, seen by SB3 as a ``VecEnv``.

    Args:
        task: Task name or id (``Digits``, ``Digits-v0``, ``aees_gym/Digits-v0``); it must be batchable.
        n_envs: Number of runs trained at once.
        env_kwargs: ``gymnasium.make`` overrides (any ``EnvConfig`` field, ``torch_threads``, ``instance_set``).
    """

    def __init__(self, task: str, n_envs: int, env_kwargs: dict[str, Any] | None = None) -> None:
        from aees_gym.envs.registration import importable_env_id, task_of
        from aees_gym.envs.vector_env import AEESVectorEnv

        self.venv = AEESVectorEnv(task_of(importable_env_id(task)), n_envs, **dict(env_kwargs or {}))
        self._all = list(range(n_envs))
        self._actions: np.ndarray | None = None
        super().__init__(n_envs, self.venv.single_observation_space, self.venv.single_action_space)

    def reset(self) -> np.ndarray:
        results = self.venv.reset_rows(self._all, list(self._seeds), self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for _, info in results]
        return np.stack([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_async(actions) must be called before step_wait().")
        actions = self.venv._check_actions(self._actions.astype(np.int64, copy=False))
        results = self.venv.step_rows({i: int(actions[i]) for i in self._all})
        self._actions = None
        obs = np.stack([results[i][0] for i in self._all])
        rewards = np.asarray([results[i][1] for i in self._all], dtype=np.float32)
        dones = np.asarray([results[i][2] for i in self._all], dtype=bool)
        infos = [results[i][3] for i in self._all]
        ended = [i for i in self._all if dones[i]]
        for i, (first_obs, reset_info) in zip(ended, self.venv.reset_rows(ended, [None] * len(ended)), strict=True):
            infos[i]["terminal_observation"] = obs[i]
            infos[i]["TimeLimit.truncated"] = False  # runs end by budget or divergence: terminations
            obs[i] = first_obs
            self.reset_infos[i] = reset_info
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.venv.close()

    # ------------------------------------------------------------------ attribute access
    def _indices(self, indices: None | int | Sequence[int]) -> list[int]:
        if indices is None:
            return list(self._all)
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: None | int | Sequence[int] = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Sequence[int] = None) -> None:
        raise AttributeError(f"the batched env's sub-envs share their attributes; {attr_name!r} cannot be set per env.")

    def env_method(self, method_name: str, *method_args: Any, indices: None | int | Sequence[int] = None, **method_kwargs: Any) -> list[Any]:
        if method_name == "action_masks":  # MaskablePPO: every candidate of the Discrete space is always allowed
            return [np.ones(int(self.venv.single_action_space.n), dtype=bool) for _ in self._indices(indices)]
        method = getattr(self.venv, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Sequence[int] = None) -> list[bool]:
        return [False for _ in self._indices(indices)]
