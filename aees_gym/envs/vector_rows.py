"""Row bookkeeping shared by the batched vector envs (:mod:`aees_gym.envs.vector_env`,
:mod:`aees_gym.envs.family_vector`): which rows a reset names, one seed per row, folding per-row
reset and step results into Gymnasium's batched returns, and the extra columns appended to the
window losses so that they reach the host in one transfer.

:mod:`aees_gym.envs.vector_env` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from aees_gym.core import checks


def _with_grad_norm_column(losses: Any, grad_norms: Any) -> Any:
    """``[N, W]`` losses with each row's mean gradient norm appended, so both cross in one transfer."""
    import torch

    return torch.cat([losses, grad_norms.nanmean(dim=1, keepdim=True).to(losses.dtype)], dim=1)


def _with_column(losses: Any, values: Any) -> Any:
    """``[N, W]`` losses with ``values`` ``[N]`` appended as a last column (one transfer for both)."""
    import torch

    return torch.cat([losses, values.unsqueeze(1).to(losses.dtype)], dim=1)


def _store_resets(env: Any, results: Iterable[tuple[int, tuple[np.ndarray, dict[str, Any]]]], rows: list[int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Write each reset row's observation into ``env._obs``, merge the infos, clear the rows' autoreset."""
    infos: dict[str, Any] = {}
    for row, (obs, info) in results:
        env._obs[row] = obs
        infos = env._add_info(infos, info, row)
    env._autoreset[rows] = False
    return env._obs.copy(), infos


def _merge_step(env: Any, results: Mapping[int, tuple[Any, ...]], reset_infos: Mapping[int, tuple[np.ndarray, dict[str, Any]]],
                rewards: np.ndarray, terminated: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
    """Fold a step's ``(obs, reward, terminated, info)`` per stepped row and the (obs, info) of the
    rows reset in the same call into ``env._obs``, ``rewards``, ``terminated`` and the merged infos."""
    for i in range(env.num_envs):
        info: dict[str, Any] = {}
        if i in results:
            obs, rewards[i], terminated[i], info = results[i]
            env._obs[i] = obs
        if i in reset_infos:
            env._obs[i], info = reset_infos[i]
        infos = env._add_info(infos, info, i)
    return infos


def _masked_rows(mask: Any, n: int) -> list[int]:
    """The sub-envs a reset's ``options["reset_mask"]`` names (every one without a mask)."""
    if mask is None:
        return list(range(n))
    if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (n,) and mask.any()):
        raise ValueError(f"options['reset_mask'] must be a bool numpy array of shape ({n},) with a True value, got {mask!r}.")
    return [i for i in range(n) if mask[i]]


def _seed_list(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    return checks.seed_list("seed", seed, n)
