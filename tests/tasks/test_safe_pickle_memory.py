"""A planted CIFAR batch can neither corrupt memory nor smuggle in data that does not fit CIFAR.

The unpickler builds arrays only from plain numeric dtypes over raw bytes that fit their shape; the
reader then checks shapes, dtypes and label ranges before any training starts. The memory cases run
in a child process, so a reader that did crash fails the test instead of killing the test run.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aees_gym.core.fileio import FileCheckError
from aees_gym.tasks import vision
from aees_gym.tasks.safe_pickle import UnsafePickleError, load_array_pickle


def _s(text: bytes) -> bytes:
    return (b"U" + bytes([len(text)]) if len(text) < 256 else b"T" + struct.pack("<i", len(text))) + text


def _array_pickle(dtype_name: bytes, shape: tuple[int, int], raw: bytes, dtype_state: bytes | None = None) -> bytes:
    """A protocol-2 pickle of ``{'data': <array>, 'labels': [0]}`` as numpy 1 writes it, with any dtype and bytes."""
    state = dtype_state or (b"(K\x03" + _s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb")
    dtype = b"cnumpy\ndtype\n" + _s(dtype_name) + b"K\x00K\x01\x87R" + state
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _s(b"b") + b"\x87R"
        + b"(K\x01J" + struct.pack("<i", shape[0]) + b"J" + struct.pack("<i", shape[1]) + b"\x86" + dtype + b"\x89"
        + _s(raw) + b"tb"
    )
    return b"\x80\x02}(" + _s(b"data") + array + _s(b"labels") + b"](K\x00eu."


_CHILD = """
import importlib.util, sys, types
root = sys.argv[1]
for name in ("aees_gym", "aees_gym.core", "aees_gym.tasks"):  # the package's __init__ would load torch (seconds)
    sys.modules[name] = types.ModuleType(name)
for name, file in (("aees_gym.core.fileio", "core/fileio.py"), ("aees_gym.tasks.safe_pickle", "tasks/safe_pickle.py")):
    spec = importlib.util.spec_from_file_location(name, root + "/" + file)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
for path in sys.argv[2:]:
    try:
        value = module.load_array_pickle(path)
        print("LOADED", repr(value)[:100].replace(chr(10), " "), flush=True)
    except Exception as exc:
        print("REFUSED", type(exc).__name__, exc, flush=True)
"""


def _load_in_child(paths: list[Path]) -> list[str]:
    """What loading each of ``paths`` gives, one line each, read in one child process that must not crash."""
    root = str(Path(vision.__file__).resolve().parents[1])
    child = subprocess.run([sys.executable, "-c", _CHILD, root, *map(str, paths)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert child.returncode == 0, f"the reader crashed (exit {child.returncode}): {child.stdout[-300:]} {child.stderr[-500:]}"
    lines = child.stdout.splitlines()
    assert len(lines) == len(paths), child.stdout
    return lines


_HAS_FIELDS = b"(K\x03" + _s(b"|") + b"N(" + _s(b"a") + b"tNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
# An object dtype whose flags deny it holds objects: numpy then copies the bytes in as pointers.
_NO_FLAGS = b"(K\x03" + _s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"


def test_object_and_structured_arrays_over_raw_bytes_are_refused_without_touching_memory(tmp_path: Path) -> None:
    # Eight bytes per element read as PyObject pointers: numpy would dereference 0x4141414141414141.
    cases = {
        "object": (_array_pickle(b"O8", (1, 4), b"A" * 32), "dtype 'O8' is not a plain numeric dtype"),
        "object, flags cleared": (_array_pickle(b"O8", (1, 4), b"A" * 32, _NO_FLAGS), "dtype 'O8' is not a plain numeric dtype"),
        "void": (_array_pickle(b"V8", (1, 4), b"A" * 32), "dtype 'V8' is not a plain numeric dtype"),
        "fields": (_array_pickle(b"u1", (1, 8), b"A" * 8, _HAS_FIELDS), "the dtype has fields or a sub-array"),
        "string": (_array_pickle(b"S8", (1, 1), b"A" * 8), "dtype 'S8' is not a plain numeric dtype"),
    }
    paths = []
    for name, (data, _) in cases.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    for line, (name, (_, message)) in zip(_load_in_child(paths), cases.items(), strict=True):
        assert line.startswith("REFUSED UnsafePickleError") and message in line and "refusing to unpickle" in line, (name, line)


@pytest.mark.parametrize(("shape", "raw", "message"), [
    ((2, 3072), b"\x00" * 10, "array data has 10 bytes; shape (2, 3072) of uint8 needs 6144"),
    ((2**31 - 1, 2**31 - 1), b"\x00" * 16, "needs 4611686014132420609"),
])
def test_data_that_does_not_fit_its_shape_is_refused(tmp_path: Path, shape: tuple[int, int], raw: bytes, message: str) -> None:
    path = tmp_path / "batch"
    path.write_bytes(_array_pickle(b"u1", shape, raw, b"(K\x03" + _s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"))
    with pytest.raises(UnsafePickleError, match=r"not a plain CIFAR batch: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_array_pickle(path)


def _batch(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], **fields}, protocol=2))
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ({"labels": [0, 10]}, r"'labels' holds labels in \[0, 10\]; CIFAR's are in \[0, 9\]\. Extract the official archive again"),
    ({"labels": [-1, 0]}, r"'labels' holds labels in \[-1, 0\]"),
    ({"labels": [0]}, r"'labels' has 1 labels for 2 images"),
    ({"labels": ["0", "1"]}, r"'labels' must be a list of integer class labels"),
    ({"data": np.zeros((2, 3072), np.float64)}, r"'data' must be a uint8 array of shape \(N, 3072\), got a float64 array"),
    ({"data": np.zeros((2, 100), np.uint8)}, r"'data' must be a uint8 array of shape \(N, 3072\), got a uint8 array of shape \(2, 100\)"),
    ({"data": [1, 2, 3]}, r"'data' must be a uint8 array .* got a list"),
    ({"coarse_labels": [0, 20]}, r"'coarse_labels' holds labels in \[0, 20\]; CIFAR's are in \[0, 19\]"),
])
def test_the_loaded_batch_is_checked_before_training(tmp_path: Path, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vision._read_batches([_batch(tmp_path, **fields)], "labels")


def test_a_fifo_in_place_of_a_batch_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    os.mkfifo(path)
    with pytest.raises(FileCheckError, match="is a pipe, socket or device, not a regular file"):
        load_array_pickle(path)


def test_a_real_batch_still_reads(tmp_path: Path) -> None:
    x, y, coarse = vision._read_batches([_batch(tmp_path, coarse_labels=[3, 19])], "labels")
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8 and y.tolist() == [0, 1] and coarse.tolist() == [3, 19]
