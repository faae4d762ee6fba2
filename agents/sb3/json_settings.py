"""Policy settings and spaces as JSON, read back without running or importing foreign code.

:func:`encode_setting` writes plain values, lists, dicts, tuples, enums and classes; classes are
named by their dotted path and :func:`decode_setting` resolves them only inside ``torch.nn``,
``torch.optim``, ``stable_baselines3`` and ``sb3_contrib``. :func:`space_to_json` describes Box,
Discrete, MultiDiscrete and MultiBinary spaces with exact bounds; :func:`space_from_sb3` recovers a
space from the readable attributes stable-baselines3 writes beside the pickled one.
"""

from __future__ import annotations

import importlib
import math
import re
from enum import Enum
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "UnsafePolicyFile", "decode_setting", "encode_setting", "resolve_class_repr", "space_from_json", "space_from_sb3",
    "space_to_json",
]

_SAFE_CLASS_ROOTS = ("torch.nn", "torch.optim", "stable_baselines3", "sb3_contrib")
_CLASS_REPR = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")


class UnsafePolicyFile(ValueError):
    """A policy file that cannot be read without running code from it (or is not a policy file)."""


def _resolve_class(name: str, where: str) -> type:
    module_name, _, attr = name.rpartition(".")
    if not module_name or not any(module_name == root or module_name.startswith(root + ".") for root in _SAFE_CLASS_ROOTS):
        raise UnsafePolicyFile(
            f"{where} names class {name!r}; policy files may name classes from {list(_SAFE_CLASS_ROOTS)} only, "
            "so that loading imports no other code. Pass the setting to load() yourself instead."
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnsafePolicyFile(f"{where} names class {name!r}, which does not exist here ({exc}).") from None
    if not isinstance(obj, type):
        raise UnsafePolicyFile(f"{where} names {name!r}, which is not a class.")
    return obj


def encode_setting(value: Any, where: str = "setting") -> Any:
    """``value`` as JSON: plain values, lists, string-keyed dicts, tuples, enums and allowed classes.

    Raises:
        ValueError: If ``value`` holds anything else (a function, an object, a class from
            elsewhere); the message names the setting.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return encode_setting(value.item(), where)
    if isinstance(value, Enum):
        return encode_setting(value.value, where)
    if isinstance(value, type):
        name = f"{value.__module__}.{value.__qualname__}"
        _resolve_class(name, where)  # only classes that load() will accept again
        return {"__class__": name}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_setting(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_setting(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) and not k.startswith("__") for k in value):
        return {k: encode_setting(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(
        f"{where} = {value!r} cannot be saved as JSON; SB3Agent files hold settings as JSON (numbers, strings, "
        f"lists, dicts, classes from {list(_SAFE_CLASS_ROOTS)}) so that loading them runs no code. Use such a value."
    )


def decode_setting(obj: Any, where: str = "setting") -> Any:
    """The inverse of :func:`encode_setting`; refuses classes outside the allowed packages."""
    if isinstance(obj, list):
        return [decode_setting(v, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__float__"} and obj["__float__"] in ("inf", "-inf", "nan"):
        return float(obj["__float__"])
    if set(obj) == {"__class__"} and isinstance(obj["__class__"], str):
        return _resolve_class(obj["__class__"], where)
    if set(obj) == {"__tuple__"} and isinstance(obj["__tuple__"], list):
        return tuple(decode_setting(v, where) for v in obj["__tuple__"])
    if any(k.startswith(("__", ":")) for k in obj):
        raise UnsafePolicyFile(f"{where} holds an entry of unknown form {sorted(obj)}; refusing it.")
    return {k: decode_setting(v, f"{where}[{k!r}]") for k, v in obj.items()}



def resolve_class_repr(text: str, where: str) -> type | None:
    """The class of a ``"<class 'module.Name'>"`` string (as SB3 writes one), else ``None``."""
    match = _CLASS_REPR.match(text)
    return _resolve_class(match.group(1), where) if match else None


# ------------------------------------------------------------------ spaces as JSON
def _floats(array: np.ndarray) -> list[Any]:
    return [encode_setting(float(v)) for v in np.asarray(array, dtype=np.float64).ravel()]


def space_to_json(space: spaces.Space[Any]) -> dict[str, Any]:
    """A JSON description of a Box, Discrete, MultiDiscrete or MultiBinary space (exact bounds)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), "low": _floats(space.low), "high": _floats(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise ValueError(f"SB3Agent files describe Box, Discrete, MultiDiscrete and MultiBinary spaces, not {space}.")


def space_from_json(obj: Any, where: str = "space") -> spaces.Space[Any]:
    """The space that :func:`space_to_json` described."""
    try:
        kind = obj["type"]
        if kind == "Box":
            shape = tuple(int(s) for s in obj["shape"])
            low = np.array([decode_setting(v) for v in obj["low"]], dtype=np.float64).reshape(shape)
            high = np.array([decode_setting(v) for v in obj["high"]], dtype=np.float64).reshape(shape)
            return spaces.Box(low.astype(obj["dtype"]), high.astype(obj["dtype"]), shape=shape, dtype=np.dtype(obj["dtype"]))
        if kind == "Discrete":
            return spaces.Discrete(int(obj["n"]), start=int(obj.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.array(obj["nvec"]), dtype=np.dtype(obj.get("dtype", "int64")), start=np.array(obj.get("start", 0)))
        if kind == "MultiBinary":
            return spaces.MultiBinary(obj["n"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafePolicyFile(f"{where} is not a valid space description ({exc}).") from None
    raise UnsafePolicyFile(f"{where} has unknown space type {obj.get('type')!r}; expected Box, Discrete, MultiDiscrete, MultiBinary.")


def _numbers(text: Any) -> np.ndarray | None:
    # SB3 writes str(array) beside a pickled space: "[0. 1. inf]"; "..." means numpy summarised it.
    if not isinstance(text, str) or "..." in text:
        return None
    try:
        return np.array([float(t) for t in text.replace("[", " ").replace("]", " ").split()], dtype=np.float64)
    except ValueError:
        return None


def space_from_sb3(entry: Any) -> spaces.Space[Any] | None:
    """A space from the readable attributes SB3 writes beside a pickled one, or ``None``."""
    if not isinstance(entry, dict):
        return None
    kind = str(entry.get(":type:", "")).rstrip("'>").rpartition(".")[2]
    try:
        if kind == "Box":
            shape = tuple(int(s) for s in entry["_shape"])
            low, high = _numbers(entry.get("low")), _numbers(entry.get("high"))
            size = int(np.prod(shape))
            if low is None or high is None or low.size != size or high.size != size:
                return None
            dtype = np.dtype(entry["dtype"])
            return spaces.Box(low.reshape(shape).astype(dtype), high.reshape(shape).astype(dtype), shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
        if kind == "MultiDiscrete":
            nvec = _numbers(entry.get("nvec"))
            return None if nvec is None else spaces.MultiDiscrete(nvec.astype(np.int64), dtype=np.dtype(entry.get("dtype", "int64")))
        if kind == "MultiBinary":
            n = entry.get("n")
            return spaces.MultiBinary(int(n)) if isinstance(n, (int, str)) and str(n).isdigit() else None
    except (KeyError, TypeError, ValueError):
        return None
    return None

