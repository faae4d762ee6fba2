"""CIFAR batches are unpickled admitting only numpy array reconstruction: planted files run nothing."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aees_gym.tasks import vision
from aees_gym.tasks.safe_pickle import UnsafePickleError, load_array_pickle


def _s(text: bytes) -> bytes:
    """A Python-2 ``str`` as cPickle writes it (SHORT_BINSTRING, or BINSTRING when long)."""
    return (b"U" + bytes([len(text)]) if len(text) < 256 else b"T" + struct.pack("<i", len(text))) + text


def python2_cifar_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """The bytes of an official CIFAR-10 batch: Python 2 cPickle, protocol 2, numpy 1 globals.

    Keys and the pixel buffer are Python-2 ``str``; the array is ``numpy.core.multiarray._reconstruct``
    followed by ``ndarray.__setstate__((1, shape, dtype, False, raw))``, as numpy 1 wrote it.
    """
    rows, cols = images.shape
    dtype = b"cnumpy\ndtype\n" + _s(b"u1") + b"K\x00K\x01\x87R" + b"(K\x03" + _s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _s(b"b") + b"\x87R"
        + b"(K\x01" + b"M" + struct.pack("<H", rows) + b"M" + struct.pack("<H", cols) + b"\x86" + dtype + b"\x89"
        + _s(images.tobytes()) + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (
        b"\x80\x02}(" + _s(b"batch_label") + _s(b"training batch 1 of 5") + _s(b"data") + array
        + _s(b"labels") + label_list + _s(b"filenames") + b"](" + _s(b"a.png") + _s(b"b.png") + b"eu."
    )


class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_python2_cifar_batch_reads_as_the_real_files_do(tmp_path: Path) -> None:
    images = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(python2_cifar_batch(images, [3, 7]))
    reference = pickle.loads(path.read_bytes(), encoding="latin1")  # what torchvision's plain unpickling gives
    batch = vision._unpickle(path)
    assert batch["labels"] == reference["labels"] == [3, 7] and batch["batch_label"] == "training batch 1 of 5"
    np.testing.assert_array_equal(batch["data"], images)
    x, y, coarse = vision._read_batches([path], "labels")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 7] and coarse is None
    np.testing.assert_array_equal(x[1, 2].ravel(), images[1, 2048:])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_batches_written_by_python3_and_numpy2_read_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    batch = {b"data": images, b"fine_labels": [1, 2, 3], b"coarse_labels": [np.int64(0), 1, 2], b"batch_label": "x"}
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = vision._unpickle(path)
    np.testing.assert_array_equal(loaded["data"], images)
    assert loaded["fine_labels"] == [1, 2, 3] and [int(c) for c in loaded["coarse_labels"]] == [0, 1, 2]


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_planted_batch_is_refused_without_running(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [Payload(marker)]}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"names (io|builtins)\.open; only numpy array reconstruction is allowed"):
        vision._read_batches([path], "labels")
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: plain unpickling runs it
    assert marker.exists()


def test_only_the_array_globals_pass(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    for module, name in (("os", "system"), ("numpy", "load"), ("numpy.core.multiarray", "array"), ("_codecs", "decode")):
        path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(tR.")
        with pytest.raises(UnsafePickleError, match=f"names {module}.{name}"):
            load_array_pickle(path)
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(UnsafePickleError, match="'rot13'"):
        load_array_pickle(path)
    path.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="holds a list, not a dict"):
        vision._unpickle(path)
