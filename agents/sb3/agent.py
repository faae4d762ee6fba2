"""Stable-baselines3 policies as agents: train on cheap tasks, save, load, deploy anywhere.

``SB3Agent`` wraps PPO, A2C and DQN from stable-baselines3 and, when sb3-contrib is installed,
QRDQN, RecurrentPPO and MaskablePPO. It is an *offline* learner (``requires_training = True``):
:meth:`SB3Agent.learn` trains on ``aees_gym`` envs, :meth:`SB3Agent.save` writes one zip,
:meth:`SB3Agent.load` reads it back without unpickling anything from the file
(:mod:`agents.sb3.files`), and during evaluation the policy only acts (``update`` does not learn).
``learn`` trains the ``total_timesteps`` asked or warns why it rounds (:mod:`agents.sb3.budget`),
and with ``checkpoint=path`` survives being killed (:mod:`agents.sb3.checkpoint`).
stable-baselines3 is imported lazily, so importing this module needs only gymnasium.

Training envs (:mod:`agents.sb3.training_envs`): with ``n_envs > 1`` training uses ``SubprocVecEnv`` (spawn start method) over the
``"aees_gym:aees_gym/<Task>-v0"`` id, so every worker imports ``aees_gym`` and builds its own env;
each worker runs one torch thread so that the workers do not oversubscribe the cores.
``learn(..., vec_env="batched")`` instead trains the ``n_envs`` runs as one batched computation in
this process (:mod:`agents.sb3.vec`), for the tasks the batched engine can train.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.base import BaseAgent
from agents.sb3 import budget as sb3_budget
from agents.sb3 import checkpoint as sb3_checkpoint
from agents.sb3.algorithms import ALGORITHMS
from agents.sb3.algorithms import algorithm_class as _algorithm_class
from agents.sb3.algorithms import algorithm_spec as _spec
from agents.sb3.algorithms import require_installed as _require_installed
from agents.sb3.training_envs import VEC_ENVS, all_valid_mask, full_env_id, training_vec_env

__all__ = ["ALGORITHMS", "VEC_ENVS", "SB3Agent", "full_env_id"]

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
        #: Windows the last ``learn`` found already trained in its checkpoint (``None``: it started afresh).
        self.resumed_at: int | None = None

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
        vec_env: str | None = None,
        progress_file: str | Path | None = None,
        checkpoint: str | Path | None = None,
        **kw: Any,
    ) -> SB3Agent:
        """Train (or continue training) the policy for ``total_timesteps`` windows.

        Exactly ``total_timesteps`` are trained where SB3 allows; otherwise a ``TimestepsRounded``
        warning says how many and why (:mod:`agents.sb3.budget`).

        Args:
            env_id: An env id (``"Digits-v0"``, ``"aees_gym/Digits-v0"`` or a full
                ``"module:id"``), or an env instance (only with ``n_envs=1``).
            total_timesteps: Env steps (windows) to train for.
            seed: Seeds the algorithm, the policy and the envs (env ``i`` gets ``seed + i``).
            n_envs: Parallel envs; above 1 they run in ``SubprocVecEnv`` workers (spawn) unless ``vec_env`` says otherwise.
            env_kwargs: ``gymnasium.make`` overrides (any ``EnvConfig`` field).
            callback: SB3 callback(s).
            vec_env: ``"batched"`` trains the ``n_envs`` runs together in this process
                (:mod:`agents.sb3.vec`; batchable tasks only), ``"subproc"`` in ``SubprocVecEnv``
                workers, ``"dummy"`` one after another; ``None``: ``dummy`` for one env, else ``subproc``.
            progress_file: Also write the windows trained so far to this JSON file, atomically, every
                30 s and at the end (:func:`agents.sb3.budget.with_progress_file`).
            checkpoint: Save the training here every 10 minutes, resume from it when it exists
                (training only the windows still missing) and remove it when done
                (:mod:`agents.sb3.checkpoint`; a resumed training is not bit-identical to an
                uninterrupted one). :attr:`resumed_at` says at which window it resumed (``None``: it did not).
            **kw: Passed to the algorithm's ``learn`` (e.g. ``log_interval``, ``tb_log_name``,
                ``progress_bar``, which defaults to on when stderr is a terminal).

        Raises:
            TypeError: If the env's action space does not suit the algorithm (nothing is created).
            ValueError: If ``n_envs`` < 1, an env instance is given with ``n_envs`` > 1, ``vec_env`` is
                unknown, or ``vec_env="batched"`` is asked for a task the batched engine cannot train.
        """
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}.")
        venv = training_vec_env(self._algo_spec.masked, env_id, n_envs, dict(env_kwargs or {}), vec_env)
        try:
            _check_action_space(self.algo, venv.action_space)
            done = self._resume(checkpoint)
            venv.seed(seed + done)
            if done < total_timesteps:
                self._learn(venv, total_timesteps - done, seed, done, n_envs, callback, progress_file, checkpoint, kw)
        finally:
            venv.close()
        if checkpoint is not None:
            sb3_checkpoint.remove_checkpoint(checkpoint)
        return self

    def _resume(self, checkpoint: str | Path | None) -> int:
        """Load ``checkpoint`` when there is one and no policy yet; the windows it has trained (0 otherwise)."""
        self.resumed_at = None
        if checkpoint is None or self.model is not None or not Path(checkpoint).is_file():
            return 0
        self.resumed_at = sb3_checkpoint.load_checkpoint(self, checkpoint, str(self.algo_kwargs.get("device", "cpu")))
        return self.resumed_at

    def _learn(self, venv: Any, budget_left: int, seed: int, done: int, n_envs: int, callback: Any,
               progress_file: str | Path | None, checkpoint: str | Path | None, kw: dict[str, Any]) -> None:
        budget = sb3_budget.plan_budget(_algorithm_class(self._algo_spec), budget_left, n_envs, self.algo_kwargs, self.model)
        if self.model is None:
            self.model = self._new_model(venv, seed, budget.algo_kwargs)
        else:
            self.model.set_env(venv)
        if done:  # a resumed training: go on counting, with generators of its own
            self.model.set_random_seed(seed + done)
            kw.setdefault("reset_num_timesteps", False)
        kw.setdefault("tb_log_name", self.algo)
        kw.setdefault("progress_bar", sb3_budget.progress_bar_default())
        sb3_budget.warn_if_rounded(budget, stacklevel=4)  # points at the caller of learn()
        callback = sb3_budget.with_stop_at_budget(callback) if budget.stop_callback else callback
        if checkpoint is not None:
            callback = sb3_checkpoint.with_checkpoints(callback, self, checkpoint, saved_at=self.resumed_at)
            saver = callback[-1]
        if progress_file is not None:  # its reports say where a restart would resume
            checkpointed = (lambda: saver.saved_at) if checkpoint is not None else None
            callback = sb3_budget.with_progress_file(callback, progress_file, checkpointed=checkpointed)
        self.model.learn(budget.total, callback=callback, **kw)

    def save(self, path: str | Path) -> Path:
        """Write the policy to ``path`` as one zip, atomically (a failed save leaves no file).

        Besides SB3's own members the zip holds ``aees_agent.json``: every setting :meth:`load`
        needs to rebuild the policy without unpickling, as JSON.

        Raises:
            RuntimeError: If there is no policy yet (call :meth:`learn` or :meth:`load`).
            ValueError: If a ``policy_kwargs``/``algo_kwargs`` value cannot be written as JSON
                (a function, an object, a class from outside torch/SB3); the message names it.
        """
        from agents.sb3.files import META_NAME

        model = self._require_model()
        meta = json.dumps(self._metadata(), sort_keys=True)  # first: a setting JSON cannot hold fails before writing
        buffer = io.BytesIO()
        model.save(buffer)
        with zipfile.ZipFile(buffer, mode="a") as archive:  # SB3's own loader ignores members it does not know
            archive.writestr(META_NAME, meta)
        from aees_gym.core.fileio import atomic_write_bytes  # deferred: the registry must not import torch

        return atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str = "cpu",
        observation_space: spaces.Space[Any] | None = None,
        action_space: spaces.Space[Any] | None = None,
        **kwargs: Any,
    ) -> SB3Agent:
        """Read a policy written by :meth:`save` (or by SB3 itself, given ``algo``), running no code from it.

        The algorithm is rebuilt from the file's JSON settings, the weights read with
        ``weights_only=True`` (:mod:`agents.sb3.files`). Settings a plain SB3 zip holds only pickled
        (schedules) take the defaults, which matter only for further training (see ``algo_kwargs``).

        Args:
            path: The zip file.
            device: Torch device of the loaded policy.
            observation_space: The policy's observation space, when the file does not describe it
                readably (a plain SB3 zip of a large Box); overrides the file's.
            action_space: Likewise for the action space.
            **kwargs: Constructor arguments (``algo``, ``deterministic``, ``policy``,
                ``policy_kwargs``, ``algo_kwargs`` …); ``algo`` defaults to the one recorded in the
                file and must match it when given.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file records another algo than ``algo``, or records none and no
                ``algo`` is given; if it is not a policy zip, holds anything but tensors in its
                weight files, or needs unpickling for a setting not given here (the message
                names the argument to pass).
        """
        from agents.sb3 import files as sb3_files

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved SB3 policy at {path}; train one with SB3Agent.learn() and save().")
        file = sb3_files.read_policy_zip(path, device)
        meta = file.meta
        recorded = meta.get("algo")
        algo = kwargs.pop("algo", None) or recorded
        if algo is None:
            raise ValueError(f"{path} was not written by SB3Agent.save(); pass algo= (one of {sorted(ALGORITHMS)}).")
        if recorded is not None and algo != recorded:
            raise ValueError(f"{path} holds a {recorded!r} policy, not {algo!r}.")
        algorithm_class = _algorithm_class(_spec(algo))
        spaces_given = {"observation_space": observation_space, "action_space": action_space}
        settings = sb3_files.load_settings(algorithm_class, file, kwargs, spaces_given)
        agent = cls(algo=algo, **kwargs)
        agent.model = sb3_files.rebuild_model(algorithm_class, agent.policy, file, settings, agent.policy_kwargs, agent.algo_kwargs, device)
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
        from agents.sb3 import files as sb3_files

        return sb3_files.agent_metadata(self._require_model(), self.algo, self.policy, self.deterministic, self.algo_kwargs, self.policy_kwargs)

    def _new_model(self, vec_env: Any, seed: int, chosen: dict[str, Any]) -> Any:
        algo_kwargs = {"device": "cpu", "verbose": 0, **chosen, **self.algo_kwargs}
        return _algorithm_class(self._algo_spec)(
            self.policy, vec_env, seed=seed, policy_kwargs=self.policy_kwargs or None,
            tensorboard_log=self.tensorboard_log, **algo_kwargs,
        )
