"""Instance sets: named, versioned collections of training runs with disjoint train and test splits.

An *instance* is one fully specified training run: a task, the env overrides that make it this
instance (base LR, label-noise rate, budget, model options, …) and the run seed. Running an
instance means ``gym.make(instance.env_id, **instance.env_overrides).reset(seed=instance.seed)``;
an env made with ``instance_set=NAME`` reproduces exactly that run when it picks the instance.

Splits hold out whole *configurations* (task + overrides), not only seeds: every configuration of
the test split is absent from the train split and the seed ranges differ, so a policy trained on
``train`` and scored on ``test`` is scored on training runs it has never seen.

Example:
    >>> from aees_gym.envs.instances import get_instance_set
    >>> s = get_instance_set("synthetic-mix-v0")
    >>> task, overrides, seed = s.test[0]
    >>> task
    'Synthetic'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium.utils import seeding

from aees_gym.core import context as ctx
from aees_gym.envs.registration import env_id
from aees_gym.tasks import make_config
from aees_gym.tasks.config import EnvConfig

SPLITS = ("train", "test")
# Constant-per-run observation features (see aees_gym.core.context.FEATURES) for contextual agents.
DESCRIPTOR_FEATURES = ("run_log_lr", "run_label_noise", "run_log_budget")


def format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Instance:
    """One fully specified training run of an instance set.

    Args:
        name: Unique name inside its set, e.g. ``Digits[base_lr=0.0003,label_noise=0.2]#0``.
        task: Registered task name.
        overrides: Sorted ``(setting, value)`` pairs applied on top of the task's defaults.
        seed: The run seed passed to ``reset(seed=...)``.

    Unpacks as ``task, env_overrides, seed = instance``.
    """

    name: str
    task: str
    overrides: tuple[tuple[str, Any], ...]
    seed: int

    @property
    def env_overrides(self) -> dict[str, Any]:
        return dict(self.overrides)

    @property
    def env_id(self) -> str:
        return env_id(self.task)

    @property
    def configuration(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """The instance without its seed; splits never share one."""
        return self.task, self.overrides

    def __iter__(self) -> Iterator[Any]:
        return iter((self.task, self.env_overrides, self.seed))

    def config(self, **extra: Any) -> EnvConfig:
        """The resolved :class:`EnvConfig` of this instance, with ``extra`` settings (which must not collide)."""
        clash = sorted(set(extra) & set(self.env_overrides))
        if clash:
            raise ValueError(
                f"Setting(s) {clash} define instance {self.name!r} and cannot be overridden; "
                "drop them from the env arguments or define a new instance set."
            )
        return make_config(self.task, None, **extra, **self.env_overrides)

    def rng(self) -> np.random.Generator:
        """The generator ``reset(seed=self.seed)`` installs, so the run seed is derived the same way."""
        return seeding.np_random(self.seed)[0]


def make_instance(task: str, overrides: Mapping[str, Any], seed: int) -> Instance:
    pairs = tuple(sorted(overrides.items()))
    settings = ",".join(f"{k}={format_value(v)}" for k, v in pairs)
    return Instance(f"{task}[{settings}]#{seed}" if settings else f"{task}#{seed}", task, pairs, int(seed))


@dataclass(frozen=True)
class InstanceSet:
    """A named, versioned set of instances with disjoint ``train`` and ``test`` splits.

    Args:
        name: Versioned name, e.g. ``digits-mix-v0``; a changed definition gets a new version.
        description: One line for the docs.
        train: Instances an agent may learn on.
        test: Held-out instances to score it on.
    """

    name: str
    description: str
    train: tuple[Instance, ...]
    test: tuple[Instance, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", tuple(self.train))
        object.__setattr__(self, "test", tuple(self.test))
        if not self.train or not self.test:
            raise ValueError(f"Instance set {self.name!r} needs at least one train and one test instance.")
        names = [i.name for i in self.train + self.test]
        if len(set(names)) != len(names):
            raise ValueError(f"Instance names in {self.name!r} must be unique.")
        shared = {i.configuration for i in self.train} & {i.configuration for i in self.test}
        if shared:
            raise ValueError(f"Instance set {self.name!r}: train and test share configurations {sorted(shared)}.")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(sorted({i.task for i in self.train + self.test}))

    def split(self, name: str) -> tuple[Instance, ...]:
        if name not in SPLITS:
            raise ValueError(f"split={name!r} is not valid; choose one of {list(SPLITS)}.")
        return self.train if name == "train" else self.test

    def index(self, split: str, key: int | str) -> int:
        """Position of an instance in ``split``, given its index or its name."""
        instances = self.split(split)
        if isinstance(key, bool) or not isinstance(key, int | np.integer | str):
            raise ValueError(f"An instance is chosen by index or name, got {key!r}.")
        if isinstance(key, str):
            for i, inst in enumerate(instances):
                if inst.name == key:
                    return i
            raise KeyError(f"No instance {key!r} in {self.name}/{split}; names: {[i.name for i in instances]}.")
        if not 0 <= int(key) < len(instances):
            raise ValueError(f"Instance index {key} is out of range; {self.name}/{split} has {len(instances)} instances.")
        return int(key)


def factorial_set(
    name: str,
    description: str,
    configurations: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    test_fraction: float,
    train_seeds: Sequence[int],
    test_seeds: Sequence[int],
    split_seed: int = 0,
) -> InstanceSet:
    """Hold out ``test_fraction`` of each task's configurations (seeded), then cross every configuration with its split's seeds."""
    if set(train_seeds) & set(test_seeds):
        raise ValueError("train_seeds and test_seeds must be disjoint.")
    rng = np.random.default_rng(split_seed)
    train, test = [], []
    for task in sorted({t for t, _ in configurations}):
        group = [c for c in configurations if c[0] == task]
        order = rng.permutation(len(group))
        n_test = max(1, round(len(group) * test_fraction)) if len(group) > 1 else 0
        test += [group[i] for i in sorted(order[:n_test])]
        train += [group[i] for i in sorted(order[n_test:])]
    return InstanceSet(
        name,
        description,
        tuple(make_instance(t, o, s) for t, o in train for s in train_seeds),
        tuple(make_instance(t, o, s) for t, o in test for s in test_seeds),
    )


_SETS: dict[str, InstanceSet] = {}


def check_new_name(registry: Mapping[str, Any], item: Any, kind: str, overwrite: bool) -> None:
    """Refuse to register ``item`` (with a ``name``) over a *different* one of the same name, unless ``overwrite``.

    Registering an equal object again is allowed, so a module imported twice does not fail.
    """
    existing = registry.get(item.name)
    if existing is not None and existing != item and not overwrite:
        raise ValueError(f"A different {kind} named {item.name!r} exists; use a new version or overwrite=True.")


def register_instance_set(instance_set: InstanceSet, *, overwrite: bool = False) -> InstanceSet:
    """Make ``instance_set`` available to :func:`get_instance_set` and ``gym.make(..., instance_set=NAME)``."""
    check_new_name(_SETS, instance_set, "instance set", overwrite)
    _SETS[instance_set.name] = instance_set
    return instance_set


def get_instance_set(name: str) -> InstanceSet:
    try:
        return _SETS[name]
    except KeyError:
        others = "".join(f"; {source.kind}: {source.names()}" for source in _SOURCES)
        raise KeyError(f"Unknown instance set {name!r}; registered sets: {sorted(_SETS)}{others}.") from None


class InstanceSource(Protocol):
    """Named instances that are not an enumerated set (the families of :mod:`aees_gym.envs.families`)."""

    kind: str

    def names(self) -> list[str]: ...

    def cycle(self, name: str, task: str, split: str, resolve: Callable[[Instance], EnvConfig]) -> Any | None:
        """The env's instance source for ``name`` (``None`` when ``name`` is not this source's)."""


_SOURCES: list[InstanceSource] = []


def register_instance_source(source: InstanceSource) -> None:
    """Let ``gym.make(..., instance_set=NAME)`` and error messages know ``source``'s names too."""
    if source not in _SOURCES:
        _SOURCES.append(source)


#: Marks the names of sets derived at run time from a registered one (e.g. one architecture's share
#: of a set, for a batched env); listings and the docs leave them out.
DERIVED_MARK = "@"


def derived_set_name(parent: str, part: str) -> str:
    return f"{parent}{DERIVED_MARK}{part}"


def registered_instance_sets(*, derived: bool = False) -> dict[str, InstanceSet]:
    """Registered sets by name; with ``derived=True`` also the sets derived at run time."""
    return dict(sorted((k, v) for k, v in _SETS.items() if derived or DERIVED_MARK not in k))


# ---------------------------------------------------------------------- env support
def with_descriptors(config: EnvConfig) -> EnvConfig:
    """``config`` with the run-descriptor features appended to its observation (once)."""
    features = config.context.features
    extra = tuple(f for f in DESCRIPTOR_FEATURES if f not in features)
    return config.replace(context=dataclasses.replace(config.context, features=features + extra))


class InstanceCycle:
    """The instances of one split with their resolved configs, visited in a seeded shuffled order."""

    def __init__(self, instance_set: InstanceSet, split: str, configs: Sequence[EnvConfig]) -> None:
        self.instance_set = instance_set
        self.split = split
        self.instances = instance_set.split(split)
        self.configs = tuple(configs)
        self._order: list[int] = []

    def copy(self) -> InstanceCycle:
        """The same instances in a fresh order (one per sub-env of a vector env)."""
        return InstanceCycle(self.instance_set, self.split, self.configs)

    def select(self, options: Mapping[str, Any] | None, rng: np.random.Generator, *, restart: bool) -> tuple[Instance, EnvConfig]:
        """The instance named by ``options["instance"]``, else the next one of the shuffled order.

        ``restart`` (a seeded reset) starts a fresh order drawn from ``rng``; an explicit choice
        leaves the order where it was.
        """
        options = dict(options or {})
        unknown = set(options) - {"instance"}
        if unknown:
            raise ValueError(f"Unknown reset options {sorted(unknown)}; the only option is 'instance' (index or name).")
        if restart:
            self._order = []
        if "instance" in options:
            index = self.instance_set.index(self.split, options["instance"])
        else:
            if not self._order:
                self._order = rng.permutation(len(self.instances)).tolist()
            index = self._order.pop(0)
        return self.instances[index], self.configs[index]


def _check_same_spaces(configs: Sequence[EnvConfig], set_name: str) -> None:
    first = configs[0]
    low, high = ctx.feature_bounds(first)
    for c in configs[1:]:
        lo, hi = ctx.feature_bounds(c)
        if c.grid != first.grid or c.context.features != first.context.features or not (
            np.array_equal(lo, low) and np.array_equal(hi, high)
        ):
            raise ValueError(
                f"Instances of {set_name!r} must share the action grid and observation features/bounds; "
                f"{c.task} differs from {first.task}."
            )


def resolve_env(
    task: str,
    config: EnvConfig | None,
    overrides: Mapping[str, Any],
    *,
    instance_set: str | None,
    split: str,
    descriptors: bool,
) -> tuple[EnvConfig, InstanceCycle | None]:
    """The env's initial config and, with ``instance_set``, its instance cycle (used by ``AEESEnv.__init__``)."""

    finish = with_descriptors if descriptors else (lambda c: c)
    if instance_set is None:
        return finish(make_config(task, config, **overrides)), None
    if config is not None:
        raise ValueError("instance_set= cannot be combined with config=; pass settings as keyword overrides.")
    for source in _SOURCES:
        cycle = source.cycle(instance_set, task, split, lambda inst: finish(inst.config(**overrides)))
        if cycle is not None:
            _check_same_spaces(list(cycle.configs), instance_set)
            return cycle.configs[0], cycle
    chosen = get_instance_set(instance_set)
    if task not in chosen.tasks:
        raise ValueError(
            f"Instance set {instance_set!r} holds tasks {list(chosen.tasks)}; make it from one of their ids, "
            f"e.g. gym.make('aees_gym/{chosen.tasks[0]}-v0', instance_set={instance_set!r})."
        )
    configs = [finish(inst.config(**overrides)) for inst in chosen.split(split)]
    _check_same_spaces(configs, instance_set)
    return configs[0], InstanceCycle(chosen, split, configs)


# ---------------------------------------------------------------------- built-in sets
def _digits_mix() -> InstanceSet:
    configurations: list[tuple[str, dict[str, Any]]] = []
    for model in ("Digits", "DigitsCNN"):
        for noise in (0.0, 0.2, 0.4):
            for lr in (3e-4, 1e-3, 3e-3):
                # 40%-noise MLP runs are exactly the registered DigitsNoisy task.
                task = "DigitsNoisy" if (model, noise) == ("Digits", 0.4) else model
                changes: dict[str, Any] = {} if math.isclose(lr, 1e-3) else {"base_lr": lr}
                if noise and task != "DigitsNoisy":
                    changes["label_noise"] = noise
                configurations.append((task, changes))
    return factorial_set(
        "digits-mix-v0",
        "MLP and CNN on the 8×8 digits × label noise {0, 0.2, 0.4} × base LR {3e-4, 1e-3, 3e-3}; "
        "a third of each model's configurations held out for test",
        configurations,
        test_fraction=1 / 3,
        train_seeds=(0, 1),
        test_seeds=(1000, 1001),
    )


def _synthetic_mix() -> InstanceSet:
    configurations = [
        ("Synthetic", {"label_noise": noise, "base_lr": lr, "total_steps": steps, "window_length": 20})
        for noise in (0.0, 0.3)
        for lr in (1e-3, 1e-2)
        for steps in (40, 60)
    ]
    return factorial_set(
        "synthetic-mix-v0",
        "Tiny synthetic runs (2-3 windows) × label noise {0, 0.3} × base LR {1e-3, 1e-2} × budget {40, 60}; for tests",
        configurations,
        test_fraction=0.25,
        train_seeds=(0,),
        test_seeds=(100,),
    )


def _digits_budget() -> InstanceSet:
    configurations = [
        ("Digits", {"total_steps": steps, "window_length": 25, "label_noise": noise, "base_lr": lr})
        for steps in (250, 500, 1000)
        for noise in (0.0, 0.2, 0.4)
        for lr in (3e-4, 1e-3, 3e-3)
    ]
    return factorial_set(
        "digits-budget-v0",
        "MLP on the 8×8 digits × budget {250, 500, 1000 steps} (10-40 windows of 25) × label noise {0, 0.2, 0.4} × "
        "base LR {3e-4, 1e-3, 3e-3}; a third of the configurations held out for test",
        configurations,
        test_fraction=1 / 3,
        train_seeds=(0, 1),
        test_seeds=(1000, 1001),
        split_seed=1,
    )


register_instance_set(_digits_mix())
register_instance_set(_synthetic_mix())
register_instance_set(_digits_budget())
