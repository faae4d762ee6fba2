"""Final metrics of a training run: one pure function, one representation (floats, NaN when missing).

Missing numbers are NaN, never ``None``: vector envs stack infos into arrays typed by the first
copy's value, so a field must keep one type across copies; result files write NaN as ``null``.
Timing is not here (same-seed infos must be identical): see ``AEESEnv.runtime_metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from aees_gym.core.context import RunHistory


def steps_to_target(steps: ArrayLike, values: ArrayLike, target: float) -> int | None:
    """First step at which a curve reaches ``values >= target``, or ``None`` if it never does.

    Raises:
        ValueError: On empty/NaN input, length mismatch, decreasing steps or a non-finite target.
    """
    s, v = np.asarray(steps, dtype=float).ravel(), np.asarray(values, dtype=float).ravel()
    for name, arr in (("steps", s), ("values", v)):
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
    if s.size != v.size:
        raise ValueError(f"steps and values differ in length ({s.size} vs {v.size})")
    if np.any(np.diff(s) < 0):
        raise ValueError("steps must be non-decreasing")
    if not np.isfinite(target):
        raise ValueError(f"target must be finite, got {target!r}")
    hits = np.flatnonzero(v >= target)
    return int(s[hits[0]]) if hits.size else None


def _finite_or_nan(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def final_metrics(
    eval_curve: Sequence[Mapping[str, float]],
    history: RunHistory,
    *,
    diverged: bool,
    target_accuracy: float | None,
    flops_per_step: float,
    monitor: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The end-of-run record from the evaluation curve (its last entry is the final evaluation).

    ``eval_curve`` is measured on the scoring part. ``monitor`` is the final evaluation on the
    reward-validation part (``TrainingRun.monitor``), recorded as ``reward_val_accuracy`` /
    ``reward_val_loss`` (NaN when the run keeps no such part): the numbers tuning chooses by, so no
    choice ever reads the scoring part.
    """
    final = dict(eval_curve[-1])
    final.pop("step", None)
    accs = [e["val_accuracy"] for e in eval_curve]
    reached = None
    if target_accuracy is not None:
        reached = steps_to_target([e["step"] for e in eval_curve], accs, target_accuracy)
    return {
        **final,
        "val_loss": _finite_or_nan(final.get("val_loss")),
        "best_val_accuracy": max(accs),
        "final_train_loss": _finite_or_nan(history.mean_losses[-1]),
        "steps_done": history.steps_done,
        "windows": len(history.rewards),
        "total_reward": float(sum(history.rewards)),
        "diverged": diverged,
        "steps_to_target": None if target_accuracy is None else (math.nan if reached is None else float(reached)),
        "flops_per_step": flops_per_step,
        "total_flops": flops_per_step * history.steps_done,
        **reward_part_metrics(monitor),
    }


#: The keys :func:`final_metrics` records from the reward-validation part.
REWARD_PART_KEYS = ("reward_val_accuracy", "reward_val_loss")


def reward_part_metrics(monitor: Mapping[str, float] | None) -> dict[str, float]:
    """``reward_val_accuracy`` / ``reward_val_loss`` from a monitor evaluation (NaN where missing)."""
    monitor = monitor or {}
    return {key: _finite_or_nan(monitor.get(key.removeprefix("reward_"))) for key in REWARD_PART_KEYS}
