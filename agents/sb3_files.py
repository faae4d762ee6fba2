"""Read and write stable-baselines3 policy zips without unpickling anything from the file.

SB3's own ``load`` cloudpickles the ``:serialized:`` entries of the zip's ``data`` JSON (policy
class, spaces, schedules, buffers) before checking anything, so opening a file runs whatever code
it carries. Here a policy is rebuilt instead from JSON settings only:

* our saves carry ``aees_agent.json`` (format version 2): algorithm, policy name, ``policy_kwargs``
  and the constructor hyperparameters in a JSON form (:func:`encode_setting`), and both spaces
  (:func:`space_to_json`);
* a zip written by plain SB3 gives what its ``data`` JSON holds in readable form: plain-valued
  hyperparameters, ``policy_kwargs`` when JSON, and the spaces from the attribute strings SB3
  writes beside each pickled space. ``:serialized:`` payloads are never decoded.

The weights (``policy.pth``, ``policy.optimizer.pth``, ``pytorch_variables.pth``) are read with
``torch.load(..., weights_only=True)``, which admits tensors and plain containers only. Classes named
in a file (an activation function, an optimizer) are resolved only inside ``torch.nn``,
``torch.optim``, ``stable_baselines3`` and ``sb3_contrib``.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "PolicyFile", "decode_setting", "encode_setting", "model_settings", "plain_settings", "read_policy_zip",
    "rebuild_model", "space_from_json", "space_to_json",
]

META_NAME = "aees_agent.json"
META_FORMAT = "aees_gym.sb3_agent"
META_VERSION = 2
_SAFE_CLASS_ROOTS = ("torch.nn", "torch.optim", "stable_baselines3", "sb3_contrib")
_CLASS_REPR = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")
_CONSTANT_SCHEDULE = re.compile(r"^ConstantSchedule\(val=([-+0-9.eE]+|inf|-inf)\)$")
# Constructor arguments never taken from a file: the caller decides them, or they are objects.
_NOT_FROM_FILE = {"self", "policy", "env", "device", "policy_kwargs", "tensorboard_log", "_init_setup_model"}
# Training counters restored so that further training and its logs continue where the file left off.
_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")


class UnsafePolicyFile(ValueError):
    """A policy file that cannot be read without running code from it (or is not a policy file)."""


# ------------------------------------------------------------------ settings as JSON
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


def _space_from_sb3(entry: Any) -> spaces.Space[Any] | None:
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


# ------------------------------------------------------------------ the zip
@dataclass
class PolicyFile:
    """What a policy zip holds, read without unpickling: JSON parts and weight tensors."""

    path: Path
    data: dict[str, Any]
    meta: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    pytorch_variables: dict[str, Any] | None = None


def _load_weights(archive: zipfile.ZipFile, name: str, path: Path, device: str) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(archive.read(name)), map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafePolicyFile(
            f"{path}: {name} holds something other than plain tensors, so it is refused "
            f"(weights are read with torch.load(weights_only=True)): {first}"
        ) from None


def read_policy_zip(path: Path, device: str = "cpu") -> PolicyFile:
    """The JSON parts and weights of ``path``; nothing in it is unpickled or imported.

    Raises:
        UnsafePolicyFile: If ``path`` is not a zip, its JSON is malformed, or a ``.pth`` member
            holds anything but tensors.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            try:
                data = json.loads(archive.read("data")) if "data" in names else {}
                meta = json.loads(archive.read(META_NAME)) if META_NAME in names else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UnsafePolicyFile(f"{path} holds malformed JSON ({exc}).") from None
            file = PolicyFile(path, data if isinstance(data, dict) else {}, meta if isinstance(meta, dict) else {})
            for name in names:
                if not name.endswith(".pth"):
                    continue
                weights = _load_weights(archive, name, path, device)
                if name in ("pytorch_variables.pth", "tensors.pth"):
                    file.pytorch_variables = weights
                else:
                    file.params[name[: -len(".pth")]] = weights
    except zipfile.BadZipFile as exc:
        raise UnsafePolicyFile(f"{path} is not an SB3 policy zip ({exc}).") from None
    if file.meta.get("format") != META_FORMAT:
        file.meta = {}
    return file


# ------------------------------------------------------------------ settings of a model
def constructor_parameters(algorithm_class: type) -> set[str]:
    """Names the algorithm's constructor accepts that a file may set."""
    return set(inspect.signature(algorithm_class.__init__).parameters) - _NOT_FROM_FILE - {"args", "kwargs"}


def model_settings(model: Any, algo_kwargs: dict[str, Any], policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Everything :func:`rebuild_model` needs, as JSON (``aees_agent.json`` of our saves).

    Raises:
        ValueError: If a given setting cannot be written as JSON (the message names it).
    """
    hyper: dict[str, Any] = {}
    for name in sorted(constructor_parameters(type(model))):
        if name in algo_kwargs:
            hyper[name] = encode_setting(algo_kwargs[name], f"algo_kwargs[{name!r}]")
        elif hasattr(model, name):
            try:  # a value SB3 derived (a schedule object, a buffer class) is left at its default
                hyper[name] = encode_setting(getattr(model, name), name)
            except ValueError:
                pass
    return {
        "hyperparameters": hyper,
        "policy_kwargs": encode_setting(dict(policy_kwargs), "policy_kwargs"),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "n_envs": int(model.n_envs),
        "counters": {name: int(getattr(model, name)) for name in _COUNTERS if hasattr(model, name)},
    }


def _plain_policy_kwargs(entry: Any, path: Path) -> dict[str, Any] | None:
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        return None
    if ":serialized:" not in entry:
        return decode_setting(entry, "policy_kwargs")
    # SB3 pickled the dict because a value was not JSON, and wrote each first-level value beside it:
    # a class as "<class 'module.Name'>", JSON values as they are. Anything else cannot be recovered.
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key.startswith(":"):
            continue
        match = _CLASS_REPR.match(value) if isinstance(value, str) else None
        if match:
            out[key] = _resolve_class(match.group(1), f"{path} policy_kwargs[{key!r}]")
        elif isinstance(value, str):
            return None
        else:
            out[key] = decode_setting(value, f"policy_kwargs[{key!r}]")
    return out


def plain_settings(algorithm_class: type, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """What a plain SB3 zip's ``data`` JSON gives without unpickling (``None`` where it gives nothing)."""
    hyper: dict[str, Any] = {}
    for name in constructor_parameters(algorithm_class):
        value = data.get(name)
        if isinstance(value, dict) and ":serialized:" in value:
            match = _CONSTANT_SCHEDULE.match(str(value.get("value_schedule", "")))
            if match:  # a constant schedule (PPO's clip_range) is written readably beside its pickle
                hyper[name] = float(match.group(1))
            continue
        if name in data:
            try:
                hyper[name] = decode_setting(value, name)
            except UnsafePolicyFile:
                continue
    return {
        "hyperparameters": hyper,
        "policy_kwargs": _plain_policy_kwargs(data.get("policy_kwargs"), path),
        "observation_space": _space_from_sb3(data.get("observation_space")),
        "action_space": _space_from_sb3(data.get("action_space")),
        "n_envs": data.get("n_envs", 1) if isinstance(data.get("n_envs", 1), int) else 1,
        "counters": {name: data[name] for name in _COUNTERS if isinstance(data.get(name), int)},
    }


def rebuild_model(
    algorithm_class: type,
    policy: str,
    file: PolicyFile,
    *,
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    policy_kwargs: dict[str, Any],
    hyperparameters: dict[str, Any],
    n_envs: int,
    counters: dict[str, int],
    device: str,
) -> Any:
    """A fresh algorithm built from these settings, with the file's weights loaded strictly.

    Raises:
        UnsafePolicyFile: If the weights do not fit the rebuilt policy, or name other modules.
    """
    allowed = constructor_parameters(algorithm_class)
    hyper = {k: v for k, v in hyperparameters.items() if k in allowed}
    model = algorithm_class(policy, env=None, device=device, policy_kwargs=policy_kwargs or None, _init_setup_model=False, **hyper)
    model.observation_space, model.action_space, model.n_envs = observation_space, action_space, int(n_envs)
    model._setup_model()
    module_names, variable_names = model._get_torch_save_params()
    if set(file.params) != set(module_names):
        raise UnsafePolicyFile(f"{file.path} holds weights {sorted(file.params)}; a {algorithm_class.__name__} policy needs {sorted(module_names)}.")
    try:
        model.set_parameters(file.params, exact_match=True, device=device)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UnsafePolicyFile(
            f"{file.path}: the weights do not fit a {algorithm_class.__name__} {policy} with policy_kwargs={policy_kwargs} "
            f"on these spaces; pass the policy/policy_kwargs it was trained with. ({str(exc).splitlines()[0]})"
        ) from None
    for name, value in (file.pytorch_variables or {}).items():
        if name not in variable_names:
            raise UnsafePolicyFile(f"{file.path}: pytorch_variables names {name!r}; expected some of {variable_names}.")
        if value is not None:
            target = model
            for part in name.split("."):
                target = getattr(target, part)
            target.data = value.data
    for name, value in counters.items():
        if name in _COUNTERS and isinstance(value, int):
            setattr(model, name, value)
    if model.use_sde:
        model.policy.reset_noise()
    return model
