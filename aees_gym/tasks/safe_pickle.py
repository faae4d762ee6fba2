"""Read the CIFAR python batches with an unpickler that admits only what those files contain.

The official ``cifar-10-batches-py`` / ``cifar-100-python`` files are pickles: a dict of strings,
label lists and one uint8 ``numpy`` array. A plain ``pickle.load`` of a planted file would run any
callable the file names, so :func:`load_array_pickle` resolves only the globals that rebuild
numpy arrays, dtypes and scalars (as numpy 1 and 2 and Python 2 and 3 write them) and
``_codecs.encode`` for latin-1 text (Python 3's protocol-2 form of ``bytes``). Anything else is
refused before it is called.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "load_array_pickle"]


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle that names something other than numpy array reconstruction."""


def _numpy_function(module: str, name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; files name either, depending on who wrote them.
    for candidate in (module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"numpy has no {module}.{name} here")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"bytes encoded as {encoding!r}; CIFAR batches use latin1")
    return text.encode("latin1")


_NUMPY_FUNCTIONS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_FUNCTIONS:
            return _numpy_function(module, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise UnsafePickleError(
            f"the file names {module}.{name}; only numpy array reconstruction is allowed in a CIFAR batch"
        )


def load_array_pickle(path: Path) -> Any:
    """Unpickle ``path`` (latin1 for Python-2 strings, as torchvision reads CIFAR), admitting only arrays.

    Raises:
        UnsafePickleError: If the file names any other global (nothing it names is called).
    """
    with open(path, "rb") as f:
        try:
            return _ArrayUnpickler(f, encoding="latin1").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path} is not a plain CIFAR batch: {exc}; refusing to unpickle it.") from None
