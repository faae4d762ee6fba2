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


#: Most elements (Box), choices (Discrete) or sub-spaces a space in a file may have: a policy's layers
#: are sized by them, so an unchecked number would size an allocation.
MAX_SPACE_SIZE = 65536
_SPACE_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool")


def _space_dtype(value: Any) -> np.dtype[Any]:
    if value not in _SPACE_DTYPES:
        raise ValueError(f"dtype {str(value)[:40]!r} is not one of {list(_SPACE_DTYPES)}")
    return np.dtype(value)


def _space_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) > 8 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        raise ValueError(f"shape {str(value)[:60]} is not a list of at most 8 non-negative integers")
    if math.prod(value) > MAX_SPACE_SIZE:
        raise ValueError(f"shape {tuple(value)} has more than {MAX_SPACE_SIZE} elements")
    return tuple(value)


def _space_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value <= MAX_SPACE_SIZE:
        raise ValueError(f"{name} must be an integer in [1, {MAX_SPACE_SIZE}], got {str(value)[:40]}")
    return int(value)


def space_from_json(obj: Any, where: str = "space") -> spaces.Space[Any]:
    """The space that :func:`space_to_json` described, after checking its sizes (at most :data:`MAX_SPACE_SIZE`) and dtype."""
    fix = "; save the policy again with SB3Agent.save(), or pass the space to load()"
    if not isinstance(obj, dict):
        raise UnsafePolicyFile(f"{where} must be a JSON object describing a space, got {type(obj).__name__}{fix}.")
    try:
        kind = obj["type"]
        if kind == "Box":
            shape = _space_shape(obj["shape"])
            dtype = _space_dtype(obj["dtype"])
            bounds = []
            for key in ("low", "high"):
                values = obj[key]
                if not isinstance(values, list) or len(values) != math.prod(shape):
                    raise ValueError(f"{key} must be a list of {math.prod(shape)} numbers")
                bounds.append(np.array([decode_setting(v) for v in values], dtype=np.float64).reshape(shape))
            return spaces.Box(bounds[0].astype(dtype), bounds[1].astype(dtype), shape=shape, dtype=dtype)
        if kind == "Discrete":
            start = obj.get("start", 0)
            if isinstance(start, bool) or not isinstance(start, int):
                raise ValueError(f"start must be an integer, got {str(start)[:40]}")
            return spaces.Discrete(_space_count("n", obj["n"]), start=start)
        if kind == "MultiDiscrete":
            nvec = obj["nvec"]
            if not isinstance(nvec, list) or not 1 <= len(nvec) <= 64:
                raise ValueError("nvec must be a list of 1 to 64 integers")
            nvec = [_space_count("nvec[i]", n) for n in nvec]
            start = obj.get("start", 0)
            if not (isinstance(start, int) or (isinstance(start, list) and len(start) == len(nvec) and all(isinstance(x, int) for x in start))):
                raise ValueError("start must be an integer or a list of integers like nvec")
            return spaces.MultiDiscrete(np.array(nvec), dtype=_space_dtype(obj.get("dtype", "int64")), start=np.array(start))
        if kind == "MultiBinary":
            n = obj["n"]
            return spaces.MultiBinary(_space_shape(n) if isinstance(n, list) else _space_count("n", n))
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafePolicyFile(f"{where} is not a valid space description ({exc}){fix}.") from None
    raise UnsafePolicyFile(f"{where} has unknown space type {str(obj.get('type'))[:40]!r}; expected Box, Discrete, MultiDiscrete, MultiBinary.")


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
            shape = _space_shape(entry["_shape"])
            low, high = _numbers(entry.get("low")), _numbers(entry.get("high"))
            size = int(np.prod(shape))
            if low is None or high is None or low.size != size or high.size != size:
                return None
            dtype = _space_dtype(entry["dtype"])
            return spaces.Box(low.reshape(shape).astype(dtype), high.reshape(shape).astype(dtype), shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(_space_count("n", int(entry["n"])), start=int(entry.get("start", 0)))
        if kind == "MultiDiscrete":
            nvec = _numbers(entry.get("nvec"))
            if nvec is None or not 1 <= nvec.size <= 64 or not all(1 <= n <= MAX_SPACE_SIZE for n in nvec):
                return None
            return spaces.MultiDiscrete(nvec.astype(np.int64), dtype=_space_dtype(entry.get("dtype", "int64")))
        if kind == "MultiBinary":
            n = entry.get("n")
            return spaces.MultiBinary(_space_count("n", int(n))) if isinstance(n, (int, str)) and str(n).isdigit() else None
    except (KeyError, TypeError, ValueError):
        return None
    return None

