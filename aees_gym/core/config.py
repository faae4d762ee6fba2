"""Frozen configurations of the core mechanics: reward, context and :class:`ControlConfig`.

:class:`ControlConfig` is everything :class:`~aees_gym.core.control.EpisodeControl` needs (window,
budget, grid, reward, context, action mode, divergence rule), so a user's own training loop builds
one without any task. The env's full configuration, ``aees_gym.tasks.config.EnvConfig``, holds the
same fields flat beside the task's and hands them over through ``EnvConfig.control``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aees_gym.core.grid import CandidateGrid

ACTION_MODES = ("index", "relative")

DEFAULT_FEATURES = (
    "progress",
    "trend",
    "trend_improving",
    "trend_stable",
    "trend_worsening",
    "phase_early",
    "phase_middle",
    "phase_late",
    "last_reward",
    "last_lr",
    "last_noise",
    "loss_level",
    "instability",
)


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(valid)}.")


def _from_mapping(cls: type, data: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise KeyError(f"Unknown {cls.__name__} keys {sorted(unknown)}; valid keys are {sorted(names)}.")
    return cls(**data)


@dataclass(frozen=True)
class RewardConfig:
    """How a window's step losses become a reward (see :mod:`aees_gym.core.reward`).

    Args:
        name: Registered reward function (``aees`` = the reference formula, ``smoothed``, ``heldout``).
        ema_alpha: Weight of the newest loss in the window-local EMA.
        epsilon: Stabiliser inside the logarithms and the instability ratio.
        instability_lambda: Weight of the instability penalty (the reference default is 0).
        clip_min: Lower clip of the reward.
        clip_max: Upper clip of the reward.
        smoothing_steps: Number of leading losses averaged into the ``smoothed`` EMA start.
        divergence_reward: Reward of a window that produced a non-finite loss (default ``clip_min``).
    """

    name: str = "aees"
    ema_alpha: float = 0.1
    epsilon: float = 1e-8
    instability_lambda: float = 0.0
    clip_min: float = -1.0
    clip_max: float = 1.0
    smoothing_steps: int = 5
    divergence_reward: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {self.ema_alpha}.")
        if self.epsilon <= 0.0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}.")
        if self.instability_lambda < 0.0:
            raise ValueError(f"instability_lambda must be non-negative, got {self.instability_lambda}.")
        if not (math.isfinite(self.clip_min) and math.isfinite(self.clip_max)) or self.clip_min > self.clip_max:
            raise ValueError(f"Need finite clip_min <= clip_max, got {self.clip_min}, {self.clip_max}.")
        if self.smoothing_steps < 1:
            raise ValueError(f"smoothing_steps must be >= 1, got {self.smoothing_steps}.")

    @property
    def on_divergence(self) -> float:
        return self.clip_min if self.divergence_reward is None else self.divergence_reward


@dataclass(frozen=True)
class ContextConfig:
    """What the observation contains and how the trend bucket is decided.

    Args:
        trend_window: Number of recent windows whose last-step losses decide the trend (W).
        trend_epsilon: Absolute slope below which the trend counts as stable.
        features: Observation features, a subset of :data:`aees_gym.core.context.FEATURES`, in order.
    """

    trend_window: int = 3
    trend_epsilon: float = 1e-3
    features: tuple[str, ...] = DEFAULT_FEATURES

    def __post_init__(self) -> None:
        if self.trend_window < 1:
            raise ValueError(f"trend_window must be >= 1, got {self.trend_window}.")
        if self.trend_epsilon < 0.0:
            raise ValueError(f"trend_epsilon must be non-negative, got {self.trend_epsilon}.")
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise ValueError("features must name at least one observation feature.")


@dataclass(frozen=True)
class ControlConfig:
    """What :class:`~aees_gym.core.control.EpisodeControl` needs to run windows and score them.

    Args:
        total_steps: Optimizer steps in one training run.
        window_length: Optimizer steps per window; the last window may be shorter.
        action_mode: ``index`` (transient multiplier per window, AEES) or ``relative`` (the chosen
            multiplier scales the LR persistently, clamped to ``relative_lr_bounds``).
        relative_lr_bounds: Lowest and highest cumulative LR scale in ``relative`` mode.
        grid: The candidate grid.
        reward: Reward settings.
        context: Observation settings.
        divergence_loss_ratio: A window whose loss exceeds this multiple of the run's first loss is
            treated like a non-finite loss (``None`` disables).
        base_lr: The run's base learning rate, only for the ``run_log_lr`` descriptor feature.
        label_noise: The run's label-noise rate, only for the ``run_label_noise`` descriptor feature.
    """

    total_steps: int = 1000
    window_length: int = 50
    action_mode: str = "index"
    relative_lr_bounds: tuple[float, float] = (1e-3, 1e3)
    grid: CandidateGrid = field(default_factory=CandidateGrid)
    reward: RewardConfig = field(default_factory=RewardConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    divergence_loss_ratio: float | None = 1e4
    base_lr: float = 1e-3
    label_noise: float = 0.0

    def __post_init__(self) -> None:
        check_control_fields(self)

    @property
    def n_windows(self) -> int:
        return -(-self.total_steps // self.window_length)

    @classmethod
    def of(cls, settings: Any, **overrides: Any) -> ControlConfig:
        """The control part of any object with these fields (e.g. an ``EnvConfig``), with ``overrides``."""
        if isinstance(settings, cls) and not overrides:
            return settings
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f"Unknown ControlConfig setting(s) {sorted(unknown)}; valid: {sorted(f.name for f in fields(cls))}.")
        return cls(**{**values, **overrides})


def check_control_fields(config: Any) -> None:
    """Validate (and normalise in place) the control fields of a ControlConfig or an EnvConfig."""
    for name in ("total_steps", "window_length"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    _choice("action_mode", config.action_mode, ACTION_MODES)
    low, high = config.relative_lr_bounds
    if not 0 < low <= 1.0 <= high:
        raise ValueError(f"relative_lr_bounds must satisfy 0 < low <= 1 <= high, got {config.relative_lr_bounds}.")
    object.__setattr__(config, "relative_lr_bounds", (float(low), float(high)))
    # Nested configs may arrive as plain mappings (from JSON or make() keyword arguments).
    for name, cls in (("grid", CandidateGrid), ("reward", RewardConfig), ("context", ContextConfig)):
        value = getattr(config, name)
        if isinstance(value, Mapping):
            object.__setattr__(config, name, cls.from_dict(value) if cls is CandidateGrid else _from_mapping(cls, value))
        elif not isinstance(value, cls):
            raise TypeError(f"{name} must be a {cls.__name__} or a mapping, got {type(value).__name__}.")
