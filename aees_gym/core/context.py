"""Pure functions from a run's history to the observation vector and the context buckets.

The trend bucket follows the AEES reference exactly: at the start of a window, take the raw
*last-step* losses of the last ``W`` windows; with fewer than two, the trend is ``stable``; else
``slope = (last - first) / (count - 1)`` and ``slope < -eps`` is ``improving``, ``slope > eps`` is
``worsening``. The phase bucket splits training progress into thirds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: config imports this module to check names when a config is built
    from aees_gym.core.config import ContextConfig, ControlConfig

TREND_BUCKETS = ("improving", "stable", "worsening")
PHASE_BUCKETS = ("early", "middle", "late")
CONTEXT_BUCKETS = tuple(f"{p}_{t}" for p in PHASE_BUCKETS for t in TREND_BUCKETS)
_LOG_CLIP = 10.0


@dataclass
class RunHistory:
    """What the run has produced so far, one entry per closed window."""

    total_steps: int
    steps_done: int = 0
    initial_loss: float | None = None
    first_losses: list[float] = field(default_factory=list)
    last_losses: list[float] = field(default_factory=list)
    mean_losses: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    instabilities: list[float] = field(default_factory=list)
    actions: list[tuple[int, int]] = field(default_factory=list)
    #: Fractional grid position (lr, noise, momentum) of each window's candidate; equals the indices
    #: for grid cells and lies between them for exact candidates.
    positions: list[tuple[float, float, float]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    lr_scale: float = 1.0
    val_loss: float | None = None
    val_accuracy: float | None = None

    @property
    def progress(self) -> float:
        return min(1.0, self.steps_done / self.total_steps)


def trend_slope(last_losses: Sequence[float], window: int) -> float | None:
    """Mean per-window change of the last-step loss over the last ``window`` windows."""
    recent = last_losses[-window:]
    if len(recent) < 2:
        return None
    return (recent[-1] - recent[0]) / (len(recent) - 1)


def trend_bucket(last_losses: Sequence[float], window: int = 3, epsilon: float = 1e-3) -> str:
    slope = trend_slope(last_losses, window)
    if slope is None:
        return "stable"
    if slope < -epsilon:
        return "improving"
    if slope > epsilon:
        return "worsening"
    return "stable"


def phase_bucket(steps_done: int, total_steps: int) -> str:
    progress = steps_done / total_steps
    if progress < 1.0 / 3.0:
        return "early"
    if progress < 2.0 / 3.0:
        return "middle"
    return "late"


def buckets(history: RunHistory, config: ContextConfig) -> dict[str, str]:
    """Trend, phase and combined bucket names for the window about to start."""
    trend = trend_bucket(history.last_losses, config.trend_window, config.trend_epsilon)
    phase = phase_bucket(history.steps_done, history.total_steps)
    return {"trend_bucket": trend, "phase_bucket": phase, "context_bucket": f"{phase}_{trend}"}


def _clip(value: float, low: float, high: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(max(value, low), high)


def _relative_trend(h: RunHistory, c: ControlConfig) -> float:
    slope = trend_slope(h.last_losses, c.context.trend_window)
    if slope is None:
        return 0.0
    reference = abs(h.last_losses[-c.context.trend_window :][0]) + 1e-8
    return _clip(slope / reference, -1.0, 1.0)


def _one_hot(kind: str, name: str) -> Callable[[RunHistory, ControlConfig], float]:
    def feature(h: RunHistory, c: ControlConfig) -> float:
        return float(buckets(h, c.context)[kind] == name)

    return feature


def _axis_position(axis: int) -> Callable[[RunHistory, ControlConfig], float]:
    # -1 before the first window; otherwise the chosen (fractional) index scaled to [0, 1].
    def feature(h: RunHistory, c: ControlConfig) -> float:
        if not h.actions:
            return -1.0
        size = (c.grid.n_lr, c.grid.n_noise, c.grid.n_momentum)[axis]
        if size <= 1:
            return 0.0
        position = h.positions[-1][axis] if h.positions else (h.actions[-1] + (0,))[axis]
        return position / (size - 1)

    return feature


def _loss_level(h: RunHistory, c: ControlConfig) -> float:
    if not h.last_losses or h.initial_loss is None:
        return 0.0
    last, first = h.last_losses[-1], h.initial_loss
    if not (math.isfinite(first) and first > 0) or math.isnan(last):
        return 0.0
    if last <= 0:
        return -_LOG_CLIP
    if math.isinf(last):
        return _LOG_CLIP
    return _clip(math.log(last) - math.log(first), -_LOG_CLIP, _LOG_CLIP)


def _lr_scale(h: RunHistory, c: ControlConfig) -> float:
    low, high = c.relative_lr_bounds
    reach = max(math.log(high), -math.log(low), 1e-12)
    return _clip(math.log(h.lr_scale) / reach, -1.0, 1.0)


def _log1p_last(values_of: Callable[[RunHistory], Sequence[float] | float | None]) -> Callable[[RunHistory, ControlConfig], float]:
    def feature(h: RunHistory, c: ControlConfig) -> float:
        value = values_of(h)
        if isinstance(value, Sequence):
            value = value[-1] if value else None
        return 0.0 if value is None else _clip(math.log1p(max(value, 0.0)), 0.0, _LOG_CLIP)

    return feature


@dataclass(frozen=True)
class Feature:
    """One observation feature: its bounds, a description and how to compute it."""

    low: float
    high: float
    description: str
    compute: Callable[[RunHistory, ControlConfig], float]


def _reward_bounds(c: ControlConfig) -> tuple[float, float]:
    return c.reward.clip_min, c.reward.clip_max


FEATURES: dict[str, Feature] = {
    "progress": Feature(0.0, 1.0, "optimizer steps done / total steps", lambda h, c: h.progress),
    "trend": Feature(-1.0, 1.0, "slope of recent window-end losses relative to their level, clipped", _relative_trend),
    **{
        f"trend_{t}": Feature(0.0, 1.0, f"1 if the trend bucket is {t}", _one_hot("trend_bucket", t))
        for t in TREND_BUCKETS
    },
    **{
        f"phase_{p}": Feature(0.0, 1.0, f"1 if training is in its {p} third", _one_hot("phase_bucket", p))
        for p in PHASE_BUCKETS
    },
    # Bounds of last_reward follow the reward clip; see feature_bounds().
    "last_reward": Feature(-1.0, 1.0, "reward of the previous window (0 before the first)", lambda h, c: h.rewards[-1] if h.rewards else 0.0),
    "last_lr": Feature(-1.0, 1.0, "previous lr index / (n_lr - 1); -1 before the first window", _axis_position(0)),
    "last_noise": Feature(-1.0, 1.0, "previous noise index / (n_noise - 1); -1 before the first window", _axis_position(1)),
    "last_momentum": Feature(-1.0, 1.0, "previous momentum index / (n_momentum - 1); -1 before the first window, 0 without the axis", _axis_position(2)),
    "loss_level": Feature(-_LOG_CLIP, _LOG_CLIP, "ln(last window-end loss / first loss of the run), clipped", _loss_level),
    "instability": Feature(0.0, _LOG_CLIP, "ln(1 + instability of the previous window)", _log1p_last(lambda h: h.instabilities)),
    "lr_scale": Feature(-1.0, 1.0, "ln(cumulative LR scale) / ln(bound) in relative mode (0 otherwise)", _lr_scale),
    "grad_norm": Feature(0.0, _LOG_CLIP, "ln(1 + mean gradient norm of the previous window)", _log1p_last(lambda h: h.grad_norms)),
    "val_loss": Feature(0.0, _LOG_CLIP, "ln(1 + latest validation loss, on the reward-validation part); 0 before the first evaluation", _log1p_last(lambda h: h.val_loss)),
    "val_accuracy": Feature(0.0, 1.0, "latest validation accuracy, on the reward-validation part; 0 before the first evaluation", lambda h, c: h.val_accuracy or 0.0),
    # Run descriptors: constant within a run, they tell a contextual agent which instance it trains.
    "run_log_lr": Feature(-1.0, 1.0, "(log10(base LR) + 3) / 2, clipped: -1 = 1e-5, 0 = 1e-3, 1 = 0.1", lambda h, c: _clip((math.log10(c.base_lr) + 3.0) / 2.0, -1.0, 1.0)),
    "run_label_noise": Feature(0.0, 1.0, "fraction of training labels corrupted", lambda h, c: c.label_noise),
    "run_log_budget": Feature(0.0, 1.0, "log10(total optimizer steps) / 6, clipped", lambda h, c: _clip(math.log10(c.total_steps) / 6.0, 0.0, 1.0)),
}


def validate_features(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"Unknown observation features {unknown}; available features: {list(FEATURES)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"Observation features must not repeat: {list(names)}.")


def feature_bounds(config: ControlConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the observation vector, as float32 arrays."""
    low, high = [], []
    for name in config.context.features:
        f = FEATURES[name]
        lo, hi = _reward_bounds(config) if name == "last_reward" else (f.low, f.high)
        low.append(lo)
        high.append(hi)
    return np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)


def observation(history: RunHistory, config: ControlConfig) -> np.ndarray:
    """The observation vector for the window about to start; always inside :func:`feature_bounds`."""
    low, high = feature_bounds(config)
    raw = np.asarray([FEATURES[n].compute(history, config) for n in config.context.features], dtype=np.float64)
    raw[np.isnan(raw)] = 0.0
    return np.clip(raw, low, high).astype(np.float32)


#: Features measured by evaluations on the reward-validation part (never the scoring part).
VALIDATION_FEATURES = ("val_loss", "val_accuracy")


def uses_validation(config: ControlConfig) -> bool:
    """True when the observation includes a ``val_*`` feature."""
    return any(name in VALIDATION_FEATURES for name in config.context.features)


def uses_grad_norm(config: ControlConfig) -> bool:
    return "grad_norm" in config.context.features


def describe_features(config: ControlConfig) -> list[dict[str, object]]:
    low, high = feature_bounds(config)
    return [
        {"name": n, "low": float(lo), "high": float(hi), "description": FEATURES[n].description}
        for n, lo, hi in zip(config.context.features, low, high, strict=True)
    ]

