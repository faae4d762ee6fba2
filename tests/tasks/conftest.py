"""Fixtures that write small data sets in the real on-disk formats the task loaders read."""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from aees_gym.tasks.vision import CIFAR100_COARSE


def write_cifar_batch(path: Path, images: np.ndarray, labels: dict[str, np.ndarray], *, bytes_keys: bool) -> None:
    """One python-pickle CIFAR batch: ``data`` uint8 N×3072 (channel-major rows) plus label lists."""
    batch: dict[object, object] = {"data": images.reshape(len(images), 3072), "filenames": [f"img_{i}.png" for i in range(len(images))]}
    batch.update({k: v.tolist() for k, v in labels.items()})
    if bytes_keys:  # the official files are python-2 pickles whose keys load as bytes
        batch = {k.encode(): v for k, v in batch.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _images(rng: np.random.Generator, n: int, labels: np.ndarray, n_classes: int) -> np.ndarray:
    # Class-dependent mean colour so a model can learn something in a few steps.
    base = (labels[:, None, None, None] * (255 // n_classes)).astype(np.int64)
    return np.clip(base + rng.integers(0, 60, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class WrittenImages:
    """What a fixture wrote: the data root and, per data set, (x_train, y_train, x_test, y_test)."""

    root: Path
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@pytest.fixture(scope="session")
def cifar_data(tmp_path_factory) -> WrittenImages:
    """CIFAR-10 (5 train batches of 16 + test 32, bytes keys) and CIFAR-100 (train 64 + test 32, str keys)."""
    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        y = rng.integers(0, 10, 16)
        xs.append(_images(rng, 16, y, 10))
        ys.append(y)
        write_cifar_batch(folder / f"data_batch_{i}", xs[-1], {"labels": y}, bytes_keys=True)
    y_test = rng.integers(0, 10, 32)
    x_test = _images(rng, 32, y_test, 10)
    write_cifar_batch(folder / "test_batch", x_test, {"labels": y_test}, bytes_keys=True)
    arrays = {"cifar10": (np.concatenate(xs), np.concatenate(ys), x_test, y_test)}
    coarse = np.asarray(CIFAR100_COARSE)
    written = []
    for name, n in (("train", 64), ("test", 32)):
        fine = rng.integers(0, 100, n)
        written += [_images(rng, n, fine, 100), fine]
        write_cifar_batch(
            root / "cifar-100-python" / name, written[-2], {"fine_labels": fine, "coarse_labels": coarse[fine]}, bytes_keys=False
        )
    arrays["cifar100"] = tuple(written)
    return WrittenImages(root, arrays)


@pytest.fixture(scope="session")
def cifar_dir(cifar_data) -> Path:
    return cifar_data.root


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def mnist_data(tmp_path_factory) -> WrittenImages:
    """torchvision's MNIST layout, ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, 96 + 48 images."""
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(1)
    written = []
    for split, n in (("train", 96), ("t10k", 48)):
        labels = rng.integers(0, 10, n)
        images = np.clip(labels[:, None, None] * 25 + rng.integers(0, 30, size=(n, 28, 28)), 0, 255)
        write_idx(root / "MNIST" / "raw" / f"{split}-images-idx3-ubyte", images)
        write_idx(root / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte", labels)
        written += [images.astype(np.uint8), labels]
    return WrittenImages(root, {"mnist": tuple(written)})


@pytest.fixture(scope="session")
def mnist_dir(mnist_data) -> Path:
    return mnist_data.root




def _rows_match_single_envs(env_id: str, overrides: dict, runs, config, rows) -> list:
    """Run ``rows`` ((seed, actions per window)) as batched rows of ``runs`` and as single envs.

    Every window's step losses of row i must match the single env reset with row i's seed; returns
    the single envs (unwrapped) for the caller's checks of weights and metrics.
    """
    import gymnasium as gym

    singles = []
    for seed, actions in rows:
        env = gym.make(env_id, **overrides)
        env.reset(seed=seed)
        singles.append(([env.step(a)[4]["step_losses"] for a in actions], env.unwrapped))
    runs.reset_runs(range(len(rows)), [config] * len(rows), [env.run_seed for _, env in singles])
    assert runs.flops_per_step == singles[0][1].training_run.flops_per_step
    for w in range(len(rows[0][1])):
        values = [config.grid.values(actions[w]) for _, actions in rows]
        got = runs.run_window([v[0] for v in values], [v[1] for v in values], [config.window_length] * len(rows)).numpy()
        for i, (windows, _) in enumerate(singles):
            np.testing.assert_allclose(got[i], windows[w], rtol=1e-5 if w == 0 else 1e-4, err_msg=f"row {i} window {w}")
    return [env for _, env in singles]


@pytest.fixture
def rows_match_single_envs():
    """The batched-rows-against-single-envs check shared by the batched text and language-model tests."""
    return _rows_match_single_envs


def _vector_beside_single_envs(env_id: str, kwargs: dict, seed: int, n: int = 2) -> tuple:
    """A batched vector env of ``n`` sub-envs reset with ``seed`` and the ``n`` single envs it must
    reproduce (single env ``i`` reset with ``seed + i``)."""
    import gymnasium as gym

    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    vec.reset(seed=seed)
    singles = [gym.make(env_id, **kwargs) for _ in range(n)]
    for i, env in enumerate(singles):
        env.reset(seed=seed + i)
    return vec, singles


@pytest.fixture
def vector_beside_single_envs():
    """Build a batched vector env and the single envs its sub-envs must match."""
    return _vector_beside_single_envs
