"""Per-run window bookkeeping, shared by EpisodeControl (one run) and batched envs (N runs at once).

Once a window's step losses are on the host, scoring and recording it is the same arithmetic for
every run: decide divergence, compute the reward, append to the run's history, and describe the
window in the step ``info``. These pure functions are that arithmetic, written once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from aees_gym.core import context as ctx
from aees_gym.core.config import ControlConfig
from aees_gym.core.grid import Candidate
from aees_gym.core.reward import RewardTerms, WindowSignals, compute_reward, reward_error


@dataclass(frozen=True)
class WindowScore:
    """The reward of a closed window (``terms`` is None when it diverged).

    ``error`` says why the reward function's result was unusable (non-finite or not a float); such a
    window counts as diverged, so the run ends flagged instead of feeding a bad reward to the agent.
    """

    reward: float
    terms: RewardTerms | None
    diverged: bool
    error: str | None = None


@dataclass(frozen=True)
class WindowPlan:
    """What an action asks of the next window: its grid cell, the candidate, and the LR multiplier to run."""

    action_id: int
    candidate: Candidate
    exact: bool
    lr_multiplier: float


def plan_window(history: ctx.RunHistory, config: ControlConfig, action: Any) -> WindowPlan:
    """Decode ``action`` (a mode id or an exact :class:`Candidate`) and apply the action mode.

    In ``relative`` mode the chosen multiplier scales the run's LR scale persistently (clamped to
    ``relative_lr_bounds``, updated in ``history``); in ``index`` mode it applies to this window only.
    """
    grid = config.grid
    if isinstance(action, Candidate):
        candidate = grid.check_candidate(action)
        action_id = grid.nearest(candidate.lr_multiplier, candidate.noise_std, candidate.momentum)
    else:
        action_id = grid.validate_action(action)
        candidate = grid.candidate(action_id)
    multiplier = candidate.lr_multiplier
    if config.action_mode == "relative":
        low, high = config.relative_lr_bounds
        history.lr_scale = min(max(history.lr_scale * multiplier, low), high)
        multiplier = history.lr_scale
    return WindowPlan(action_id, candidate, isinstance(action, Candidate), multiplier)


def is_divergent(losses: Sequence[float], initial_loss: float | None, ratio: float | None) -> bool:
    """A non-finite loss, or one above ``ratio`` × the run's first loss (``ratio=None`` disables that)."""
    if not all(math.isfinite(x) for x in losses):
        return True
    return ratio is not None and initial_loss is not None and initial_loss > 0 and max(losses) > ratio * initial_loss


def record_window(
    history: ctx.RunHistory,
    losses: Sequence[float],
    config: ControlConfig,
    *,
    lr_index: int,
    noise_index: int,
    grad_norm: float | None,
    wall_time: float,
    momentum_index: int = 0,
    positions: tuple[float, float, float] | None = None,
    signals: WindowSignals | None = None,
) -> WindowScore:
    """Score a window's step losses (and held-out ``signals``, when measured) and append it to ``history``.

    ``positions`` is the candidate's fractional place on each grid axis (exact candidates); by
    default the cell indices themselves.
    """
    if history.initial_loss is None:
        history.initial_loss = losses[0]
    diverged = is_divergent(losses, history.initial_loss, config.divergence_loss_ratio)
    diverged = diverged or (signals is not None and not signals.is_finite())
    terms = None if diverged else compute_reward(losses, config.reward, signals)
    error = None if terms is None else reward_error(terms, config.reward.name)
    if error is not None:
        diverged, terms = True, None
    reward = config.reward.on_divergence if terms is None else terms.reward
    history.first_losses.append(losses[0])
    history.last_losses.append(losses[-1])
    history.mean_losses.append(sum(losses) / len(losses))
    history.rewards.append(reward)
    history.instabilities.append(terms.instability if terms else 0.0)
    history.actions.append((lr_index, noise_index))
    history.positions.append(positions or (float(lr_index), float(noise_index), float(momentum_index)))
    if grad_norm is not None:
        history.grad_norms.append(grad_norm)
    if signals is not None:
        if history.heldout_initial is None:
            history.heldout_initial = signals.heldout_start
        history.heldout_losses.append(signals.heldout_end)
    # Timing stays out of `info`: Gymnasium's checker requires same-seed infos to be identical.
    history.wall_times.append(wall_time)
    return WindowScore(float(reward), terms, diverged, error)


def record_evaluation(history: ctx.RunHistory, eval_curve: list[dict[str, float]], metrics: Mapping[str, float]) -> None:
    """Record a validation result: the observation's ``val_*`` features and the run's evaluation curve."""
    entry = {**metrics, "step": history.steps_done}
    val_loss = entry.get("val_loss")
    history.val_loss = val_loss if val_loss is not None and math.isfinite(val_loss) else None
    history.val_accuracy = entry.get("val_accuracy")
    eval_curve.append(entry)


#: ``info["momentum"]`` / ``info["grad_norm"]`` when the run has no momentum setting / did not measure it.
NOT_APPLICABLE = -1.0
#: ``reward_terms`` of a window without terms (diverged, reward error) and before the first window:
#: the same keys every time, so vector wrappers can stack the field.
_NO_TERMS = {f.name: math.nan for f in fields(RewardTerms)}


def start_info(history: ctx.RunHistory, config: ControlConfig) -> dict[str, Any]:
    """Buckets and progress for the window about to start (what ``reset`` publishes)."""
    return {
        **ctx.buckets(history, config.context),
        "candidate_grid": config.grid,
        "trend_buckets": ctx.TREND_BUCKETS,
        "phase_buckets": ctx.PHASE_BUCKETS,
        "context_buckets": ctx.CONTEXT_BUCKETS,
        "action_mode": config.action_mode,
        "steps_done": history.steps_done,
        "steps_total": config.total_steps,
        "window_index": len(history.rewards),
        "lr_scale": history.lr_scale,
        # The step-only text fields, empty before any window: vector wrappers (TorchRL) type every
        # info field from the reset info, and a text field that appears only later breaks them.
        "candidate_name": "",
        "reward_error": "",
        "reward_terms": dict.fromkeys(_NO_TERMS, 0.0),  # before any window (0, not NaN: infos are compared)
    }


def window_info(
    history: ctx.RunHistory,
    config: ControlConfig,
    score: WindowScore,
    losses: Sequence[float],
    *,
    action: int,
    lr_multiplier: float,
    noise_std: float,
    effective_lr: float,
    grad_norm: float | None,
    momentum: float | None = None,
    frozen_fraction: float = 0.0,
    candidate_name: str | None = None,
) -> dict[str, Any]:
    """The step ``info`` of a window just recorded in ``history``.

    ``action`` is the mode id of the grid cell (the nearest one for an exact candidate, whose own
    name is ``candidate_name``); ``lr_multiplier``, ``noise_std`` and ``momentum`` are what ran.
    """
    lr_index, noise_index = history.actions[-1]
    terms, n = score.terms, len(losses)
    return {
        **start_info(history, config),
        "action": action,
        "lr_index": lr_index,
        "noise_index": noise_index,
        # Never None (vector wrappers such as TorchRL stack infos and cannot type a field that is None
        # in every copy) and never NaN (Gymnasium's checker compares infos): -1 means "no momentum
        # axis / setting" or "not measured", "" means "no error".
        "momentum_index": config.grid.indices(action)[2] if config.grid.has_momentum else -1,
        "candidate_name": config.grid.name(action) if candidate_name is None else candidate_name,
        "lr_multiplier": lr_multiplier,
        "noise_std": noise_std,
        "momentum": NOT_APPLICABLE if momentum is None else momentum,
        "frozen_fraction": frozen_fraction,
        "effective_lr": effective_lr,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_mean": sum(losses) / n,
        "window_steps": n,
        "ema_start": terms.ema_start if terms else math.nan,
        "ema_end": terms.ema_end if terms else math.nan,
        "reward_terms": terms.as_dict() if terms else {**_NO_TERMS, "reward": score.reward},
        "step_losses": list(losses),
        "grad_norm": NOT_APPLICABLE if grad_norm is None else grad_norm,
        "diverged": score.diverged,
        "reward_error": score.error or "",
        "window_index": len(history.rewards) - 1,
    }


#: ``info_format`` values: ``full`` (every field above) or ``numeric`` (:func:`numeric_info`).
INFO_FORMATS = ("full", "numeric")
#: Per-run fields that the full layout publishes at reset only; the numeric layout repeats them.
RUN_INFO_FIELDS = ("run_seed", "flops_per_step", "steps_per_epoch")
#: The ``info_format="numeric"`` layout: every key with its value before the first window (reset).
#: Flat, one number type per key, the same keys at reset and at every step: what TorchRL's info
#: reader needs (it types each key from one step and cannot read text, objects, nested dicts or the
#: variable-length ``step_losses``). ``reward_terms`` is flattened to ``reward_terms_<term>``; ``action``
#: (the grid cell run) is ``mode_id``, since TorchRL keeps the policy's action under that key.
NUMERIC_INFO: dict[str, bool | int | float] = {
    "steps_done": 0, "steps_total": 0, "window_index": 0, "lr_scale": 1.0,
    "run_seed": 0, "flops_per_step": 0.0, "steps_per_epoch": 0,
    "mode_id": -1, "lr_index": -1, "noise_index": -1, "momentum_index": -1,
    "lr_multiplier": NOT_APPLICABLE, "noise_std": NOT_APPLICABLE, "momentum": NOT_APPLICABLE,
    "frozen_fraction": 0.0, "effective_lr": NOT_APPLICABLE,
    "loss_first": NOT_APPLICABLE, "loss_last": NOT_APPLICABLE, "loss_mean": NOT_APPLICABLE, "window_steps": 0,
    "ema_start": NOT_APPLICABLE, "ema_end": NOT_APPLICABLE, "grad_norm": NOT_APPLICABLE, "diverged": False,
    **{f"reward_terms_{name}": 0.0 for name in _NO_TERMS},
}


def check_info_format(info_format: object) -> str:
    """``info_format`` as given, or a ValueError naming the choices."""
    if info_format not in INFO_FORMATS:
        raise ValueError(
            f"info_format={info_format!r} is not valid; choose 'full' (every info field) or 'numeric' "
            "(flat numbers only, the same keys at reset and every step: for TorchRL's GymEnv(id, num_envs=N))."
        )
    return str(info_format)


def numeric_info(info: Mapping[str, Any], run_info: Mapping[str, Any]) -> dict[str, bool | int | float]:
    """The numeric layout of a full reset or step ``info``; ``run_info`` is the run's reset info.

    A key the info lacks (a window field at reset) keeps its :data:`NUMERIC_INFO` value.
    """
    flat = {
        **{k: run_info[k] for k in RUN_INFO_FIELDS if k in run_info},
        **info,
        "mode_id": info.get("action", -1),
        **{f"reward_terms_{k}": v for k, v in info.get("reward_terms", {}).items()},
    }
    return {k: type(default)(flat.get(k, default)) for k, default in NUMERIC_INFO.items()}
