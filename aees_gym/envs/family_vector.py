"""FamilyVectorEnv: a family's runs as one Gymnasium vector env, one batched env per architecture.

The rows of one batched env (:class:`~aees_gym.envs.vector_env.AEESVectorEnv`) must share the
data, network, batch size and optimizer. A family crosses these, so
``gymnasium.make_vec("aees_gym/MLP-v0", num_envs=N, vectorization_mode="vector_entry_point",
instance_set=FAMILY)`` builds one batched env per architecture of the family (the family
restricted to it, ``<family>@arch<k>``) and shares the ``N`` sub-envs out among them: equally on
the ``train`` split (the menu is drawn uniformly), in proportion to the instances of each
architecture on ``tuning`` and ``test``. A sub-env keeps its architecture; every reset draws its
run's base LR, label noise, budget and seed afresh (``train``) or takes the next instance of its
architecture's share of a fixed split. Sub-env ``i`` reset with ``seed=s`` gets ``s + i``, as in
every vector env of the package; runs end and restart independently (next-step autoreset by
default, ``autoreset_mode=SAME_STEP`` as an option).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from aees_gym.envs.families import DERIVED_MARK, get_family, is_family
from aees_gym.envs.vector_env import AEESVectorEnv
from aees_gym.envs.vector_rows import _masked_rows, _merge_step, _seed_list, _store_resets


def share_rows(n: int, weights: Sequence[int], *, name: str = "num_envs",
               groups: str = "the family's {k} architectures (one batched env each)") -> list[int]:
    """Split ``n`` rows in proportion to ``weights`` (largest remainders), at least one each.

    ``name`` (the caller's argument) and ``groups`` (what the weights count, ``{k}`` their number)
    word the error when ``n`` cannot give every group a row.
    """
    if n < len(weights):
        raise ValueError(f"{name}={n} cannot cover {groups.format(k=len(weights))}; use {name} >= {len(weights)}.")
    spare = n - len(weights)
    exact = [spare * w / sum(weights) for w in weights]
    shares = [1 + int(e) for e in exact]
    for i in sorted(range(len(weights)), key=lambda i: (int(exact[i]) - exact[i], i))[: n - sum(shares)]:
        shares[i] += 1
    return shares


def reset_by_part(parts: Sequence[AEESVectorEnv], rows: Sequence[tuple[int, int]], envs: Sequence[int],
                  seeds: Sequence[int | None], options: Mapping[str, Any] | None) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
    """Reset ``envs`` (with ``seeds``), each through the batched env that holds it.

    ``rows[i]`` is env ``i``'s (part index, row in that part); returns ``{env: (obs, info)}``.
    """
    out: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    for p, part in enumerate(parts):
        mine = [(i, s) for i, s in zip(envs, seeds, strict=True) if rows[i][0] == p]
        if mine:
            results = part.reset_rows([rows[i][1] for i, _ in mine], [s for _, s in mine], options)
            out.update(zip([i for i, _ in mine], results, strict=True))
    return out


class FamilyVectorEnv(VectorEnv):
    """``num_envs`` runs of an instance family, one batched env per architecture (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, task: str, num_envs: int, *, instance_set: str, split: str = "train",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, **kwargs: Any) -> None:
        family = get_family(instance_set)
        family._check_split(split)
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("A family's vector env restarts runs itself; choose autoreset_mode NEXT_STEP or SAME_STEP.")
        self.autoreset_mode = mode
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        if split == "train":
            archs = list(range(len(family.architectures)))
            weights = [1] * len(archs)
        else:
            counts = [sum(family.architecture_index(i.env_overrides) == k for i in family.split(split)) for k in range(len(family.architectures))]
            archs = [k for k, c in enumerate(counts) if c]
            weights = [counts[k] for k in archs]
        shares = share_rows(int(num_envs), weights)
        self.parts = [AEESVectorEnv(task, n, instance_set=f"{family.name}@arch{k}", split=split, **kwargs) for k, n in zip(archs, shares, strict=True)]
        first = self.parts[0]
        for part in self.parts[1:]:
            if part.single_observation_space != first.single_observation_space or part.single_action_space != first.single_action_space:
                raise ValueError(f"The architectures of family {family.name!r} give different spaces; use one grid and one feature list.")
        self.family, self.split = family, split
        self.num_envs = int(num_envs)
        #: Sub-env ``i`` is row ``rows[i][1]`` of part ``rows[i][0]``.
        self.rows = [(p, r) for p, part in enumerate(self.parts) for r in range(part.num_envs)]
        self._owned = [[i for i, (q, _) in enumerate(self.rows) if q == p] for p in range(len(self.parts))]
        self.single_observation_space, self.single_action_space = first.single_observation_space, first.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.feature_names = first.feature_names
        self._obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def _reset(self, envs: Sequence[int], seeds: Sequence[int | None], options: Mapping[str, Any] | None) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
        return reset_by_part(self.parts, self.rows, envs, seeds, options)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = _seed_list(seed, self.num_envs)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        envs = _masked_rows(mask, self.num_envs)
        return _store_resets(self, sorted(self._reset(envs, [seeds[i] for i in envs], options or None).items()), envs)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        for part, mine in zip(self.parts, self._owned, strict=True):
            part._check_actions(actions[mine])  # a bad action fails before any run steps
        restart = [i for i in range(self.num_envs) if self._autoreset[i]]
        reset_infos = self._reset(restart, [None] * len(restart), None)
        results: dict[int, Any] = {}
        for part, mine in zip(self.parts, self._owned, strict=True):
            stepped = part.step_rows({self.rows[i][1]: int(actions[i]) for i in mine if i not in reset_infos})
            results.update((i, stepped[self.rows[i][1]]) for i in mine if i not in reset_infos)
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        ended = [i for i, res in results.items() if res[2]]
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            for i in ended:
                infos = self._add_info(infos, {"final_obs": results[i][0], "final_info": results[i][3]}, i)
            reset_infos.update(self._reset(ended, [None] * len(ended), None))
        infos = _merge_step(self, results, reset_infos, rewards, terminated, infos)
        self._autoreset = terminated.copy() if self.autoreset_mode == AutoresetMode.NEXT_STEP else np.zeros(self.num_envs, dtype=bool)
        return self._obs.copy(), rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def close_extras(self, **kwargs: Any) -> None:
        for part in self.parts:
            part.close()


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """The ids' ``vector_entry_point``: ``gymnasium.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``.

    An instance family of several architectures gets a :class:`FamilyVectorEnv`, everything else
    one :class:`~aees_gym.envs.vector_env.AEESVectorEnv`.
    """
    name = kwargs.get("instance_set")
    if name is not None and is_family(name) and DERIVED_MARK not in name and len(get_family(name).architectures) > 1:
        return FamilyVectorEnv(num_envs=num_envs, **kwargs)
    return AEESVectorEnv(num_envs=num_envs, **kwargs)
