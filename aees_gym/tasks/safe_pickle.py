"""Read the CIFAR python batches with an unpickler that admits only what those files contain.

The official ``cifar-10-batches-py`` / ``cifar-100-python`` files are pickles: a dict of strings,
label lists and one uint8 ``numpy`` array. A plain ``pickle.load`` of a planted file would run any
callable the file names, so :func:`load_array_pickle` resolves only the globals that rebuild
numpy arrays, dtypes and scalars (as numpy 1 and 2 and Python 2 and 3 write them) and
``_codecs.encode`` for latin-1 text (Python 3's protocol-2 form of ``bytes``). Anything else is
refused before it is called.

Even numpy's own reconstruction functions are never handed the file's arguments: a planted
``ndarray.__setstate__`` with an object dtype over raw bytes makes numpy read pointers from the
file (a segmentation fault, or worse). So the globals resolve to stand-ins that record what the
file asks for, and an array is built only after its state is checked: a plain numeric dtype
(bool, int, uint, float; no objects, strings or fields), a shape of non-negative ints, and a byte
string whose length is exactly ``prod(shape) * itemsize``. The array is then a copy made with
``np.frombuffer``, which never interprets bytes as pointers.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core.fileio import read_bytes_checked

__all__ = ["MAX_PICKLE_BYTES", "UnsafePickleError", "load_array_pickle"]

#: Largest batch file read (CIFAR-100's ``train`` is about 155 MB).
MAX_PICKLE_BYTES = 512 * 2**20
#: Deepest container nesting a batch may have (real ones: a dict of lists).
_MAX_DEPTH = 8
#: The dtypes a CIFAR batch (or a numpy scalar in its label lists) can use.
_NUMERIC_DTYPES = frozenset(
    f"{kind}{size}" for kind, sizes in (("b", (1,)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (2, 4, 8))) for size in sizes
)


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle that names something other than plain numeric array reconstruction."""


class _NdarrayName:
    """Stands for ``numpy.ndarray`` in a file: an argument of ``_reconstruct``, never callable itself."""


_NDARRAY = _NdarrayName()


class _Dtype:
    """What ``numpy.dtype(name, align, copy)`` plus its ``__setstate__`` ask for, checked before use."""

    name: str | None = None  # also when a file builds one with NEWOBJ, which skips __init__
    byteorder = "="

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(name, bytes):
            name = name.decode("latin1")
        if not isinstance(name, str) or name not in _NUMERIC_DTYPES:
            raise UnsafePickleError(
                f"dtype {name!r} is not a plain numeric dtype (one of {sorted(_NUMERIC_DTYPES)}); "
                "object, string and structured arrays are refused"
            )
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 5:
            raise UnsafePickleError(f"dtype state {state!r:.80} is not numpy's")
        byteorder, subarray, names, fields = state[1], state[2], state[3], state[4]
        if subarray is not None or names is not None or fields is not None:
            raise UnsafePickleError("the dtype has fields or a sub-array; only plain numeric dtypes are allowed")
        if byteorder not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"dtype byte order {byteorder!r} is not one of '<', '>', '|', '='")
        self.byteorder = byteorder

    def resolve(self) -> np.dtype[Any]:
        if self.name is None:
            raise UnsafePickleError("a dtype without a name")
        dtype = np.dtype(self.name)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in ("<", ">") else dtype


def _dtype_of(value: Any) -> np.dtype[Any]:
    if not isinstance(value, _Dtype):
        raise UnsafePickleError(f"an array's dtype is a {type(value).__name__}, not a numpy dtype")
    return value.resolve()


def _shape_of(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > 8 or not all(type(n) is int and n >= 0 for n in value):
        raise UnsafePickleError(f"array shape {value!r:.80} is not a tuple of at most 8 non-negative ints")
    return value


def _array_from(raw: Any, dtype: np.dtype[Any], shape: tuple[int, ...], order: str = "C") -> np.ndarray:
    if isinstance(raw, pickle.PickleBuffer):
        raw = bytes(raw.raw())
    elif isinstance(raw, str):  # a Python-2 str read with encoding="latin1", as numpy itself accepts it
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes | bytearray):
        raise UnsafePickleError(f"array data is a {type(raw).__name__}, not raw bytes (object arrays are refused)")
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise UnsafePickleError(f"array data has {len(raw)} bytes; shape {shape} of {dtype} needs {need}")
    if order not in ("C", "F"):
        raise UnsafePickleError(f"array order {order!r} is not 'C' or 'F'")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy()


class _Array:
    """What ``_reconstruct`` plus ``ndarray.__setstate__`` ask for; the array is built by :meth:`__setstate__`."""

    array: np.ndarray | None = None

    def __init__(self, subtype: Any = None, shape: Any = None, typecode: Any = None) -> None:
        if subtype is not _NDARRAY:
            raise UnsafePickleError(f"only numpy.ndarray may be reconstructed, not {subtype!r:.80}")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError(f"array state {state!r:.80} is not numpy's")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _array_from(raw, _dtype_of(dtype), _shape_of(shape), "F" if fortran is True else "C")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array_from(buf, _dtype_of(dtype), _shape_of(shape), order)


def _scalar(dtype: Any, raw: Any = None) -> Any:
    resolved = _dtype_of(dtype)
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes) or len(raw) != resolved.itemsize:
        raise UnsafePickleError(f"a {resolved} scalar needs {resolved.itemsize} raw bytes")
    return np.frombuffer(raw, dtype=resolved)[0]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"bytes encoded as {encoding!r}; CIFAR batches use latin1")
    if not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode of a {type(text).__name__}; CIFAR batches encode text")
    return text.encode("latin1")


_GLOBALS: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Dtype, ("_codecs", "encode"): _latin1_encode}
for _core in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _Array
    _GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    _GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"the file names {module}.{name}; only numpy array reconstruction is allowed in a CIFAR batch"
            ) from None


def _resolved(value: Any, depth: int = 0) -> Any:
    """``value`` with every stand-in replaced by its array; containers other than plain ones are refused."""
    if depth > _MAX_DEPTH:
        raise UnsafePickleError(f"containers nest deeper than {_MAX_DEPTH} levels")
    if isinstance(value, _Array):
        if value.array is None:
            raise UnsafePickleError("an array without its data")
        return value.array
    if isinstance(value, _Dtype):
        return value.resolve()
    if isinstance(value, dict):
        return {_resolved(k, depth + 1): _resolved(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_resolved(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, bool | int | float | str | bytes | np.generic | np.ndarray):
        return value
    raise UnsafePickleError(f"a {type(value).__name__} is not something a CIFAR batch holds")


def load_array_pickle(path: Path) -> Any:
    """Unpickle ``path`` (latin1 for Python-2 strings, as torchvision reads CIFAR), admitting only arrays.

    Raises:
        UnsafePickleError: If the file names any other global (nothing it names is called), or its
            arrays are not plain numeric arrays whose data fits their shape.
        FileCheckError: If ``path`` is not a regular file or is larger than :data:`MAX_PICKLE_BYTES`.
    """
    raw = read_bytes_checked(path, max_bytes=MAX_PICKLE_BYTES, what="a CIFAR batch")
    try:
        return _resolved(_ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load())
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path} is not a plain CIFAR batch: {exc}; refusing to unpickle it.") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise UnsafePickleError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}: {exc}); "
                                "extract the official archive again.") from None

