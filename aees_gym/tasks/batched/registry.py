"""Which tasks the batched engine can train, and how: data, the single run's module, the batched forward.

A task is batchable when it is listed here (:func:`register_batched_task` adds one). Each entry
reproduces the single run's pieces: the same training/validation tensors, the same ``nn.Module``
(built under the run's model seed, then stacked) and a batched forward pass of that module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from aees_gym.tasks.base import resolve_device
from aees_gym.tasks.batched.nets import (
    BatchedForward,
    BatchedLossAndGrads,
    digits_cnn_forward,
    mlp_forward,
    mlp_loss_and_grads,
    mnist_cnn_forward,
)
from aees_gym.tasks.classification import ClassificationData
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.image_pipeline import InputNormalize, resolve_fast_path
from aees_gym.tasks.models import build_model


@dataclass(frozen=True)
class BatchedTaskSpec:
    """How one task is trained as N stacked runs.

    Args:
        load_data: ``load_data(config)`` → the training/validation tensors, features as the
            network's first layer sees them (already normalised).
        make_model: ``make_model(config, data)`` → a zero-argument factory of the single run's
            network; called under each run's model seed, its ``parameters()`` become a row.
        forward: ``forward(config)`` → the batched forward pass (:mod:`aees_gym.tasks.batched.nets`).
        autocast: ``autocast(config)`` → whether the single run's forward runs under bf16 autocast.
        loss_and_grads: ``loss_and_grads(config)`` → a closed-form loss-and-gradients of the same
            network (:data:`~aees_gym.tasks.batched.nets.BatchedLossAndGrads`) used instead of
            ``forward`` + autograd when training without autocast, or ``None``.
        flops: ``flops(config, data, template)`` → the single run's ``flops_per_step`` when it is a
            closed form (``None``: counted from one forward pass of ``template``).
        problem: ``problem(config)`` → why this task's run with ``config`` cannot be a row (an option
            the batched network lacks), or ``None``.
        engine: The engine class when the task is not trained as classification (``None``:
            :class:`~aees_gym.tasks.batched.run.BatchedClassificationRuns`); same constructor and API.
    """

    load_data: Callable[[EnvConfig], ClassificationData]
    make_model: Callable[[EnvConfig, ClassificationData], Callable[[], nn.Module]]
    forward: Callable[[EnvConfig], BatchedForward]
    autocast: Callable[[EnvConfig], bool] = lambda config: False
    loss_and_grads: Callable[[EnvConfig], BatchedLossAndGrads | None] = lambda config: None
    flops: Callable[[EnvConfig, ClassificationData, nn.Module], float] | None = None
    problem: Callable[[EnvConfig], str | None] = lambda config: None
    engine: type | None = None


_BATCHED: dict[str, BatchedTaskSpec] = {}


def register_batched_task(name: str, spec: BatchedTaskSpec) -> BatchedTaskSpec:
    """Declare that task ``name`` can be trained by the batched engine."""
    _BATCHED[name] = spec
    return spec


def batched_task(name: str) -> BatchedTaskSpec:
    """The batched recipe of task ``name``; a clear error for tasks that have none."""
    try:
        return _BATCHED[name]
    except KeyError:
        raise ValueError(
            f"Task {name!r} cannot be trained by the batched engine (batchable tasks: {sorted(_BATCHED)}); "
            'run its copies as separate envs instead, e.g. gymnasium.make_vec(..., vectorization_mode="async").'
        ) from None


def batchable_tasks() -> list[str]:
    return sorted(_BATCHED)


# ---------------------------------------------------------------------------- built-in tasks
def _tabular() -> None:
    from aees_gym.tasks.tabular import DigitsCNN, _mlp, load_digits_data, make_synthetic_data

    def digits_mlp(config: EnvConfig, data: ClassificationData) -> Callable[[], nn.Module]:
        return lambda: _mlp(64, config.options.hidden, 10)

    def synthetic_mlp(config: EnvConfig, data: ClassificationData) -> Callable[[], nn.Module]:
        o = config.options
        return lambda: _mlp(o.n_features, o.hidden, o.n_classes)

    def digits_data(config: EnvConfig) -> ClassificationData:
        return load_digits_data(config.options)

    mlp = BatchedTaskSpec(digits_data, digits_mlp, lambda config: mlp_forward, loss_and_grads=lambda config: mlp_loss_and_grads)
    register_batched_task("Digits", mlp)
    register_batched_task("DigitsNoisy", mlp)
    def digits_cnn(config: EnvConfig) -> BatchedForward:
        # On a GPU the convolutions as batched GEMMs far outrun cuDNN's many-group kernels; CPU keeps the grouped form.
        from aees_gym.tasks.batched.conv_gemm import digits_cnn_gemm_forward

        return digits_cnn_gemm_forward if resolve_device(config.device).type == "cuda" else digits_cnn_forward

    register_batched_task("DigitsCNN", BatchedTaskSpec(digits_data, lambda c, d: DigitsCNN, digits_cnn))
    register_batched_task(
        "Synthetic",
        BatchedTaskSpec(
            lambda c: make_synthetic_data(c.options), synthetic_mlp, lambda c: mlp_forward, loss_and_grads=lambda c: mlp_loss_and_grads
        ),
    )


def _mnist() -> None:
    from aees_gym.tasks.vision import MNIST_MEAN, MNIST_STD, read_mnist, to_classification_data

    def check(config: EnvConfig) -> None:
        opts = config.options
        if opts.augment or opts.compile:
            raise ValueError(
                "The batched engine trains MNIST without augment and compile; set augment=False, compile=False, "
                'or run separate envs with gymnasium.make_vec(..., vectorization_mode="async").'
            )

    def load(config: EnvConfig) -> ClassificationData:
        check(config)
        opts = config.options
        data = to_classification_data(read_mnist(opts), opts.n_train, opts.n_val)
        # The single run normalises each uint8 batch elementwise; doing it once up front gives the same floats.
        norm = InputNormalize(MNIST_MEAN, MNIST_STD)
        with torch.no_grad():
            return ClassificationData(norm(data.x_train), data.y_train, norm(data.x_val), data.y_val, data.n_classes)

    def forward(config: EnvConfig) -> BatchedForward:
        return {"mnist_cnn": mnist_cnn_forward, "mnist_mlp": mlp_forward}[config.options.model]

    def autocast(config: EnvConfig) -> bool:
        opts = config.options
        return resolve_fast_path(resolve_device(config.device), opts.autocast, opts.channels_last, opts.compile).autocast

    def loss_and_grads(config: EnvConfig) -> BatchedLossAndGrads | None:
        return mlp_loss_and_grads if config.options.model == "mnist_mlp" else None

    register_batched_task(
        "MNIST",
        BatchedTaskSpec(load, lambda c, d: (lambda: build_model(c.options.model, d.n_classes)), forward, autocast, loss_and_grads),
    )


_tabular()
_mnist()
