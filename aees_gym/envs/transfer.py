"""Transfer sets: real tasks held out of every training, with fixed ``tuning`` and ``test`` run seeds.

A learned controller trains on cheap instance families (:mod:`aees_gym.envs.families`); a transfer
set asks whether it helps on a *real* task it never saw (the MNIST CNN, the Rotten Tomatoes LSTM,
the small GPT-2). Each set is one task at fixed, declared settings (budget, window length, model,
data subset), run with ``tuning`` seeds — on which references such as a tuned constant LR choose
their settings — and with disjoint ``test`` seeds, which score. It has no ``train`` split.

Every instance of a set shares one configuration (only the run seed differs), so reports treat the
set as one configuration run with several seeds (:data:`aees_gym.reporting.leaderboard.ENUMERATED`):
the bootstrap resamples test seeds, and P(better than a reference) pairs runs on the same seed.

Example:
    >>> from aees_gym.envs.transfer import get_transfer_set
    >>> s = get_transfer_set("mnist-5k-cnn-v1")
    >>> s.task, len(s.tuning), len(s.test), s.test[0].name
    ('MNIST', 2, 8, 'mnist-5k-cnn-v1#test00')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aees_gym.envs.instances import Instance, InstanceCycle, InstanceSet, check_new_name, make_instance, register_instance_source

TRANSFER_SPLITS = ("tuning", "test")


@dataclass(frozen=True)
class TransferSet:
    """One real task at fixed settings with ``tuning`` and ``test`` run seeds (see the module docstring).

    Args:
        name: Versioned name, e.g. ``mnist-5k-cnn-v1``; a changed definition gets a new version.
        description: One line for the docs.
        task: The registered task every instance runs.
        settings: Sorted ``(setting, value)`` pairs on top of the task's defaults (budget, window, data, model).
        tuning_seeds: Run seeds of the ``tuning`` split (references choose their settings on these).
        test_seeds: Run seeds of the ``test`` split (these score); disjoint from ``tuning_seeds``.
    """

    name: str
    description: str
    task: str
    settings: tuple[tuple[str, Any], ...]
    tuning_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    _held: dict[str, tuple[Instance, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", tuple(sorted(dict(self.settings).items())))
        object.__setattr__(self, "tuning_seeds", tuple(int(s) for s in self.tuning_seeds))
        object.__setattr__(self, "test_seeds", tuple(int(s) for s in self.test_seeds))
        if not self.tuning_seeds or not self.test_seeds:
            raise ValueError(f"Transfer set {self.name!r} needs at least one tuning and one test seed.")
        for split, seeds in (("tuning", self.tuning_seeds), ("test", self.test_seeds)):
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"Transfer set {self.name!r}: its {split} seeds repeat {sorted(seeds)}; give distinct seeds.")
        if set(self.tuning_seeds) & set(self.test_seeds):
            raise ValueError(f"Transfer set {self.name!r}: tuning and test seeds share {sorted(set(self.tuning_seeds) & set(self.test_seeds))}; "
                             "a reference tuned on a test seed would be scored on its own tuning run.")

    @property
    def tasks(self) -> tuple[str, ...]:
        return (self.task,)

    @property
    def splits(self) -> tuple[str, ...]:
        return TRANSFER_SPLITS

    @property
    def train(self) -> tuple[Instance, ...]:
        """Empty: nothing trains on a transfer set."""
        return ()

    def _instances(self, split: str, seeds: tuple[int, ...]) -> tuple[Instance, ...]:
        if split not in self._held:
            runs = [make_instance(self.task, dict(self.settings), s) for s in seeds]
            self._held[split] = tuple(Instance(f"{self.name}#{split}{k:02d}", r.task, r.overrides, r.seed) for k, r in enumerate(runs))
        return self._held[split]

    @property
    def tuning(self) -> tuple[Instance, ...]:
        return self._instances("tuning", self.tuning_seeds)

    @property
    def test(self) -> tuple[Instance, ...]:
        return self._instances("test", self.test_seeds)

    def split(self, name: str) -> tuple[Instance, ...]:
        if name not in TRANSFER_SPLITS:
            raise ValueError(f"split={name!r} is not valid for transfer set {self.name!r}; choose one of {list(TRANSFER_SPLITS)} "
                             "(a transfer set is never trained on).")
        return self.tuning if name == "tuning" else self.test

    index = InstanceSet.index  # an instance of a split by position or name, as for a set


_TRANSFER: dict[str, TransferSet] = {}


def register_transfer_set(transfer_set: TransferSet, *, overwrite: bool = False) -> TransferSet:
    """Make ``transfer_set`` available to :func:`get_transfer_set`, leaderboards and ``gym.make(..., instance_set=NAME)``."""
    check_new_name(_TRANSFER, transfer_set, "transfer set", overwrite)
    _TRANSFER[transfer_set.name] = transfer_set
    return transfer_set


def is_transfer_set(name: str) -> bool:
    return name in _TRANSFER


def get_transfer_set(name: str) -> TransferSet:
    try:
        return _TRANSFER[name]
    except KeyError:
        raise KeyError(f"Unknown transfer set {name!r}; registered transfer sets: {sorted(_TRANSFER)}.") from None


def registered_transfer_sets() -> dict[str, TransferSet]:
    return dict(sorted(_TRANSFER.items()))


class _TransferSource:
    """How ``gym.make(..., instance_set=NAME)`` finds transfer sets (see ``instances.register_instance_source``)."""

    kind = "registered transfer sets"

    def names(self) -> list[str]:
        return sorted(_TRANSFER)

    def cycle(self, name: str, task: str, split: str, resolve: Callable[[Instance], Any]) -> InstanceCycle | None:
        if name not in _TRANSFER:
            return None
        chosen = _TRANSFER[name]
        if task != chosen.task:
            raise ValueError(f"Transfer set {name!r} runs task {chosen.task!r}; make it from aees_gym/{chosen.task}-v0.")
        instances = chosen.split(split)
        return InstanceCycle(chosen, split, [resolve(i) for i in instances])  # type: ignore[arg-type]


register_instance_source(_TransferSource())


# ---------------------------------------------------------------------- built-in transfer sets
# Declared before any learned controller was scored on them, from one-thread CPU timings (see
# docs/learned-controller.md, "Transfer to real tasks"); never changed to favour an agent. Every run
# evaluates once, at its end (eval_every 0); windows of 10 steps, as the families the controllers train on.
_TUNING_SEEDS = (100, 101)
_TEST_SEEDS = tuple(range(1000, 1008))
_EVAL_AT_END: Mapping[str, Any] = {"window_length": 10, "eval_every": 0}

register_transfer_set(TransferSet(
    "mnist-5k-cnn-v1",
    "The PyTorch examples' CNN on the real MNIST 5k subset (4,000 train / 500 validation images, about 100 of them the "
    "reward part), AdamW 1e-3, batch 32, 150 steps; `aees-gym data prepare mnist_5k`",
    "MNIST", tuple({**_EVAL_AT_END, "source": "mnist_5k", "device": "cpu", "batch_size": 32, "n_val": 500, "total_steps": 150}.items()),
    _TUNING_SEEDS, _TEST_SEEDS,
))
register_transfer_set(TransferSet(
    "rotten-tomatoes-lstm-v1",
    "LSTM 128-128 on the real Rotten Tomatoes snippets (the task's defaults: AdamW 1e-3, batch 32), 150 steps; "
    "`aees-gym data prepare rotten_tomatoes`",
    "RottenTomatoes", tuple({**_EVAL_AT_END, "device": "cpu", "total_steps": 150}.items()),
    _TUNING_SEEDS, _TEST_SEEDS,
))
register_transfer_set(TransferSet(
    "gpt2-tiny-v1",
    "GPT-2 from scratch (2 layers × 128, BPE 4096; the task's defaults: SGD 0.05, momentum 0.9, batch 2) on the real "
    "Rotten Tomatoes text, 300 steps, metric validation perplexity; 20 % of the validation blocks are the reward part; "
    "`aees-gym data prepare rotten_tomatoes`",
    "GPT2", tuple({**_EVAL_AT_END, "device": "cpu", "total_steps": 300, "reward_fraction": 0.2}.items()),
    _TUNING_SEEDS, _TEST_SEEDS,
))
