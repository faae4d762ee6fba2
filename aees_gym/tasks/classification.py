"""In-memory classification data: splits, label noise, seeded batches on the device, and the run.

Small datasets live on the training device as tensors. Each epoch draws one index permutation
from the run's data-order generator; a step slices it and gathers the batch on the device, so
batching never reads anything back to the host.

The validation split is split once more (:func:`reward_scoring_split`, stratified, fixed seed):
a ``reward_fraction`` part that rewards may see (``TrainingRun.reward_eval``, the ``heldout``
reward, and ``TrainingRun.monitor``: the validation accuracy and loss an agent may observe during a
run and tuning chooses by) and the rest, the scoring part, which alone gives ``evaluate()``'s final
metrics. So nothing a controller sees or a tuner chooses by is measured on the data a run is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aees_gym.tasks.base import (
    RunSeeds,
    TrainingRun,
    build_optimizer,
    build_scheduler,
    estimate_forward_flops,
    eval_params,
    resolve_device,
    seeded_torch,
)
from aees_gym.tasks.config import EnvConfig

#: Seed of the reward/scoring split of the validation data: fixed, so every run of a task is scored
#: on the same examples whatever its run seed.
REWARD_SPLIT_SEED = 0


@dataclass
class ClassificationData:
    """Train/validation tensors (features already normalised) and the number of classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/validation split (each class split in the same proportion)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def reward_scoring_split(labels: np.ndarray, reward_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (reward part, scoring part) of validation ``labels``: stratified, seeded with :data:`REWARD_SPLIT_SEED`.

    ``reward_fraction=0`` keeps the whole validation split for scoring (and no held-out reward).
    """
    if not 0.0 <= reward_fraction < 1.0:
        raise ValueError(f"reward_fraction must be in [0, 1), got {reward_fraction}.")
    if reward_fraction == 0.0:
        return np.zeros(0, dtype=np.int64), np.arange(len(labels))
    scoring, reward = stratified_split(labels, reward_fraction, REWARD_SPLIT_SEED)
    return reward, scoring


def split_validation(data: ClassificationData, reward_fraction: float) -> tuple[ClassificationData, torch.Tensor, torch.Tensor]:
    """``data`` with only the scoring part as validation, plus the reward part's (x, y)."""
    reward, scoring = reward_scoring_split(data.y_val.cpu().numpy(), reward_fraction)
    r, s = torch.as_tensor(reward, device=data.x_val.device), torch.as_tensor(scoring, device=data.x_val.device)
    scored = ClassificationData(data.x_train, data.y_train, data.x_val[s], data.y_val[s], data.n_classes)
    return scored, data.x_val[r], data.y_val[r]


def corrupt_labels(
    labels: np.ndarray,
    rate: float,
    n_classes: int,
    seed: int,
    kind: str = "symmetric",
    class_map: Mapping[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt ``round(N * rate)`` labels chosen by a seeded shuffle; returns (labels, corrupted mask).

    ``symmetric``: the new label is uniform over the *other* classes. ``asymmetric``: the new label
    is ``class_map[label]`` (e.g. a cyclic shift inside each CIFAR-100 superclass).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"label-noise rate must be in [0, 1), got {rate}.")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    count = int(round(len(labels) * rate))
    chosen = rng.permutation(len(labels))[:count]
    if kind == "symmetric":
        offsets = rng.integers(1, n_classes, size=count)
        noisy[chosen] = (labels[chosen] + offsets) % n_classes
    elif kind == "asymmetric":
        if class_map is None:
            raise ValueError("asymmetric label noise needs a class map; this task defines none, use 'symmetric'.")
        noisy[chosen] = np.asarray([class_map[int(y)] for y in labels[chosen]])
    else:
        raise ValueError(f"Unknown label-noise kind {kind!r}; choose 'symmetric' or 'asymmetric'.")
    mask = np.zeros(len(labels), dtype=bool)
    mask[chosen] = True
    return noisy, mask


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the host) moved to ``device`` without making the host wait for the device.

    A copy from pageable host memory synchronises with the device; from pinned memory with
    ``non_blocking`` it is queued on the stream like a kernel (the caching host allocator keeps the
    pinned block alive until the copy has run). On CPU the tensor is returned as it is.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class DeviceBatches:
    """Seeded minibatches from tensors on the device (drop-last, one permutation per epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        if batch_size > len(x):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(x)} training examples.")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.steps_per_epoch = len(x) // batch_size
        self._gen = torch.Generator().manual_seed(seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = self.steps_per_epoch

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos == self.steps_per_epoch:
            self._perm = to_device_async(torch.randperm(len(self.x), generator=self._gen), self.x.device)
            self._pos = 0
        idx = self._perm[self._pos * self.batch_size : (self._pos + 1) * self.batch_size]
        self._pos += 1
        return self.x[idx], self.y[idx]


@torch.no_grad()
def accuracy_and_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch])
        loss_sum += F.cross_entropy(logits, y[i : i + batch], reduction="sum")
        correct += (logits.argmax(dim=1) == y[i : i + batch]).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return float(correct) / n, float(loss_sum) / n


@torch.no_grad()
def mean_loss_on_device(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Mean cross-entropy of ``model`` (eval mode) on ``(x, y)`` as a device scalar: nothing is read to the host."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    for i in range(0, len(x), batch):
        loss_sum += F.cross_entropy(model(x[i : i + batch]).float(), y[i : i + batch], reduction="sum")
    model.train(was_training)
    return loss_sum / max(len(x), 1)


def build_classification_run(
    data: ClassificationData,
    make_model: Callable[[], nn.Module],
    config: EnvConfig,
    seeds: RunSeeds,
    class_map: Mapping[int, int] | None = None,
) -> TrainingRun:
    """Model, optimizer, schedule, label noise and batches of a supervised classification run."""
    device = resolve_device(config.device)
    data, x_reward, y_reward = split_validation(data, config.reward_fraction)
    y_clean = data.y_train.cpu().numpy()
    corrupted = np.zeros(len(y_clean), dtype=bool)
    y_used = y_clean
    if config.label_noise > 0:
        y_used, corrupted = corrupt_labels(
            y_clean, config.label_noise, data.n_classes, seeds.label_noise, config.label_noise_kind, class_map
        )
    x_train = data.x_train.to(device)
    y_train = torch.as_tensor(y_used, dtype=torch.long, device=device)
    x_val, y_val = data.x_val.to(device), data.y_val.to(device)
    x_reward, y_reward = x_reward.to(device), y_reward.to(device)
    with seeded_torch(seeds.model, device):
        model = make_model().to(device)
    flops = 3.0 * config.batch_size * estimate_forward_flops(model, x_train[:1])
    optimizer = build_optimizer(model.parameters(), config, device)
    batches = DeviceBatches(x_train, y_train, config.batch_size, seeds.data_order)
    scheduler, every = build_scheduler(optimizer, config, batches.steps_per_epoch)

    def train_step() -> torch.Tensor:
        xb, yb = batches.next()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        return loss

    def evaluate() -> dict[str, float]:
        with eval_params(optimizer):
            return _evaluate()

    def reward_eval() -> torch.Tensor:
        with eval_params(optimizer):
            return mean_loss_on_device(model, x_reward, y_reward)

    def monitor() -> dict[str, float]:
        with eval_params(optimizer):
            acc, loss = accuracy_and_loss(model, x_reward, y_reward)
        return {"val_accuracy": acc, "val_loss": loss}

    def _evaluate() -> dict[str, float]:
        acc, loss = accuracy_and_loss(model, x_val, y_val)
        metrics = {"val_accuracy": acc, "val_loss": loss}
        if corrupted.any():
            # Memorisation diagnostics of the reference: fit to clean vs corrupted training labels.
            clean_idx = torch.as_tensor(np.flatnonzero(~corrupted), device=device)
            bad_idx = torch.as_tensor(np.flatnonzero(corrupted), device=device)
            y_true = torch.as_tensor(y_clean, dtype=torch.long, device=device)
            metrics["train_accuracy_clean_subset"] = accuracy_and_loss(model, x_train[clean_idx], y_train[clean_idx])[0]
            metrics["train_accuracy_corrupted_noisy_labels"] = accuracy_and_loss(model, x_train[bad_idx], y_train[bad_idx])[0]
            metrics["train_accuracy_corrupted_true_labels"] = accuracy_and_loss(model, x_train[bad_idx], y_true[bad_idx])[0]
        return metrics

    return TrainingRun(
        model=model,
        optimizer=optimizer,
        train_step=train_step,
        evaluate=evaluate,
        reward_eval=reward_eval if len(x_reward) else None,
        monitor=monitor if len(x_reward) else None,
        steps_per_epoch=batches.steps_per_epoch,
        flops_per_step=flops,
        device=device,
        scheduler=scheduler,
        scheduler_every=every,
        description={"n_train": len(x_train), "n_val": len(x_val), "n_reward_val": len(x_reward), "n_classes": data.n_classes, "corrupted": int(corrupted.sum())},
    )
