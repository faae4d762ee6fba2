"""``EnvConfig``: every setting of one environment, frozen, round-tripping through JSON.

A task supplies its own defaults and ``gymnasium.make(id, **overrides)`` replaces any field.
Task-specific settings (model variant, data directory, …) live in the task's own frozen
``options`` dataclass, and their names are accepted as overrides too (:func:`make_config`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aees_gym.core.config import (
    ContextConfig,
    ControlConfig,
    RewardConfig,
    _choice,
    _from_mapping,
    check_control_fields,
)
from aees_gym.core.grid import CandidateGrid

OPTIMIZERS = ("adamw", "adam", "sgd", "schedulefree_adamw", "prodigy")
SCHEDULES = ("none", "cosine", "linear", "warmup_linear", "step", "exponential")
SCHEDULE_INTERVALS = ("step", "epoch")
LABEL_NOISE_KINDS = ("symmetric", "asymmetric")
DEVICES = ("cpu", "cuda", "auto")

# Task name -> its options dataclass, filled by ``register_task`` so that ``from_dict`` can rebuild
# options without importing the task registry (which itself builds EnvConfigs).
_OPTION_CLASSES: dict[str, type] = {}


def register_options_class(task: str, options_cls: type) -> None:
    _OPTION_CLASSES[task] = options_cls


def options_class(task: str) -> type:
    try:
        return _OPTION_CLASSES[task]
    except KeyError:
        raise KeyError(f"Unknown task {task!r}; registered tasks: {sorted(_OPTION_CLASSES)}.") from None


@dataclass(frozen=True)
class EnvConfig:
    """Every setting of one :class:`~aees_gym.envs.env.AEESEnv`.

    Args:
        task: Registered task name (see ``aees_gym.tasks.registered_tasks()``).
        total_steps: Optimizer steps in one training run (one Gymnasium episode).
        window_length: Optimizer steps per env step; the last window may be shorter.
        batch_size: Minibatch size.
        optimizer: ``adamw``, ``adam``, ``sgd``, or from the ``refs`` extra ``schedulefree_adamw``
            (Schedule-Free AdamW) and ``prodigy`` (Prodigy; use ``base_lr=1.0``, its estimate's multiplier).
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
        reward_fraction: Stratified fraction of the validation split kept for rewards (the
            ``heldout`` reward's batch); final metrics use only the rest (0: no reward part).
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
    reward_fraction: float = 0.2
    context: ContextConfig = field(default_factory=ContextConfig)
    eval_every: int = 0
    target_accuracy: float | None = None
    divergence_loss_ratio: float | None = 1e4
    device: str = "cpu"
    options: Any = None

    def __post_init__(self) -> None:
        check_control_fields(self)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise ValueError(f"base_lr must be positive and finite, got {self.base_lr}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}.")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("schedule_interval", self.schedule_interval, SCHEDULE_INTERVALS)
        _choice("label_noise_kind", self.label_noise_kind, LABEL_NOISE_KINDS)
        _choice("device", self.device, DEVICES)
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise}.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}.")
        if not 0.0 <= self.reward_fraction < 1.0:
            raise ValueError(f"reward_fraction must be in [0, 1), got {self.reward_fraction}.")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 windows, got {self.eval_every}.")

    @property
    def control(self) -> ControlConfig:
        """The settings :class:`~aees_gym.core.control.EpisodeControl` runs with."""
        return ControlConfig.of(self)

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
        data = dict(data)
        options = data.pop("options", None)
        if "relative_lr_bounds" in data:
            data["relative_lr_bounds"] = tuple(data["relative_lr_bounds"])
        config = _from_mapping(cls, data)
        if options is not None:
            options = _from_mapping(options_class(config.task), options)
        return config.replace(options=options)

    @classmethod
    def from_json(cls, text: str) -> EnvConfig:
        return cls.from_dict(json.loads(text))

