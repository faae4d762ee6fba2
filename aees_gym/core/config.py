"""Frozen configurations of the core mechanics: reward, context and :class:`ControlConfig`.

:class:`ControlConfig` is everything :class:`~aees_gym.core.control.EpisodeControl` needs (window,
budget, grid, reward, context, action mode, divergence rule), so a user's own training loop builds
one without any task. The env's full configuration, ``aees_gym.tasks.config.EnvConfig``, holds the
same fields flat beside the task's and hands them over through ``EnvConfig.control``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aees_gym.core import checks
from aees_gym.core.checks import choice as _choice
from aees_gym.core.context import validate_features
from aees_gym.core.grid import CandidateGrid
from aees_gym.core.reward import registered_rewards

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
#: The default features when the grid has a momentum axis: ``last_momentum`` follows ``last_noise``.
DEFAULT_FEATURES_WITH_MOMENTUM = (
    *DEFAULT_FEATURES[: DEFAULT_FEATURES.index("last_noise") + 1],
    "last_momentum",
    *DEFAULT_FEATURES[DEFAULT_FEATURES.index("last_noise") + 1 :],
)


def _from_mapping(cls: type, data: Mapping[str, Any], name: str | None = None) -> Any:
    names = {f.name for f in fields(cls)}
    if not isinstance(data, Mapping):
        raise TypeError(f"{name or cls.__name__} must be a mapping (a JSON object) with keys {sorted(names)}, "
                        f"got {type(data).__name__} {str(data)[:60]}.")
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
        _set(
            self,
            name=_registered_reward(checks.text("reward.name", self.name)),
            ema_alpha=checks.real("reward.ema_alpha", self.ema_alpha, low=0.0, high=1.0, low_open=True),
            epsilon=checks.positive("reward.epsilon", self.epsilon),
            instability_lambda=checks.non_negative("reward.instability_lambda", self.instability_lambda),
            clip_min=checks.real("reward.clip_min", self.clip_min),
            clip_max=checks.real("reward.clip_max", self.clip_max),
            smoothing_steps=checks.positive_int("reward.smoothing_steps", self.smoothing_steps),
            divergence_reward=checks.optional(checks.real, "reward.divergence_reward", self.divergence_reward),
        )
        if self.clip_min > self.clip_max:
            raise ValueError(f"reward.clip_min must be <= reward.clip_max, got {self.clip_min} > {self.clip_max}.")

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
        if isinstance(self.features, str) or not isinstance(self.features, Iterable):
            raise TypeError(f"context.features must be a sequence of feature names, got {self.features!r}.")
        _set(
            self,
            trend_window=checks.positive_int("context.trend_window", self.trend_window),
            trend_epsilon=checks.non_negative("context.trend_epsilon", self.trend_epsilon),
            features=tuple(checks.text("context.features[]", f) for f in self.features),
        )
        if not self.features:
            raise ValueError("context.features must name at least one observation feature.")
        try:
            validate_features(self.features)
        except ValueError as exc:
            raise ValueError(f"context.features: {exc}") from None


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
        freeze_threshold: Selective freezing (``None``: off): a parameter tensor whose gradient-norm
            EMA is below this value skips its updates for the next window (see ``EpisodeControl``).
        freeze_beta: Decay of the per-tensor gradient-norm EMA, in [0, 1).
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
    freeze_threshold: float | None = None
    freeze_beta: float = 0.9

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


def _set(config: Any, **values: Any) -> None:
    """Store checked (and normalised) values on a frozen dataclass."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


def _registered_reward(name: str) -> str:
    if name not in registered_rewards():  # KeyError, like every unknown registry name (tasks, agents)
        raise KeyError(
            f"reward.name={name!r} is not a registered reward; choose one of {list(registered_rewards())} "
            "or register yours first with aees_gym.core.reward.register_reward(name, fn)."
        )
    return name


def check_control_fields(config: Any) -> None:
    """Validate (and normalise in place) the control fields of a ControlConfig or an EnvConfig."""
    low, high = checks.pair("relative_lr_bounds", config.relative_lr_bounds)
    _set(
        config,
        total_steps=checks.positive_int("total_steps", config.total_steps),
        window_length=checks.positive_int("window_length", config.window_length),
        action_mode=_choice("action_mode", config.action_mode, ACTION_MODES),
        relative_lr_bounds=(
            float(checks.real("relative_lr_bounds[0] (low)", low, low=0.0, high=1.0, low_open=True)),
            float(checks.real("relative_lr_bounds[1] (high)", high, low=1.0)),
        ),
        # A window whose loss may not exceed the first loss (ratio <= 1) would end nearly every run at once.
        divergence_loss_ratio=checks.optional(
            checks.real, "divergence_loss_ratio", config.divergence_loss_ratio, low=1.0, low_open=True
        ),
        base_lr=checks.positive("base_lr", config.base_lr),
        label_noise=checks.fraction("label_noise", config.label_noise),
    )
    # Nested configs may arrive as plain mappings (from JSON or make() keyword arguments).
    for name, cls in (("grid", CandidateGrid), ("reward", RewardConfig), ("context", ContextConfig)):
        value = getattr(config, name)
        if isinstance(value, Mapping):
            object.__setattr__(config, name, cls.from_dict(value) if cls is CandidateGrid else _from_mapping(cls, value, name))
        elif not isinstance(value, cls):
            raise TypeError(f"{name} must be a {cls.__name__} or a mapping, got {type(value).__name__}.")
    _check_freezing(config)
    if config.grid.has_momentum and config.context.features == DEFAULT_FEATURES:
        # The default observation describes every axis the agent chooses.
        object.__setattr__(config, "context", replace(config.context, features=DEFAULT_FEATURES_WITH_MOMENTUM))


def _check_freezing(config: Any) -> None:
    threshold, beta = getattr(config, "freeze_threshold", None), getattr(config, "freeze_beta", 0.9)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(
                f"freeze_threshold must be None (off) or a finite gradient norm >= 0, got {threshold!r}."
            )
        object.__setattr__(config, "freeze_threshold", float(threshold))
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 <= beta < 1.0:
        raise ValueError(f"freeze_beta (decay of the gradient-norm EMA) must be in [0, 1), got {beta!r}.")
