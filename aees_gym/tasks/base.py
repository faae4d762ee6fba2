"""Task registry and the pieces every task shares: seeds, optimizer, base schedule, FLOPs.

A task turns an :class:`~aees_gym.core.config.EnvConfig` and a run seed into a :class:`TrainingRun`:
a model, an optimizer, a base LR schedule, a ``train_step`` closure (zero_grad → forward →
backward on the next batch, returning the loss tensor *without* reading it on the host) and an
``evaluate`` closure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from aees_gym.core.context import validate_features
from aees_gym.core.errors import UnknownSettingError
from aees_gym.tasks.config import EnvConfig, register_options_class


@dataclass(frozen=True)
class RunSeeds:
    """Independent seeds for every random stream of one run, derived from the run seed."""

    model: int
    data_order: int
    label_noise: int
    gradient_noise: int
    dropout: int

    @classmethod
    def derive(cls, seed: int) -> RunSeeds:
        words = np.random.SeedSequence(seed).generate_state(5, dtype=np.uint32)
        return cls(*(int(w) for w in words))


@dataclass
class TrainingRun:
    """A built task, ready to train."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_step: Callable[[], torch.Tensor]
    evaluate: Callable[[], dict[str, float]]
    steps_per_epoch: int
    flops_per_step: float
    device: torch.device
    scheduler: Any | None = None
    scheduler_every: int = 1
    description: dict[str, Any] = field(default_factory=dict)
    #: Loss on the fixed reward-validation batch as a device scalar (eval mode, no grad), for the
    #: ``heldout`` reward; ``None`` when the task keeps no reward-validation split.
    reward_eval: Callable[[], torch.Tensor] | None = None
    #: ``evaluate()``'s ``val_accuracy`` / ``val_loss`` measured on the reward-validation part instead
    #: of the scoring part: what an agent may see during a run (the ``val_*`` observation features,
    #: ``info["eval"]``) and what tuning chooses by. ``None`` when the task keeps no such part.
    monitor: Callable[[], dict[str, float]] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Args:
        name: Task name; the env id is ``aees_gym/<name>-v0``.
        description: One line for ``aees-gym list`` and the docs.
        build: ``build(config, seeds) -> TrainingRun``.
        defaults: ``EnvConfig`` field values of this task (budget, window, optimizer, LR, …).
        options_cls: Frozen dataclass of task-specific options (model variant, data dir, …).
        data: Where the data comes from, for the docs.
        model: The model, for the docs.
        requires_files: True when the data must be on disk first (prepared or downloaded by the user);
            such tasks are tested on files the tests write in the real on-disk format.
        smoke_overrides: Small settings (tiny model/budget) under which one run takes seconds on a CPU;
            tests and docs measurements use them.
        requires: Optional modules a run imports, as ``{module: pyproject extra}``, or a function of
            the run's ``EnvConfig`` returning that (when it depends on options); suites check them
            before any run starts.
        metric: The ``evaluate()`` key that ranks runs of this task (reports, leaderboards).
        higher_is_better: Whether a larger ``metric`` is better (``False`` for losses and perplexities).
        check_data: ``check_data(config)`` raises the loader's own ``FileNotFoundError`` when the data
            a run with ``config`` reads is not on disk, without reading it (file checks only); the
            CLI and suites call it before any run starts.
    """

    name: str
    description: str
    build: Callable[[EnvConfig, RunSeeds], TrainingRun]
    defaults: dict[str, Any] = field(default_factory=dict)
    options_cls: type = type(None)
    data: str = ""
    model: str = ""
    requires_files: bool = False
    smoke_overrides: dict[str, Any] = field(default_factory=dict)
    requires: Mapping[str, str] | Callable[[EnvConfig], Mapping[str, str]] = field(default_factory=dict)
    metric: str = "val_accuracy"
    higher_is_better: bool = True
    check_data: Callable[[EnvConfig], None] | None = None

    def requirements(self, config: EnvConfig) -> dict[str, str]:
        """``{module: extra}`` that a run with ``config`` imports (see ``requires``)."""
        return dict(self.requires(config) if callable(self.requires) else self.requires)

    def default_config(self) -> EnvConfig:
        options = None if self.options_cls is type(None) else self.options_cls()
        return EnvConfig(task=self.name, options=options, **self.defaults)


_TASKS: dict[str, TaskSpec] = {}
_LISTENERS: list[Callable[[str], None]] = []


def register_task(spec: TaskSpec, *, overwrite: bool = False) -> TaskSpec:
    """Add a task; also registers its Gymnasium id when ``aees_gym`` registration has run."""
    existing = _TASKS.get(spec.name)
    if existing is not None and existing != spec and not overwrite:
        raise ValueError(f"A different task named {spec.name!r} is already registered; pass overwrite=True.")
    _TASKS[spec.name] = spec
    register_options_class(spec.name, spec.options_cls)
    for listener in _LISTENERS:
        listener(spec.name)
    return spec


def on_register(listener: Callable[[str], None]) -> None:
    """Call ``listener(name)`` for every registered task, now and whenever one is registered later.

    The envs layer registers each task's Gymnasium id this way, so the task registry never imports it.
    """
    _LISTENERS.append(listener)
    for name in list(_TASKS):
        listener(name)


def get_task(name: str) -> TaskSpec:
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"Unknown task {name!r}; registered tasks: {sorted(_TASKS)}.") from None


def registered_tasks() -> dict[str, TaskSpec]:
    return dict(sorted(_TASKS.items()))


def make_config(task: str, config: EnvConfig | None = None, **overrides: Any) -> EnvConfig:
    """The task's defaults (or ``config``) with ``overrides`` applied to env and task-option fields."""
    base = config if config is not None else get_task(task).default_config()
    if base.task != task:
        raise ValueError(f"config.task={base.task!r} does not match the requested task {task!r}.")
    env_fields = {f.name for f in dataclasses.fields(EnvConfig)} - {"task"}
    option_fields = set() if base.options is None else {f.name for f in dataclasses.fields(base.options)}
    unknown = set(overrides) - env_fields - option_fields
    if unknown:
        raise UnknownSettingError(
            f"Unknown setting(s) {sorted(unknown)} for task {task!r}; valid env settings: {sorted(env_fields)}; "
            f"valid task options: {sorted(option_fields)}.",
            sorted(unknown),
        )
    option_changes = {k: v for k, v in overrides.items() if k in option_fields and k not in env_fields}
    env_changes = {k: v for k, v in overrides.items() if k in env_fields}
    options = dataclasses.replace(base.options, **option_changes) if option_changes else base.options
    config = base.replace(**env_changes, options=options)
    validate_features(config.context.features)
    _check_batch_fits(config)
    return config


def _check_batch_fits(config: EnvConfig) -> None:
    """``batch_size`` against the training examples the options already fix (``training_examples()``), at config time.

    Without this a too-large batch fails only when the run is built, at the first ``reset``.
    """
    bound = getattr(config.options, "training_examples", None)
    limit = bound() if callable(bound) else None
    if limit is not None and config.batch_size > limit[1]:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {limit[1]} training examples that {limit[0]} allows; "
                         f"lower batch_size or raise {limit[0]}.")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available; use device='cpu'.")
    return torch.device(name)


@contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block under a private torch RNG state (model init, dropout) without leaking it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


#: Optimizers from optional packages: name -> (module, class, pyproject extra).
_REFERENCE_OPTIMIZERS = {
    "schedulefree_adamw": ("schedulefree", "AdamWScheduleFree", "refs"),
    "prodigy": ("prodigyopt", "Prodigy", "refs"),
}


def optimizer_requirements(name: str) -> dict[str, str]:
    """``{module: extra}`` that optimizer ``name`` imports (empty for the torch.optim ones)."""
    if name not in _REFERENCE_OPTIMIZERS:
        return {}
    module, _, extra = _REFERENCE_OPTIMIZERS[name]
    return {module: extra}


def _optional_optimizer(name: str) -> type:
    module, cls, extra = _REFERENCE_OPTIMIZERS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ImportError(
            f"optimizer={name!r} needs the {module!r} package; install the {extra!r} extra: pip install 'aees-gym[{extra}]'."
        ) from exc


def build_optimizer(params: Any, config: EnvConfig, device: torch.device) -> torch.optim.Optimizer:
    """The run's optimizer at ``config.base_lr``.

    ``schedulefree_adamw`` (Schedule-Free AdamW) is returned in train mode; evaluations go through
    :func:`eval_params`. ``prodigy`` estimates its own step size: its ``base_lr`` is a multiplier of
    that estimate, normally 1.0.
    """
    if config.optimizer == "schedulefree_adamw":
        optimizer = _optional_optimizer("schedulefree_adamw")(params, lr=config.base_lr, weight_decay=config.weight_decay)
        optimizer.train()
        return optimizer
    if config.optimizer == "prodigy":
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its weight-decay mode on construction
            return _optional_optimizer("prodigy")(params, lr=config.base_lr, weight_decay=config.weight_decay)
    fused = {"fused": True} if device.type == "cuda" else {}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.base_lr, weight_decay=config.weight_decay, **fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.base_lr, weight_decay=config.weight_decay, **fused)
    return torch.optim.SGD(params, lr=config.base_lr, momentum=config.momentum, weight_decay=config.weight_decay)


@contextmanager
def eval_params(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Evaluate at the parameters the optimizer means to be evaluated (Schedule-Free's averaged point).

    Optimizers with a train/eval mode (Schedule-Free marks its param groups with ``train_mode``)
    are switched to eval for the block and back after it; other optimizers are left alone. The
    training point is restored bit for bit (its ``train()`` inverts ``eval()`` only up to rounding),
    so evaluating, or a reward that evaluates, never changes the training trajectory.
    """
    switch = bool(optimizer.param_groups) and optimizer.param_groups[0].get("train_mode") is True
    if not switch:
        yield
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = [p.detach().clone() for p in params]
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)


def schedule_factor(name: str, t: int, horizon: int, config: EnvConfig) -> float:
    """Multiplier of the base LR after ``t`` of ``horizon`` schedule steps."""
    frac = min(t / max(horizon, 1), 1.0)
    if name == "none":
        return 1.0
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    if name == "linear":
        return max(1.0 - frac, 0.0)
    if name == "warmup_linear":
        warm = config.warmup_fraction
        return frac / warm if frac < warm else max((1.0 - frac) / (1.0 - warm), 0.0)
    if name == "step":
        return config.decay_gamma ** math.floor(frac / config.step_every_fraction)
    if name == "exponential":
        return config.decay_gamma**frac
    raise ValueError(f"Unknown schedule {name!r}.")


def build_scheduler(optimizer: torch.optim.Optimizer, config: EnvConfig, steps_per_epoch: int) -> tuple[Any | None, int]:
    """The base schedule as a ``LambdaLR`` and how many optimizer steps separate its steps."""
    if config.schedule == "none":
        return None, 1
    every = steps_per_epoch if config.schedule_interval == "epoch" else 1
    horizon = math.ceil(config.total_steps / every)
    name = config.schedule
    # warmup_linear starts at factor 0; keep the first steps moving with a tiny floor.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: max(schedule_factor(name, t, horizon, config), 1e-3 if name == "warmup_linear" else 0.0)
    )
    return scheduler, every


def estimate_forward_flops(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass on ``example`` (a batch of one), counting Linear/Conv/LSTM/Embedding-free matmuls."""
    total = 0.0

    def linear_hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += 2.0 * module.in_features * output.numel()

    def conv_hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2.0 * k * output.numel()

    def lstm_hook(module: nn.LSTM, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        nonlocal total
        seq = inputs[0].shape[1] if module.batch_first else inputs[0].shape[0]
        h, layers = module.hidden_size, module.num_layers
        dirs = 2 if module.bidirectional else 1
        first = 4 * h * (module.input_size + h)
        rest = 4 * h * (h * dirs + h)
        total += 2.0 * seq * dirs * (first + (layers - 1) * rest)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.LSTM):
            hooks.append(m.register_forward_hook(lstm_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    return total
