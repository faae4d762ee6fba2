"""An SB3 ``VecEnv`` over the batched env: N training runs in one process, no subprocesses.

:class:`BatchedVecEnv` adapts :class:`~aees_gym.envs.vector_env.AEESVectorEnv` to
stable-baselines3's ``VecEnv`` API: same-step resets with the final observation in
``info["terminal_observation"]``, one info dict per env, ``seed(s)`` seeding env ``i`` with
``s + i`` at the next ``reset()``. ``SB3Agent.learn(..., vec_env="batched")`` builds it::

    from agents.sb3 import SB3Agent
    SB3Agent("ppo", algo_kwargs={"n_steps": 8}).learn("Digits-v0", 512, seed=0, n_envs=64, vec_env="batched")

An instance set whose split crosses architectures (``digits-mix-v0``: MLP and CNN) trains as one
batched env per architecture, the ``n_envs`` runs shared out in proportion to each architecture's
instances and concatenated into one ``VecEnv`` (:func:`architecture_groups`).

stable-baselines3 is imported when this module is, so import it only where SB3 is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

# AEESVectorEnv keywords that are not EnvConfig settings of an instance.
_ENV_KEYWORDS = ("instance_set", "split", "instance_descriptors", "torch_threads", "autoreset_mode", "render_mode", "box_actions")


def architecture_groups(instance_set: str, split: str, env_kwargs: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The split's instances grouped by what one batched env must share, in order of first appearance.

    Returns ``(set name, instances)`` per group; a split of one architecture is one group under the
    set's own name, otherwise each group is registered as a derived instance set
    ``<set>@<split>#<k>`` (holding the group in ``split``) so that one batched env can cycle through it.
    """
    from aees_gym.envs.instances import InstanceSet, derived_set_name, get_instance_set, register_instance_set
    from aees_gym.tasks.batched import SHARED_FIELDS

    parent = get_instance_set(instance_set)
    settings = {k: v for k, v in env_kwargs.items() if k not in _ENV_KEYWORDS}
    groups: dict[str, list[Any]] = {}
    for inst in parent.split(split):
        config = inst.config(**settings)
        groups.setdefault(repr([getattr(config, name) for name in SHARED_FIELDS]), []).append(inst)
    if len(groups) == 1:
        return [(instance_set, parent.split(split))]
    other = "test" if split == "train" else "train"
    out = []
    for k, members in enumerate(groups.values()):
        # The other split is never visited by this env; it only has to be a valid, disjoint split.
        splits = {split: tuple(members), other: parent.split(other)}
        derived = InstanceSet(derived_set_name(instance_set, f"{split}#{k}"), f"{parent.description} ({members[0].task} runs of {split})", **splits)
        out.append((register_instance_set(derived, overwrite=True).name, tuple(members)))
    return out


def share_envs(n_envs: int, sizes: Sequence[int]) -> list[int]:
    """Split ``n_envs`` in proportion to ``sizes`` (largest remainders), at least one each.

    Raises:
        ValueError: If ``n_envs`` is smaller than the number of groups.
    """
    from aees_gym.envs.family_vector import share_rows

    return share_rows(n_envs, sizes, name="n_envs", groups="{k} architectures of the instance set")


class BatchedVecEnv(VecEnv):
    """``n_envs`` runs of ``task`` trained together, seen by SB3 as a ``VecEnv``.

    With ``instance_set`` in ``env_kwargs`` whose split crosses architectures, the runs are trained
    by one batched env per architecture (``n_envs`` shared out by :func:`share_envs`); env ``i`` is
    still seeded ``seed + i``. An instance family (:mod:`aees_gym.envs.families`) is split the way
    its own :class:`~aees_gym.envs.family_vector.FamilyVectorEnv` splits it.

    Args:
        task: Task name or id (``Digits``, ``Digits-v0``, ``aees_gym/Digits-v0``); it must be batchable.
        n_envs: Number of runs trained at once.
        env_kwargs: ``gymnasium.make`` overrides (any ``EnvConfig`` field, ``torch_threads``, ``instance_set``);
            ``box_actions=True`` (or a dict of :class:`~aees_gym.envs.wrappers.BoxDecoder` ranges) gives
            SAC/TD3 ``Box`` actions, each decoded to an exact candidate as ``ContinuousAction`` does.

    Raises:
        ValueError: If the architectures' observation or action spaces differ, or ``n_envs`` is
            smaller than the number of architectures.
    """

    def __init__(self, task: str, n_envs: int, env_kwargs: dict[str, Any] | None = None) -> None:
        from aees_gym.envs.registration import importable_env_id, task_of
        from aees_gym.envs.vector_env import AEESVectorEnv

        kwargs = dict(env_kwargs or {})
        box = kwargs.pop("box_actions", None)
        task = task_of(importable_env_id(task))
        from aees_gym.envs.families import is_family

        family = kwargs.get("instance_set") is not None and is_family(kwargs["instance_set"])
        if family:  # one batched env per architecture of the family, as its own vector env shares them out
            from aees_gym.envs.family_vector import FamilyVectorEnv

            plan = []
        elif kwargs.get("instance_set") is None:
            plan = [(task, n_envs, kwargs)]
        else:
            groups = architecture_groups(kwargs["instance_set"], kwargs.get("split", "train"), kwargs)
            shares = share_envs(n_envs, [len(members) for _, members in groups])
            plan = [(members[0].task, n, {**kwargs, "instance_set": name}) for (name, members), n in zip(groups, shares, strict=True)]
        #: One batched env per architecture; ``venv`` is the first (the only one without a crossing set).
        self.parts = FamilyVectorEnv(task, n_envs, **kwargs).parts if family else [AEESVectorEnv(t, n, **kw) for t, n, kw in plan]
        self.venv = self.parts[0]
        for part in self.parts[1:]:
            if part.single_observation_space != self.venv.single_observation_space or part.single_action_space != self.venv.single_action_space:
                raise ValueError(
                    f"the architectures of instance set {kwargs.get('instance_set')!r} give different spaces "
                    f"({part.config.task}: {part.single_observation_space}, {part.single_action_space}; {self.venv.config.task}: "
                    f"{self.venv.single_observation_space}, {self.venv.single_action_space}); one VecEnv needs equal observation and "
                    "action spaces: use the same grid, context features and bounds for every instance."
                )
        #: Env ``i`` is row ``_rows[i][1]`` of part ``_rows[i][0]``.
        self._rows = [(p, row) for p, part in enumerate(self.parts) for row in range(part.num_envs)]
        self._all = list(range(n_envs))
        self._actions: np.ndarray | None = None
        #: Box actions decoded to exact candidates (``env_kwargs["box_actions"]``: True or BoxDecoder ranges).
        self.decoder = None
        if box is not None and box is not False:
            from aees_gym.envs.wrappers import BoxDecoder

            self.decoder = BoxDecoder(self.venv.grid, **({} if box is True else dict(box)))
        action_space = self.venv.single_action_space if self.decoder is None else self.decoder.space
        # A family's parts share its settings (the family draws each row's instance); a crossing set's carry their own.
        part_kwargs = [{**kwargs, **kw} for _, _, kw in plan] if plan else [kwargs] * len(self.parts)
        self._views = [SubEnv(self, i, part_kwargs[p]) for i, (p, _) in enumerate(self._rows)]
        super().__init__(n_envs, self.venv.single_observation_space, action_space)

    def _reset(self, envs: Sequence[int], seeds: Sequence[int | None], options: dict[str, Any] | None) -> list[tuple[np.ndarray, dict[str, Any]]]:
        from aees_gym.envs.family_vector import reset_by_part

        out = reset_by_part(self.parts, self._rows, envs, seeds, options)
        return [out[i] for i in envs]

    def reset(self) -> np.ndarray:
        results = self._reset(self._all, list(self._seeds), self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info for _, info in results]
        return np.stack([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs, *self.action_space.shape)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_async(actions) must be called before step_wait().")
        owned = [[i for i in self._all if self._rows[i][0] == p] for p in range(len(self.parts))]
        if self.decoder is not None:  # every part shares the grid (equal action spaces were checked)
            actions: Any = [self.decoder.action(a) for a in np.asarray(self._actions, dtype=np.float64).reshape(self.num_envs, -1)]
        else:
            actions = self._actions.astype(np.int64, copy=False)
            for part, mine in zip(self.parts, owned, strict=True):
                part._check_actions(actions[mine])  # a bad action fails before any run steps
        results: dict[int, Any] = {}
        for part, mine in zip(self.parts, owned, strict=True):
            stepped = part.step_rows({self._rows[i][1]: actions[i] if self.decoder is not None else int(actions[i]) for i in mine})
            results.update((i, stepped[self._rows[i][1]]) for i in mine)
        self._actions = None
        obs = np.stack([results[i][0] for i in self._all])
        rewards = np.asarray([results[i][1] for i in self._all], dtype=np.float32)
        dones = np.asarray([results[i][2] for i in self._all], dtype=bool)
        infos = [results[i][3] for i in self._all]
        ended = [i for i in self._all if dones[i]]
        for i, (first_obs, reset_info) in zip(ended, self._reset(ended, [None] * len(ended), None), strict=True):
            infos[i]["terminal_observation"] = obs[i]
            infos[i]["TimeLimit.truncated"] = False  # runs end by budget or divergence: terminations
            obs[i] = first_obs
            self.reset_infos[i] = reset_info
        return obs, rewards, dones, infos

    def close(self) -> None:
        for part in self.parts:
            part.close()

    # ------------------------------------------------------------------ attribute access
    def _indices(self, indices: None | int | Sequence[int]) -> list[int]:
        if indices is None:
            return list(self._all)
        return [indices] if isinstance(indices, int) else list(indices)

    def sub_env(self, index: int) -> SubEnv:
        """Env ``index`` as SB3's per-env calls see it (:class:`SubEnv`: one row of the batched engine)."""
        if not 0 <= index < self.num_envs:
            raise IndexError(f"env index {index} is out of range; this VecEnv has {self.num_envs} envs.")
        return self._views[index]

    def get_attr(self, attr_name: str, indices: None | int | Sequence[int] = None) -> list[Any]:
        """The attribute of each env in ``indices`` (SB3's per-env semantics; e.g. ``spec``, ``config``)."""
        return [getattr(self.sub_env(i), attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Sequence[int] = None) -> None:
        raise AttributeError(f"the batched env's sub-envs share their attributes; {attr_name!r} cannot be set per env.")

    def env_method(self, method_name: str, *method_args: Any, indices: None | int | Sequence[int] = None, **method_kwargs: Any) -> list[Any]:
        """Call ``method_name`` on each env in ``indices``, once per env (SB3's per-env semantics)."""
        return [getattr(self.sub_env(i), method_name)(*method_args, **method_kwargs) for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Sequence[int] = None) -> list[bool]:
        return [False for _ in self._indices(indices)]


class SubEnv:
    """Env ``index`` of a :class:`BatchedVecEnv`: one row of a batched engine, with a single env's face.

    ``get_attr``/``env_method`` reach these per env, as SB3 expects of any ``VecEnv``: ``spec`` (the
    id's ``EnvSpec`` with this env's settings), ``observation_space``/``action_space`` (one env's),
    ``config`` (the row's resolved config), ``render_mode``, ``reset(seed=..., options=...)`` (this
    row only, as a single env's reset), ``action_masks()`` (MaskablePPO: every candidate is always
    allowed) and ``get_wrapper_attr``. Methods of the batched engine as a whole (``step``, ``close``)
    are not reachable per env: calling one would act on every row.
    """

    render_mode = None

    def __init__(self, owner: BatchedVecEnv, index: int, env_kwargs: dict[str, Any]) -> None:
        self._owner, self.index = owner, index
        self._part, self._row = owner.parts[owner._rows[index][0]], owner._rows[index][1]
        self._env_kwargs = env_kwargs

    @property
    def spec(self) -> Any:
        import dataclasses

        import gymnasium as gym

        from aees_gym.envs.registration import env_id

        base = gym.spec(env_id(self._part.config.task))
        return dataclasses.replace(base, kwargs={**base.kwargs, **self._env_kwargs})

    @property
    def observation_space(self) -> Any:
        return self._part.single_observation_space

    @property
    def action_space(self) -> Any:
        return self._part.single_action_space

    @property
    def config(self) -> Any:
        """The row's resolved config (before its first reset: the env's, the same for every row without an instance set)."""
        try:
            return self._part.row_config(self._row)
        except RuntimeError:
            return self._part.config

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._part.metadata)

    @property
    def unwrapped(self) -> SubEnv:
        return self

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart this env's run only (the others go on), like ``gymnasium.Env.reset``."""
        ((obs, info),) = self._owner._reset([self.index], [seed], options)
        self._owner.reset_infos[self.index] = info
        return obs, info

    def action_masks(self) -> np.ndarray:
        return np.ones(int(self.action_space.n), dtype=bool)

    def get_wrapper_attr(self, name: str) -> Any:
        return getattr(self, name)

    def __getattr__(self, name: str) -> Any:
        # Attributes the rows share (e.g. ``feature_names``) are read from the batched env; its
        # methods are not: they would act on every row, not on this env.
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._part, name)
        if callable(value):
            raise AttributeError(
                f"{name!r} is a method of the batched env as a whole, not of env {self.index}; per env: reset, "
                "action_masks, get_wrapper_attr."
            )
        return value
