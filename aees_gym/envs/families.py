"""Instance families: named, versioned, seeded samplers over a configuration space of training runs.

An enumerated instance set (:mod:`aees_gym.envs.instances`, the ``-v0`` sets) lists a few dozen
runs, few enough for a policy to memorise. A *family* instead draws runs from wide distributions:

* **architecture** (what one batched env must share): data set, MLP width and depth, batch size
  and optimizer, drawn uniformly from the family's menu;
* **base LR**, log-uniform over a ×``lr_span`` range (default ×1000) centred on the optimizer's
  usual LR (:data:`CENTRE_LR`), so some runs are badly mis-set;
* **label noise**, uniform over ``label_noise`` (default 0-0.5);
* **budget**, a whole number of windows uniform over ``windows`` (default 10-200).

Splits:

* ``train``: the training distribution. An env made with ``instance_set=FAMILY, split="train"``
  draws a fresh instance at every ``reset()`` from its own seeded generator, as many as wanted.
* ``tuning``: ``n_tuning`` fixed instances on which references (a tuned base LR, a bandit's
  ``c``) are chosen; never scored.
* ``test``: ``n_test`` fixed instances that score agents.

**Guarantee** (checked by :meth:`InstanceFamily.draw` and the tests): ``test`` and ``tuning``
come from their own seed streams (``[seed, 1]`` and ``[seed, 2]``); no two instances of them
share a configuration (everything but the run seed); a ``train`` draw whose configuration equals
a ``tuning`` or ``test`` one is rejected and drawn again; and run seeds come from disjoint ranges
(:data:`SEED_RANGES`). So no training run is a held-out configuration or replays a held-out seed.

An **out-of-distribution** family (``ood_of`` names its parent) has only ``tuning`` and ``test``
splits, drawn from ranges that leave the parent's on the axis it names (``ood_axis``).

Example:
    >>> from aees_gym.envs.families import get_family
    >>> fam = get_family("digits-mlp-v1")
    >>> len(fam.test), fam.test[0].task, fam.test[0].name
    (64, 'MLP', 'digits-mlp-v1#test000')

Instance names are ``<family>#<split><k>``: what precedes ``#`` is the family. Every test instance
is its own sampled configuration, run once, so the leaderboard normalises each one on its own and
bootstraps the instances as one stratum of independent draws
(:class:`aees_gym.reporting.leaderboard.Grouping`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aees_gym.envs.instances import (
    DERIVED_MARK,
    Instance,
    InstanceCycle,
    InstanceSet,
    check_new_name,
    get_instance_set,
    make_instance,
    register_instance_source,
)
from aees_gym.envs.transfer import TransferSet, get_transfer_set, is_transfer_set

FAMILY_SPLITS = ("train", "tuning", "test")
#: Run seeds of each split come from its own range (half-open), so splits never share a run seed.
SEED_RANGES = {"train": (0, 2**29), "tuning": (2**29, 2**30), "test": (2**30, 2**31 - 1)}
#: Centre of the base-LR range per optimizer (the usual LR of that optimizer on these MLPs).
CENTRE_LR = {"adamw": 1e-3, "adam": 1e-3, "sgd": 3e-2}
_MAX_REDRAWS = 1000


def _significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (exact in JSON, readable in names)."""
    return float(f"{value:.{digits - 1}e}")


@dataclass(frozen=True)
class InstanceFamily:
    """A named, versioned family of training runs (see the module docstring).

    Args:
        name: Versioned name, e.g. ``digits-mlp-v1``; a changed definition gets a new version.
        description: One line for the docs.
        task: The registered task every instance runs (its options include the architecture).
        architectures: The architecture menu: each entry is the settings one batched env shares
            (data set, width, depth, batch size, optimizer, ...), drawn uniformly.
        lr_span: The base LR is log-uniform over ``[c / sqrt(span), c * sqrt(span)]``, ``c`` the
            optimizer's :data:`CENTRE_LR`.
        label_noise: Uniform range of the label-noise rate (rounded to 3 decimals).
        windows: Inclusive range of the budget in windows (uniform integer).
        window_length: Optimizer steps per window (fixed: it is the agent's decision period).
        settings: Further env settings of every instance (e.g. ``eval_every``).
        n_tuning: Size of the fixed ``tuning`` split.
        n_test: Size of the fixed ``test`` split.
        seed: Seed of the split streams.
        ood_of: The in-distribution family this one tests out of distribution (then no ``train``).
        ood_axis: What lies outside the parent's ranges, for the docs.
    """

    name: str
    description: str
    task: str
    architectures: tuple[tuple[tuple[str, Any], ...], ...]
    lr_span: float = 1000.0
    label_noise: tuple[float, float] = (0.0, 0.5)
    windows: tuple[int, int] = (10, 200)
    window_length: int = 10
    settings: tuple[tuple[str, Any], ...] = ()
    n_tuning: int = 32
    n_test: int = 64
    seed: int = 0
    ood_of: str | None = None
    ood_axis: str = ""
    _held: dict[str, tuple[Instance, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.architectures:
            raise ValueError(f"Family {self.name!r} needs at least one architecture.")
        for arch in self.architectures:
            optimizer = dict(arch).get("optimizer")
            if optimizer not in CENTRE_LR:
                raise ValueError(f"Family {self.name!r}: every architecture names an optimizer of {sorted(CENTRE_LR)}, got {optimizer!r}.")
        lo, hi = self.windows
        if not 1 <= lo <= hi or self.lr_span < 1 or not 0 <= self.label_noise[0] <= self.label_noise[1] < 1:
            raise ValueError(f"Family {self.name!r}: need 1 <= windows[0] <= windows[1], lr_span >= 1, 0 <= label noise range < 1.")

    # ------------------------------------------------------------------ sampling
    @property
    def splits(self) -> tuple[str, ...]:
        return FAMILY_SPLITS[1:] if self.ood_of else FAMILY_SPLITS

    @property
    def tasks(self) -> tuple[str, ...]:
        return (self.task,)

    def lr_range(self, optimizer: str) -> tuple[float, float]:
        centre, half = CENTRE_LR[optimizer], math.sqrt(self.lr_span)
        return centre / half, centre * half

    def sample_overrides(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration (env overrides, no seed) drawn from ``rng``; always the same number of draws."""
        arch = dict(self.architectures[int(rng.integers(len(self.architectures)))])
        lo, hi = self.lr_range(arch["optimizer"])
        base_lr = _significant(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        noise = round(float(rng.uniform(*self.label_noise)), 3)
        windows = int(rng.integers(self.windows[0], self.windows[1] + 1))
        return {**dict(self.settings), **arch, "base_lr": base_lr, "label_noise": noise,
                "total_steps": windows * self.window_length, "window_length": self.window_length}

    def draw(self, split: str, rng: np.random.Generator, name: str, avoid: Sequence[Instance] = ()) -> Instance:
        """One instance of ``split`` from ``rng``; a configuration of ``avoid`` (or a held-out one, for ``train``) is drawn again."""
        self._check_split(split)
        taken = {i.configuration for i in avoid}
        if split == "train":
            taken |= self.held_out_configurations()
        lo, hi = SEED_RANGES[split]
        for _ in range(_MAX_REDRAWS):
            overrides = self.sample_overrides(rng)
            seed = int(rng.integers(lo, hi))
            instance = make_instance(self.task, overrides, seed)
            if instance.configuration not in taken:
                return Instance(name, instance.task, instance.overrides, seed)
        raise RuntimeError(f"Family {self.name!r}: {_MAX_REDRAWS} draws in a row hit held-out configurations; widen its ranges.")

    def held_out_configurations(self) -> set[Any]:
        return {i.configuration for i in self.tuning + self.test}

    def _fixed_split(self, split: str, n: int, stream: int, avoid: Sequence[Instance] = ()) -> tuple[Instance, ...]:
        if split not in self._held:
            rng = np.random.default_rng([self.seed, stream])
            out: list[Instance] = []
            for k in range(n):
                out.append(self.draw(split, rng, f"{self.name}#{split}{k:03d}", avoid=[*avoid, *out]))
            self._held[split] = tuple(out)
        return self._held[split]

    @property
    def test(self) -> tuple[Instance, ...]:
        return self._fixed_split("test", self.n_test, 1)

    @property
    def tuning(self) -> tuple[Instance, ...]:
        return self._fixed_split("tuning", self.n_tuning, 2, avoid=self.test)

    def train_draws(self, seed: int) -> Iterator[Instance]:
        """The training instances an env reset with ``seed`` then reset unseeded draws, in order."""
        from gymnasium.utils import seeding

        rng = seeding.np_random(seed)[0]
        for k in itertools.count():
            yield self.draw("train", rng, f"{self.name}#train{k}")

    # ------------------------------------------------------------------ InstanceSet-like API
    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            extra = f" (an out-of-distribution family has no train split; train on {self.ood_of!r})" if self.ood_of else ""
            raise ValueError(f"split={split!r} is not valid for family {self.name!r}; choose one of {list(self.splits)}{extra}.")

    def split(self, name: str) -> tuple[Instance, ...]:
        """The fixed instances of ``tuning`` or ``test`` (``train`` is drawn, see :meth:`train_draws`)."""
        self._check_split(name)
        if name == "train":
            raise ValueError(f"The train split of family {self.name!r} is drawn afresh at every reset, not listed; "
                             "make an env with split='train', or list split='tuning' or 'test'.")
        return self.tuning if name == "tuning" else self.test

    index = InstanceSet.index  # an instance of a fixed split by position or name, as for a set

    def architecture_index(self, overrides: Mapping[str, Any]) -> int:
        """Position in :attr:`architectures` of the architecture an instance's overrides hold."""
        for k, arch in enumerate(self.architectures):
            if all(overrides.get(key) == value for key, value in arch):
                return k
        raise ValueError(f"Overrides {dict(overrides)} hold no architecture of family {self.name!r}.")

    def restricted(self, k: int) -> InstanceFamily:
        """The family conditioned on architecture ``k`` (one batched env's share), held-out splits unchanged."""
        if not 0 <= k < len(self.architectures):
            raise ValueError(f"Family {self.name!r} has architectures 0..{len(self.architectures) - 1}, not {k}.")
        part = _Restricted(**{f: getattr(self, f) for f in _FIELDS}, name=f"{self.name}{DERIVED_MARK}arch{k}")
        object.__setattr__(part, "architectures", (self.architectures[k],))
        object.__setattr__(part, "parent", self)
        return part


_FIELDS = [f for f in InstanceFamily.__dataclass_fields__ if f not in ("name", "_held")]


class _Restricted(InstanceFamily):
    """One architecture of a family: its fixed splits are the parent's instances of that architecture."""

    parent: InstanceFamily

    def _fixed_split(self, split: str, n: int, stream: int, avoid: Sequence[Instance] = ()) -> tuple[Instance, ...]:
        arch = self.architectures[0]
        return tuple(i for i in self.parent.split(split) if all(i.env_overrides.get(k) == v for k, v in arch))

    def held_out_configurations(self) -> set[Any]:
        return self.parent.held_out_configurations()


# ---------------------------------------------------------------------- registry
_FAMILIES: dict[str, InstanceFamily] = {}


def register_family(family: InstanceFamily, *, overwrite: bool = False) -> InstanceFamily:
    """Make ``family`` available to :func:`get_family` and ``gym.make(..., instance_set=NAME)``."""
    check_new_name(_FAMILIES, family, "family", overwrite)
    if family.ood_of is not None and family.ood_of not in _FAMILIES:
        raise ValueError(f"Family {family.name!r} is out of distribution of {family.ood_of!r}, which is not registered.")
    _FAMILIES[family.name] = family
    return family


def is_family(name: str) -> bool:
    return name.split(DERIVED_MARK)[0] in _FAMILIES


def get_family(name: str) -> InstanceFamily:
    """A registered family, or ``<family>@arch<k>`` (the family restricted to architecture ``k``)."""
    base, _, part = name.partition(DERIVED_MARK)
    if base not in _FAMILIES:
        raise KeyError(f"Unknown instance family {name!r}; registered families: {sorted(_FAMILIES)}.")
    family = _FAMILIES[base]
    if not part:
        return family
    if not part.startswith("arch") or not part[4:].isdigit():
        raise KeyError(f"{name!r}: a family's part is named '<family>@arch<k>', k in 0..{len(family.architectures) - 1}.")
    return family.restricted(int(part[4:]))


def registered_families() -> dict[str, InstanceFamily]:
    return dict(sorted(_FAMILIES.items()))


def get_instances(name: str) -> InstanceSet | InstanceFamily | TransferSet:
    """A registered instance set, family or transfer set by name (what leaderboards score on: its ``test`` split)."""
    if is_family(name):
        return get_family(name)
    return get_transfer_set(name) if is_transfer_set(name) else get_instance_set(name)


def architecture_menu(**axes: Sequence[Any]) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """The product of categorical axes as an architecture menu; a mapping value sets several settings at once.

    ``architecture_menu(dataset=["digits", {"dataset": "synthetic", "separation": 0.5}], depth=[1, 2])``
    """
    levels = [[v if isinstance(v, Mapping) else {key: v} for v in values] for key, values in axes.items()]
    return tuple(tuple(sorted({k: v for part in combo for k, v in part.items()}.items())) for combo in itertools.product(*levels))


# ---------------------------------------------------------------------- built-in families
_EVERY_RUN = (("eval_every", 0),)
_DIGITS_MENU = architecture_menu(dataset=["digits"], width=[32, 128], depth=[1, 2], batch_size=[32, 128], optimizer=["adamw", "sgd"])
_MIX_DATASETS = ["digits", "mnist_5k", {"dataset": "synthetic", "separation": 1.0}, {"dataset": "synthetic", "separation": 0.5}]

register_family(InstanceFamily(
    "digits-mlp-v1",
    "MLPs on the 8×8 digits: width {32, 128} × depth {1, 2} × batch {32, 128} × AdamW / SGD (momentum 0.9), base LR "
    "log-uniform ×1000 around the optimizer's usual LR, label noise 0-0.5, 10-200 windows of 10 steps",
    "MLP", _DIGITS_MENU, settings=_EVERY_RUN, seed=11,
))
register_family(InstanceFamily(
    "digits-mlp-mnist-ood-v1",
    "digits-mlp-v1's distribution on an unseen data set: the real MNIST 5k subset (784 inputs) instead of the 8×8 digits",
    "MLP", architecture_menu(dataset=["mnist_5k"], width=[32, 128], depth=[1, 2], batch_size=[32, 128], optimizer=["adamw", "sgd"]),
    settings=_EVERY_RUN, seed=12, ood_of="digits-mlp-v1", ood_axis="data set: MNIST 5k (training: 8×8 digits only)",
))
register_family(InstanceFamily(
    "tabular-mix-v1",
    "MLPs (width 64, depth {1, 2}, batch 64, AdamW / SGD) across data sets: 8×8 digits, real MNIST 5k, synthetic clusters "
    "at separation 1.0 and 0.5 (harder); base LR ×1000, label noise 0-0.5, 10-200 windows of 10 steps",
    "MLP", architecture_menu(dataset=_MIX_DATASETS, width=[64], depth=[1, 2], batch_size=[64], optimizer=["adamw", "sgd"]),
    settings=_EVERY_RUN, seed=21,
))
register_family(InstanceFamily(
    "tabular-mix-deep-ood-v1",
    "tabular-mix-v1's distribution with wider, deeper networks: width 256 and depth 3",
    "MLP", architecture_menu(dataset=_MIX_DATASETS, width=[256], depth=[3], batch_size=[64], optimizer=["adamw", "sgd"]),
    settings=_EVERY_RUN, seed=22, ood_of="tabular-mix-v1", ood_axis="model: width 256, depth 3 (training: width 64, depth 1-2)",
))


# ---------------------------------------------------------------------- env support
class TrainDraws:
    """``InstanceCycle``'s interface for a family's ``train`` split: every selection is a fresh draw.

    ``restart`` (a seeded reset) starts a new stream from the env's freshly seeded generator, so
    ``reset(seed=s)`` and the unseeded resets after it replay :meth:`InstanceFamily.train_draws` ``(s)``.
    """

    def __init__(self, family: InstanceFamily, resolve: Any) -> None:
        self.instance_set, self.split, self._resolve = family, "train", resolve
        self._count = 0
        #: One config per architecture (what the envs check spaces and batchability on).
        self.configs = tuple(resolve(family.restricted(k).draw("train", np.random.default_rng(k), "probe"))
                             for k in range(len(family.architectures)))

    def copy(self) -> TrainDraws:
        clone = object.__new__(TrainDraws)
        clone.__dict__.update(self.__dict__, _count=0)
        return clone

    def select(self, options: Mapping[str, Any] | None, rng: np.random.Generator, *, restart: bool) -> tuple[Instance, Any]:
        if options:
            raise ValueError(f"Reset options {sorted(options)} are not accepted on the train split of family {self.instance_set.name!r}: "
                             "its instances are drawn; choose one with options={'instance': ...} on split='tuning' or 'test'.")
        if restart:
            self._count = 0
        instance = self.instance_set.draw("train", rng, f"{self.instance_set.name}#train{self._count}")
        self._count += 1
        return instance, self._resolve(instance)


class _FamilySource:
    """How ``gym.make(..., instance_set=FAMILY)`` finds families (see ``instances.register_instance_source``)."""

    kind = "registered families"

    def names(self) -> list[str]:
        return sorted(_FAMILIES)

    def cycle(self, name: str, task: str, split: str, resolve: Any) -> TrainDraws | InstanceCycle | None:
        """Fresh draws for ``train``, a seeded shuffle of a fixed split otherwise."""
        if not is_family(name):
            return None
        family = get_family(name)
        if task not in family.tasks:
            raise ValueError(f"Family {name!r} runs task {family.task!r}; make it from aees_gym/{family.task}-v0.")
        family._check_split(split)
        if split == "train":
            return TrainDraws(family, resolve)
        instances = family.split(split)
        if not instances:
            raise ValueError(f"{name!r} has no {split} instances.")
        return InstanceCycle(family, split, [resolve(i) for i in instances])


register_instance_source(_FamilySource())
