"""``EnvConfig``: every setting of one environment, frozen, round-tripping through JSON.

A task supplies its own defaults and ``gymnasium.make(id, **overrides)`` replaces any field.
Task-specific settings (model variant, data directory, …) live in the task's own frozen
``options`` dataclass, and their names are accepted as overrides too (:func:`make_config`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aees_gym.core import checks
from aees_gym.core.config import (
    ContextConfig,
    ControlConfig,
    RewardConfig,
    _choice,
    _from_mapping,
    _set,
    check_control_fields,
)
from aees_gym.core.fileio import parse_json_checked
from aees_gym.core.grid import CandidateGrid

OPTIMIZERS = ("adamw", "adam", "sgd", "schedulefree_adamw", "prodigy")
SCHEDULES = ("none", "cosine", "linear", "warmup_linear", "step", "exponential")
SCHEDULE_INTERVALS = ("step", "epoch")
LABEL_NOISE_KINDS = ("symmetric", "asymmetric")
DEVICES = ("cpu", "cuda", "auto")

# Task name -> its options dataclass, filled by ``register_task`` so that ``from_dict`` can rebuild
# options without importing the task registry (which itself builds EnvConfigs).
_OPTION_CLASSES: dict[str, type] = {}


def _from_mapping_data(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"an EnvConfig must be read from a mapping (a JSON object) of its fields, got {type(data).__name__} "
                        f"{str(data)[:60]}; write it with EnvConfig.to_json() / to_dict().")
    return data


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
        freeze_threshold: Selective freezing of parameter tensors with a small gradient-norm EMA
            (``None``: off; see :class:`~aees_gym.core.config.ControlConfig`).
        freeze_beta: Decay of the gradient-norm EMA that freezing reads, in [0, 1).
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
    freeze_threshold: float | None = None
    freeze_beta: float = 0.9
    options: Any = None

    def __post_init__(self) -> None:
        check_control_fields(self)
        _set(
            self,
            task=checks.text("task", self.task),
            batch_size=checks.positive_int("batch_size", self.batch_size),
            optimizer=_choice("optimizer", self.optimizer, OPTIMIZERS),
            weight_decay=checks.non_negative("weight_decay", self.weight_decay),
            momentum=checks.fraction("momentum", self.momentum),
            schedule=_choice("schedule", self.schedule, SCHEDULES),
            schedule_interval=_choice("schedule_interval", self.schedule_interval, SCHEDULE_INTERVALS),
            warmup_fraction=checks.fraction("warmup_fraction", self.warmup_fraction),
            reward_fraction=checks.fraction("reward_fraction", self.reward_fraction),
            # the step schedule divides the run's progress by it
            step_every_fraction=checks.fraction("step_every_fraction", self.step_every_fraction, zero=False, one=True),
            decay_gamma=checks.fraction("decay_gamma", self.decay_gamma, zero=False, one=True),
            label_noise_kind=_choice("label_noise_kind", self.label_noise_kind, LABEL_NOISE_KINDS),
            eval_every=checks.non_negative_int("eval_every", self.eval_every),
            target_accuracy=checks.optional(checks.fraction, "target_accuracy", self.target_accuracy, one=True),
            device=_choice("device", self.device, DEVICES),
        )

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
        """Inverse of :meth:`to_dict`; task options are rebuilt with the task's options class.

        Raises:
            TypeError: If ``data`` (or a nested config) is not a mapping, or a field has the wrong type.
            KeyError: If a key is not a field.
            ValueError: If a value is out of range.
        """
        data = dict(_from_mapping_data(data))
        options = data.pop("options", None)
        if isinstance(data.get("relative_lr_bounds"), list):
            data["relative_lr_bounds"] = tuple(data["relative_lr_bounds"])
        config = _from_mapping(cls, data)
        if options is not None:
            options = _from_mapping(options_class(config.task), options, f"options of task {config.task!r}")
        return config.replace(options=options)

    @classmethod
    def from_json(cls, text: str | bytes) -> EnvConfig:
        """Inverse of :meth:`to_json`: strict JSON (no NaN, nesting capped), then :meth:`from_dict`.

        Raises:
            TypeError: If ``text`` is not a string or its JSON is not an object.
            ValueError: If ``text`` is not strict JSON (:class:`~aees_gym.core.fileio.FileCheckError`).
        """
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, bytes):
            raise TypeError(f"EnvConfig.from_json takes the JSON text (str), got {type(text).__name__}; "
                            "for a dict use EnvConfig.from_dict().")
        return cls.from_dict(parse_json_checked(text, "EnvConfig JSON"))

