"""Stable-baselines3 policies as agents: train on cheap tasks, save, load, deploy anywhere.

``SB3Agent`` wraps PPO, A2C and DQN from stable-baselines3 and, when sb3-contrib is installed,
QRDQN, RecurrentPPO and MaskablePPO. It is an *offline* learner (``requires_training = True``):
:meth:`SB3Agent.learn` trains on ``aees_gym`` envs, :meth:`SB3Agent.save` writes one zip,
:meth:`SB3Agent.load` reads it back, and during evaluation the policy only acts (``update`` does
not learn). stable-baselines3 is imported lazily, so importing this module needs only gymnasium.

With ``n_envs > 1`` training uses ``SubprocVecEnv`` (spawn start method) over the
``"aees_gym:aees_gym/<Task>-v0"`` id, so every worker imports ``aees_gym`` and builds its own env;
each worker runs one torch thread so that the workers do not oversubscribe the cores.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.base import BaseAgent

__all__ = ["ALGORITHMS", "SB3Agent", "full_env_id"]

_SB3_EXTRA = "install the 'sb3' extra: pip install 'aees-gym[sb3]'"
_CONTRIB_HINT = "install sb3-contrib: pip install sb3-contrib"
_META_NAME = "aees_agent.json"  # extra archive member; SB3's loader ignores names it does not know
_META_FORMAT = "aees_gym.sb3_agent"
_ALL_SPACES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")


@dataclass(frozen=True)
class AlgorithmSpec:
    """Where an algorithm lives and what it can drive.

    Attributes:
        module: Python module that defines the class.
        cls: Class name.
        action_spaces: Names of the ``gymnasium.spaces`` classes the algorithm supports.
        default_policy: Policy used when the agent is given none.
        recurrent: Whether ``predict`` carries an LSTM state between windows.
        masked: Whether ``predict`` and training need action masks.
    """

    module: str
    cls: str
    action_spaces: tuple[str, ...]
    default_policy: str = "MlpPolicy"
    recurrent: bool = False
    masked: bool = False


ALGORITHMS: Mapping[str, AlgorithmSpec] = {
    "ppo": AlgorithmSpec("stable_baselines3", "PPO", _ALL_SPACES),
    "a2c": AlgorithmSpec("stable_baselines3", "A2C", _ALL_SPACES),
    "dqn": AlgorithmSpec("stable_baselines3", "DQN", ("Discrete",)),
    "qrdqn": AlgorithmSpec("sb3_contrib", "QRDQN", ("Discrete",)),
    "recurrentppo": AlgorithmSpec("sb3_contrib", "RecurrentPPO", _ALL_SPACES, "MlpLstmPolicy", recurrent=True),
    "maskableppo": AlgorithmSpec("sb3_contrib", "MaskablePPO", ("Discrete", "MultiDiscrete", "MultiBinary"), masked=True),
}


def _spec(algo: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGORITHMS)}.") from None


def _require_installed(spec: AlgorithmSpec) -> None:
    if importlib.util.find_spec("stable_baselines3") is None:
        raise ImportError(f"SB3Agent needs stable-baselines3; {_SB3_EXTRA}.")
    if spec.module == "sb3_contrib" and importlib.util.find_spec("sb3_contrib") is None:
        raise ImportError(f"algo {spec.cls} comes from sb3-contrib; {_CONTRIB_HINT}.")


def _algorithm_class(spec: AlgorithmSpec) -> Any:
    _require_installed(spec)
    return getattr(importlib.import_module(spec.module), spec.cls)


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


def _check_action_space(algo: str, action_space: spaces.Space[Any]) -> None:
    spec = _spec(algo)
    if type(action_space).__name__ not in spec.action_spaces:
        fitting = sorted(a for a, s in ALGORITHMS.items() if type(action_space).__name__ in s.action_spaces)
        raise TypeError(
            f"{spec.cls} supports {list(spec.action_spaces)} action spaces, not {action_space}; "
            f"use an algo that supports it ({fitting}) or the env's default Discrete action space."
        )


class SB3Agent(BaseAgent):
    """A stable-baselines3 policy that chooses each window's action.

    Args:
        algo: One of :data:`ALGORITHMS`: ``ppo``, ``a2c``, ``dqn`` and (with sb3-contrib)
            ``qrdqn``, ``recurrentppo``, ``maskableppo``.
        policy: SB3 policy name (``None``: ``MlpLstmPolicy`` for ``recurrentppo``, else ``MlpPolicy``).
        policy_kwargs: Passed to the policy (e.g. ``{"net_arch": [64, 64]}``).
        algo_kwargs: Passed to the algorithm's constructor (e.g. ``{"n_steps": 128}``); ``device``
            defaults to ``"cpu"``, where small MLP policies run fastest and reproducibly.
        deterministic: Act with the policy's mode (``True``) or sample from it; sampling draws from
            torch's global generator, which :meth:`reset` seeds.
        tensorboard_log: Folder for SB3's TensorBoard logs during :meth:`learn` (``None``: off).

    Raises:
        ValueError: If ``algo`` is unknown (the message lists the valid ones).
        ImportError: If stable-baselines3 (or sb3-contrib for its algorithms) is missing.
    """

    name = "sb3"
    description = "stable-baselines3 policy (PPO, A2C, DQN; QRDQN, RecurrentPPO, MaskablePPO)"
    requires_training: ClassVar[bool] = True

    def __init__(
        self,
        algo: str = "ppo",
        policy: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        algo_kwargs: dict[str, Any] | None = None,
        deterministic: bool = True,
        tensorboard_log: str | None = None,
    ) -> None:
        self._algo_spec = _spec(algo)
        _require_installed(self._algo_spec)
        self.algo = algo
        self.policy = policy or self._algo_spec.default_policy
        self.policy_kwargs = dict(policy_kwargs or {})
        self.algo_kwargs = dict(algo_kwargs or {})
        self.deterministic = bool(deterministic)
        self.tensorboard_log = None if tensorboard_log is None else str(tensorboard_log)
        self.model: Any | None = None
        self._action_space: spaces.Space[Any] | None = None
        self._lstm_state: Any = None
        self._episode_start = True

    # ------------------------------------------------------------------ training and files
    def learn(
        self,
        env_id: str | gym.Env[Any, Any],
        total_timesteps: int,
        *,
        seed: int,
        n_envs: int = 1,
        env_kwargs: dict[str, Any] | None = None,
        callback: Any = None,
        **kw: Any,
    ) -> SB3Agent:
        """Train (or continue training) the policy for ``total_timesteps`` windows.

        Args:
            env_id: An env id (``"Digits-v0"``, ``"aees_gym/Digits-v0"`` or a full
                ``"module:id"``), or an env instance (only with ``n_envs=1``).
            total_timesteps: Env steps (windows) to train for.
            seed: Seeds the algorithm, the policy and the envs (env ``i`` gets ``seed + i``).
            n_envs: Parallel envs; above 1 they run in ``SubprocVecEnv`` workers (spawn).
            env_kwargs: ``gymnasium.make`` overrides (any ``EnvConfig`` field).
            callback: SB3 callback(s).
            **kw: Passed to the algorithm's ``learn`` (e.g. ``log_interval``, ``tb_log_name``).

        Raises:
            TypeError: If the env's action space does not suit the algorithm (nothing is created).
            ValueError: If ``n_envs`` < 1, or an env instance is given with ``n_envs`` > 1.
        """
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}.")
        vec_env = self._vec_env(env_id, n_envs, dict(env_kwargs or {}))
        try:
            _check_action_space(self.algo, vec_env.action_space)
            vec_env.seed(seed)
            if self.model is None:
                self.model = self._new_model(vec_env, seed)
            else:
                self.model.set_env(vec_env)
            kw.setdefault("tb_log_name", self.algo)
            self.model.learn(total_timesteps, callback=callback, **kw)
        finally:
            vec_env.close()
        return self

    def save(self, path: str | Path) -> Path:
        """Write the policy to ``path`` as one zip, atomically (a failed save leaves no file).

        Raises:
            RuntimeError: If there is no policy yet (call :meth:`learn` or :meth:`load`).
        """
        model = self._require_model()
        buffer = io.BytesIO()
        model.save(buffer)
        with zipfile.ZipFile(buffer, mode="a") as archive:
            archive.writestr(_META_NAME, json.dumps(self._metadata(), sort_keys=True))
        from aees_gym.core.fileio import atomic_write_bytes  # deferred: the registry must not import torch

        return atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", **kwargs: Any) -> SB3Agent:
        """Read a policy written by :meth:`save` (or by SB3 itself, given ``algo``).

        Args:
            path: The zip file.
            device: Torch device of the loaded policy.
            **kwargs: Constructor arguments (``algo``, ``deterministic``, …); ``algo`` defaults to
                the one recorded in the file and must match it when given.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file records another algo than ``algo``, or records none and no
                ``algo`` is given.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved SB3 policy at {path}; train one with SB3Agent.learn() and save().")
        meta = _read_metadata(path)
        recorded = meta.get("algo")
        algo = kwargs.pop("algo", None) or recorded
        if algo is None:
            raise ValueError(f"{path} was not written by SB3Agent.save(); pass algo= (one of {sorted(ALGORITHMS)}).")
        if recorded is not None and algo != recorded:
            raise ValueError(f"{path} holds a {recorded!r} policy, not {algo!r}.")
        kwargs.setdefault("deterministic", meta.get("deterministic", True))
        agent = cls(algo=algo, policy=kwargs.pop("policy", meta.get("policy")), **kwargs)
        agent.model = _algorithm_class(agent._algo_spec).load(path, device=device)
        return agent

    # ------------------------------------------------------------------ Agent API
    def reset(
        self,
        *,
        seed: int | None,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        info: dict[str, Any],
    ) -> None:
        """Check that the policy fits these spaces and clear any recurrent state.

        Raises:
            RuntimeError: If there is no policy yet.
            TypeError: If the action space does not suit the algorithm.
            ValueError: If the spaces differ from the ones the policy was trained on.
        """
        model = self._require_model()
        _check_action_space(self.algo, action_space)
        if observation_space.shape != model.observation_space.shape:
            raise ValueError(
                f"the policy was trained on observations of shape {model.observation_space.shape}, "
                f"this env gives {observation_space.shape}; use the same observation features."
            )
        if action_space != model.action_space:
            raise ValueError(
                f"the policy was trained on action space {model.action_space}, this env has "
                f"{action_space}; use the same candidate grid and action view."
            )
        self._action_space = action_space
        self._lstm_state = None
        self._episode_start = True
        if not self.deterministic and seed is not None:
            model.set_random_seed(seed)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The policy's action for ``obs`` (an ``int`` for ``Discrete`` action spaces)."""
        model = self._require_model()
        if self._action_space is None:
            raise RuntimeError("SB3Agent.reset() must be called first.")
        extra: dict[str, Any] = {}
        if self._algo_spec.recurrent:
            extra = {"state": self._lstm_state, "episode_start": np.array([self._episode_start])}
        if self._algo_spec.masked:
            extra["action_masks"] = all_valid_mask(self._action_space)
        action, state = model.predict(np.asarray(obs), deterministic=self.deterministic, **extra)
        if self._algo_spec.recurrent:
            self._lstm_state, self._episode_start = state, False
        if isinstance(self._action_space, spaces.Discrete):
            return int(np.asarray(action).reshape(()))
        return action

    def update(
        self,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """No online learning; a finished episode restarts the recurrent state."""
        if terminated or truncated:
            self._lstm_state, self._episode_start = None, True

    # ------------------------------------------------------------------ helpers
    @property
    def is_trained(self) -> bool:
        """Whether a policy exists (learned or loaded)."""
        return self.model is not None

    def _require_model(self) -> Any:
        if self.model is None:
            raise RuntimeError(
                "this SB3Agent has no policy yet: call learn(env_id, total_timesteps, seed=...) "
                "or SB3Agent.load(path)."
            )
        return self.model

    def _metadata(self) -> dict[str, Any]:
        return {"format": _META_FORMAT, "algo": self.algo, "policy": self.policy, "deterministic": self.deterministic}

    def _new_model(self, vec_env: Any, seed: int) -> Any:
        algo_kwargs = {"device": "cpu", "verbose": 0, **self.algo_kwargs}
        return _algorithm_class(self._algo_spec)(
            self.policy, vec_env, seed=seed, policy_kwargs=self.policy_kwargs or None,
            tensorboard_log=self.tensorboard_log, **algo_kwargs,
        )

    def _vec_env(self, env: str | gym.Env[Any, Any], n_envs: int, env_kwargs: dict[str, Any]) -> Any:
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        masked = self._algo_spec.masked
        if isinstance(env, gym.Env):
            if n_envs != 1 or env_kwargs:
                raise ValueError("an env instance trains with n_envs=1 and no env_kwargs; pass an env id instead.")
            wrapped = _wrap(env, masked)
            return DummyVecEnv([lambda: wrapped])
        factory = functools.partial(make_training_env, full_env_id(env), env_kwargs, masked)
        if n_envs == 1:
            return DummyVecEnv([functools.partial(factory, False)])
        return SubprocVecEnv([functools.partial(factory, True)] * n_envs, start_method="spawn")


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            if _META_NAME not in archive.namelist():
                return {}
            meta = json.loads(archive.read(_META_NAME))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is not an SB3 policy zip ({exc}).") from exc
    return meta if isinstance(meta, dict) and meta.get("format") == _META_FORMAT else {}
