"""Frozen configuration dataclasses that round-trip through JSON.

``EnvConfig`` holds every setting of one environment; a task supplies its own defaults and
``gymnasium.make(id, **overrides)`` replaces any field. Task-specific settings (model variant,
data directory, …) live in the task's own frozen ``options`` dataclass, and their names are accepted
as overrides too.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aees_gym.grid import CandidateGrid

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("none", "cosine", "linear", "warmup_linear", "step", "exponential")
SCHEDULE_INTERVALS = ("step", "epoch")
ACTION_MODES = ("index", "relative")
LABEL_NOISE_KINDS = ("symmetric", "asymmetric")
DEVICES = ("cpu", "cuda", "auto")

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
    """How a window's step losses become a reward (see :mod:`aees_gym.reward`).

    Args:
        name: Registered reward function (``aees`` = the reference formula, ``smoothed``).
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
        features: Observation features, a subset of :data:`aees_gym.context.FEATURES`, in order.
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
class EnvConfig:
    """Every setting of one :class:`~aees_gym.env.AEESEnv`.

    Args:
        task: Registered task name (see ``aees_gym.tasks.registered_tasks()``).
        total_steps: Optimizer steps in one training run (one Gymnasium episode).
        window_length: Optimizer steps per env step; the last window may be shorter.
        batch_size: Minibatch size.
        optimizer: ``adamw``, ``adam`` or ``sgd``.
        base_lr: Base learning rate before the agent's multiplier.
        weight_decay: Weight decay of the optimizer.
        momentum: SGD momentum (ignored by Adam variants).
        schedule: Base LR schedule under the multiplier.
        schedule_interval: Step the schedule per optimizer ``step`` or per ``epoch``.
        warmup_fraction: Fraction of the run used for warm-up by ``warmup_linear``.
        step_every_fraction: ``step`` schedule: decay every this fraction of the run.
        decay_gamma: Decay factor of the ``step`` schedule; ``exponential`` decays to this factor at the end.
        label_noise: Fraction of training labels corrupted (0 disables).
        label_noise_kind: ``symmetric`` or ``asymmetric`` (tasks that define class pairs).
        action_mode: ``index`` (transient multiplier per window, AEES) or ``relative`` (the chosen
            multiplier scales the LR persistently, the classic RL-for-LR-control formulation).
        relative_lr_bounds: Lowest and highest cumulative LR scale in ``relative`` mode.
        grid: The candidate grid.
        reward: Reward settings.
        context: Observation settings.
        eval_every: Evaluate on validation data every this many windows (0: only at the end).
        target_accuracy: Validation accuracy whose first reach is reported as steps-to-target.
        divergence_loss_ratio: A window whose loss exceeds this multiple of the run's first loss is
            treated like a non-finite loss (``None`` disables).
        device: ``cpu``, ``cuda`` or ``auto``.
        options: The task's own options dataclass (``None``: the task's defaults).
    """

    task: str = "Digits"
    total_steps: int = 1000
    window_length: int = 50
    batch_size: int = 64
    optimizer: str = "adamw"
    base_lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "none"
    schedule_interval: str = "step"
    warmup_fraction: float = 0.1
    step_every_fraction: float = 0.3
    decay_gamma: float = 0.1
    label_noise: float = 0.0
    label_noise_kind: str = "symmetric"
    action_mode: str = "index"
    relative_lr_bounds: tuple[float, float] = (1e-3, 1e3)
    grid: CandidateGrid = field(default_factory=CandidateGrid)
    reward: RewardConfig = field(default_factory=RewardConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    eval_every: int = 0
    target_accuracy: float | None = None
    divergence_loss_ratio: float | None = 1e4
    device: str = "cpu"
    options: Any = None

    def __post_init__(self) -> None:
        for name in ("total_steps", "window_length", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise ValueError(f"base_lr must be positive and finite, got {self.base_lr}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}.")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("schedule_interval", self.schedule_interval, SCHEDULE_INTERVALS)
        _choice("action_mode", self.action_mode, ACTION_MODES)
        _choice("label_noise_kind", self.label_noise_kind, LABEL_NOISE_KINDS)
        _choice("device", self.device, DEVICES)
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise}.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}.")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 windows, got {self.eval_every}.")
        low, high = self.relative_lr_bounds
        if not 0 < low <= 1.0 <= high:
            raise ValueError(f"relative_lr_bounds must satisfy 0 < low <= 1 <= high, got {self.relative_lr_bounds}.")
        # Nested configs may arrive as plain mappings (from JSON or make() keyword arguments).
        for name, cls in (("grid", CandidateGrid), ("reward", RewardConfig), ("context", ContextConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, cls.from_dict(value) if cls is CandidateGrid else _from_mapping(cls, value))
            elif not isinstance(value, cls):
                raise TypeError(f"{name} must be a {cls.__name__} or a mapping, got {type(value).__name__}.")
        object.__setattr__(self, "relative_lr_bounds", (float(low), float(high)))

    @property
    def n_windows(self) -> int:
        return -(-self.total_steps // self.window_length)

    def replace(self, **changes: Any) -> EnvConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["grid"] = self.grid.to_dict()
        data["reward"] = dataclasses.asdict(self.reward)
        data["context"] = {**dataclasses.asdict(self.context), "features": list(self.context.features)}
        data["relative_lr_bounds"] = list(self.relative_lr_bounds)
        data["options"] = None if self.options is None else dataclasses.asdict(self.options)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvConfig:
        """Inverse of :meth:`to_dict`; task options are rebuilt with the task's options class."""
        from aees_gym.tasks import get_task  # tasks import config, so resolve lazily

        data = dict(data)
        options = data.pop("options", None)
        if "relative_lr_bounds" in data:
            data["relative_lr_bounds"] = tuple(data["relative_lr_bounds"])
        config = _from_mapping(cls, data)
        if options is not None:
            options = _from_mapping(get_task(config.task).options_cls, options)
        return config.replace(options=options)

    @classmethod
    def from_json(cls, text: str) -> EnvConfig:
        return cls.from_dict(json.loads(text))
