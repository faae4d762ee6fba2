"""Built-in CPU tasks: scikit-learn's bundled 8×8 digits (MLP, CNN, noisy labels) and synthetic data.

A full ``Digits-v0`` run (1,000 AdamW steps of a 64-128-10 MLP) takes about two seconds on one CPU
core, which makes these the tasks for tests, demos and RL training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from aees_gym.core import checks
from aees_gym.core.config import _set
from aees_gym.tasks.base import RunSeeds, TaskSpec, TrainingRun, register_task
from aees_gym.tasks.classification import ClassificationData, build_classification_run, stratified_split
from aees_gym.tasks.config import EnvConfig


@dataclass(frozen=True)
class DigitsOptions:
    """Options of the digits tasks.

    Args:
        hidden: Width of the MLP's hidden layer.
        val_fraction: Stratified validation fraction.
        split_seed: Seed of the train/validation split (fixed so every run validates on the same images).
    """

    hidden: int = 128
    val_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        _set(
            self,
            hidden=checks.positive_int("hidden", self.hidden),
            val_fraction=checks.fraction("val_fraction", self.val_fraction, zero=False),
            split_seed=checks.non_negative_int("split_seed", self.split_seed),
        )


@dataclass(frozen=True)
class SyntheticOptions:
    """Options of the synthetic task: Gaussian class clusters in ``n_features`` dimensions.

    Args:
        n_train: Training examples.
        n_val: Validation examples.
        n_features: Input dimension.
        n_classes: Number of classes.
        hidden: Width of the MLP's hidden layer.
        separation: Distance scale between class centres (smaller is harder).
        data_seed: Seed of the generated data set (fixed so every run sees the same data).
    """

    n_train: int = 2048
    n_val: int = 512
    n_features: int = 16
    n_classes: int = 8
    hidden: int = 32
    separation: float = 1.5
    data_seed: int = 0

    def __post_init__(self) -> None:
        _set(
            self,
            **{name: checks.positive_int(name, getattr(self, name)) for name in ("n_train", "n_val", "n_features", "hidden")},
            n_classes=checks.integer("n_classes", self.n_classes, minimum=2),
            separation=checks.positive("separation", self.separation),
            data_seed=checks.non_negative_int("data_seed", self.data_seed),
        )

    def training_examples(self) -> tuple[str, int]:
        """The option that fixes the number of training examples, and that number (``batch_size`` may not exceed it)."""
        return "n_train", self.n_train


@lru_cache(maxsize=4)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "The digits tasks read scikit-learn's bundled digits; install the 'data' extra: pip install 'aees-gym[data]'."
        ) from exc
    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def load_digits_data(options: DigitsOptions) -> ClassificationData:
    """The 1,797 real 8×8 digit images, pixels scaled to [0, 1], stratified split."""
    x, y = _digits_arrays()
    train, val = stratified_split(y, options.val_fraction, options.split_seed)
    return ClassificationData(
        torch.from_numpy(x[train]), torch.from_numpy(y[train]), torch.from_numpy(x[val]), torch.from_numpy(y[val]), 10
    )


def make_synthetic_data(options: SyntheticOptions) -> ClassificationData:
    gen = torch.Generator().manual_seed(options.data_seed)
    centres = torch.randn(options.n_classes, options.n_features, generator=gen) * options.separation

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(options.n_classes, (n,), generator=gen)
        x = centres[y] + torch.randn(n, options.n_features, generator=gen)
        return x, y

    x_train, y_train = sample(options.n_train)
    x_val, y_val = sample(options.n_val)
    return ClassificationData(x_train, y_train, x_val, y_val, options.n_classes)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class DigitsCNN(nn.Module):
    """Two 3×3 conv layers and a linear head for 1×8×8 images."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(32 * 4 * 4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


def _build_digits_mlp(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    opts: DigitsOptions = config.options
    return build_classification_run(load_digits_data(opts), lambda: _mlp(64, opts.hidden, 10), config, seeds)


def _build_digits_cnn(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    return build_classification_run(load_digits_data(config.options), DigitsCNN, config, seeds)


def _build_synthetic(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    opts: SyntheticOptions = config.options
    data = make_synthetic_data(opts)
    return build_classification_run(data, lambda: _mlp(opts.n_features, opts.hidden, opts.n_classes), config, seeds)


_DIGITS_DEFAULTS = {
    "total_steps": 1000, "window_length": 50, "batch_size": 64, "optimizer": "adamw", "base_lr": 1e-3,
    "eval_every": 2, "target_accuracy": 0.95,
}
_DIGITS_DATA = "scikit-learn's bundled 8×8 digits (1,797 images, 10 classes), stratified 80/20 split"
_DIGITS_REQUIRES = {"sklearn": "data"}

register_task(TaskSpec(
    name="Digits",
    description="MLP 64-128-10 on scikit-learn's real 8×8 digits; seconds per run on CPU",
    build=_build_digits_mlp, defaults=_DIGITS_DEFAULTS, options_cls=DigitsOptions,
    data=_DIGITS_DATA, model="MLP 64-128-10 (ReLU)",
    requires=_DIGITS_REQUIRES,
))
register_task(TaskSpec(
    name="DigitsNoisy",
    description="Digits with 40% symmetric training-label noise (the reference noise protocol)",
    build=_build_digits_mlp, defaults={**_DIGITS_DEFAULTS, "label_noise": 0.4, "target_accuracy": 0.9},
    options_cls=DigitsOptions, data=_DIGITS_DATA + "; 40% of training labels corrupted", model="MLP 64-128-10 (ReLU)",
    requires=_DIGITS_REQUIRES,
))
register_task(TaskSpec(
    name="DigitsCNN",
    description="Small CNN (two 3×3 convs) on the 8×8 digits",
    build=_build_digits_cnn, defaults={**_DIGITS_DEFAULTS, "total_steps": 600, "window_length": 30},
    options_cls=DigitsOptions, data=_DIGITS_DATA, model="CNN conv16-conv32-maxpool-linear",
    requires=_DIGITS_REQUIRES,
))
register_task(TaskSpec(
    name="Synthetic",
    description="Generated Gaussian-cluster classification with a tiny MLP; the fastest env (no extra dependencies)",
    build=_build_synthetic,
    defaults={"total_steps": 200, "window_length": 20, "batch_size": 64, "optimizer": "adamw", "base_lr": 1e-3, "target_accuracy": 0.9},
    options_cls=SyntheticOptions, data="8 Gaussian clusters in 16 dimensions, generated with a fixed seed", model="MLP 16-32-8",
))
