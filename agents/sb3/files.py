"""Read and write stable-baselines3 policy zips without unpickling anything from the file.

SB3's own ``load`` cloudpickles the ``:serialized:`` entries of the zip's ``data`` JSON (policy
class, spaces, schedules, buffers) before checking anything, so opening a file runs whatever code
it carries. Here a policy is rebuilt instead from JSON settings only:

* our saves carry ``aees_agent.json`` (format version 2): algorithm, policy name, ``policy_kwargs``
  and the constructor hyperparameters in a JSON form (:func:`agents.sb3.json_settings.encode_setting`), and
  both spaces (:func:`agents.sb3.json_settings.space_to_json`);
* a zip written by plain SB3 gives what its ``data`` JSON holds in readable form: plain-valued
  hyperparameters, ``policy_kwargs`` when JSON, and the spaces from the attribute strings SB3
  writes beside each pickled space. ``:serialized:`` payloads are never decoded.

The weights (``policy.pth``, ``policy.optimizer.pth``, ``pytorch_variables.pth``) are read with
``torch.load(..., weights_only=True)``, which admits tensors and plain containers only. Classes named
in a file (an activation function, an optimizer) are resolved only inside ``torch.nn``,
``torch.optim``, ``stable_baselines3`` and ``sb3_contrib``.
"""

from __future__ import annotations

import inspect
import io
import math
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gymnasium import spaces

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, parse_json_checked, read_bytes_checked
from agents.sb3.json_settings import (
    UnsafePolicyFile,
    decode_setting,
    encode_setting,
    resolve_class_repr,
    space_from_json,
    space_from_sb3,
    space_to_json,
)

__all__ = [
    "PolicyFile", "UnsafePolicyFile", "agent_metadata", "file_settings", "load_settings", "model_settings", "plain_settings",
    "read_policy_zip", "rebuild_model",
]

META_NAME = "aees_agent.json"
META_FORMAT = "aees_gym.sb3_agent"
META_VERSION = 2
_CONSTANT_SCHEDULE = re.compile(r"^ConstantSchedule\(val=([-+0-9.eE]+|inf|-inf)\)$")
# Constructor arguments never taken from a file: the caller decides them, or they are objects.
_NOT_FROM_FILE = {"self", "policy", "env", "device", "policy_kwargs", "tensorboard_log", "_init_setup_model"}
# Training counters restored so that further training and its logs continue where the file left off.
_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")


# ------------------------------------------------------------------ the zip
@dataclass
class PolicyFile:
    """What a policy zip holds, read without unpickling: JSON parts and weight tensors."""

    path: Path
    data: dict[str, Any]
    meta: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    pytorch_variables: dict[str, Any] | None = None


def _load_weights(raw: bytes, name: str, path: Path, device: str) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafePolicyFile(
            f"{path}: {name} holds something other than plain tensors, so it is refused "
            f"(weights are read with torch.load(weights_only=True)): {first}"
        ) from None


#: Largest policy zip read (ours are tens of kB to a few MB).
MAX_ZIP_BYTES = 256 * 2**20
#: Largest member of a policy zip, checked in its header before it is decompressed.
MAX_MEMBER_BYTES = 256 * 2**20


def _member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise UnsafePolicyFile(f"{path}: member {name!r} unpacks to {info.file_size} bytes, more than the {MAX_MEMBER_BYTES} "
                               "a policy file may hold; it is not an SB3 policy zip. Save the policy again with SB3Agent.save().")
    return archive.read(name)


def _json_member(archive: zipfile.ZipFile, name: str, path: Path) -> dict[str, Any]:
    try:
        value = parse_json_checked(_member(archive, name, path), path, field_name=name)
    except FileCheckError as exc:
        raise UnsafePolicyFile(f"{path} holds malformed JSON in {name!r} ({exc.reason}); save the policy again with SB3Agent.save().") from None
    return value if isinstance(value, dict) else {}


def read_policy_zip(path: Path, device: str = "cpu") -> PolicyFile:
    """The JSON parts and weights of ``path``; nothing in it is unpickled or imported.

    ``path`` must be a regular file of at most :data:`MAX_ZIP_BYTES`; each member is checked against
    :data:`MAX_MEMBER_BYTES` before it is unpacked, and its JSON against the nesting cap of
    :func:`aees_gym.core.fileio.parse_json_checked`.

    Raises:
        UnsafePolicyFile: If ``path`` is not a zip, its JSON is malformed, or a ``.pth`` member
            holds anything but tensors.
    """
    try:
        raw = read_bytes_checked(path, max_bytes=MAX_ZIP_BYTES, what="an SB3 policy zip")
    except FileCheckError as exc:
        raise UnsafePolicyFile(str(exc)) from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            data = _json_member(archive, "data", path) if "data" in names else {}
            meta = _json_member(archive, META_NAME, path) if META_NAME in names else {}
            file = PolicyFile(path, data, meta)
            for name in names:
                if not name.endswith(".pth"):
                    continue
                weights = _load_weights(_member(archive, name, path), name, path, device)
                if name in ("pytorch_variables.pth", "tensors.pth"):
                    file.pytorch_variables = weights
                else:
                    file.params[name[: -len(".pth")]] = weights
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
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


def agent_metadata(
    model: Any, algo: str, policy: str, deterministic: bool, algo_kwargs: dict[str, Any], policy_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The ``aees_agent.json`` of an SB3Agent: its constructor arguments and :func:`model_settings`."""
    return {
        "format": META_FORMAT, "version": META_VERSION, "algo": algo, "policy": policy, "deterministic": deterministic,
        "algo_kwargs": {k: encode_setting(v, f"algo_kwargs[{k!r}]") for k, v in algo_kwargs.items()},
        **model_settings(model, algo_kwargs, policy_kwargs),
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
        cls = resolve_class_repr(value, f"{path} policy_kwargs[{key!r}]") if isinstance(value, str) else None
        if cls is not None:
            out[key] = cls
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
        "observation_space": space_from_sb3(data.get("observation_space")),
        "action_space": space_from_sb3(data.get("action_space")),
        "n_envs": data.get("n_envs", 1) if isinstance(data.get("n_envs", 1), int) else 1,
        "counters": {name: data[name] for name in _COUNTERS if isinstance(data.get(name), int)},
    }


#: Hyperparameters that size an allocation (buffers, batches), with the largest value a file may give.
_SIZE_LIMITS = {"buffer_size": 10**7, "n_steps": 10**6, "batch_size": 10**6, "n_epochs": 10**4, "learning_starts": 10**9}
#: Most envs a policy file may say it was trained with (SB3 sizes rollout buffers by it).
MAX_N_ENVS = 4096
# A float setting that may legitimately be infinite (no clipping).
_MAY_BE_INFINITE = {"max_grad_norm"}


def _checked_settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """``settings`` after checking every number from the file that sizes memory or steers training."""
    fix = "; save the policy again with SB3Agent.save(), or pass the setting in algo_kwargs="
    try:
        settings["n_envs"] = checks.integer("n_envs", settings["n_envs"], minimum=1, maximum=MAX_N_ENVS)
        for name, value in settings["counters"].items():
            settings["counters"][name] = checks.non_negative_int(f"counters[{name!r}]", value)
        for name, value in settings["hyperparameters"].items():
            if name in _SIZE_LIMITS:
                settings["hyperparameters"][name] = checks.integer(name, value, minimum=1, maximum=_SIZE_LIMITS[name])
            elif isinstance(value, float) and not (math.isfinite(value) or (name in _MAY_BE_INFINITE and value > 0)):
                raise ValueError(f"{name} must be a finite number, got {value}")
    except (TypeError, ValueError) as exc:
        raise UnsafePolicyFile(f"{where}: {exc}{fix}.") from None
    return settings


def file_settings(algorithm_class: type, file: PolicyFile) -> dict[str, Any]:
    """The settings :func:`rebuild_model` needs, from our ``aees_agent.json`` or a plain SB3 ``data`` JSON.

    Raises:
        UnsafePolicyFile: If a setting is missing, of the wrong type, or out of range (sizes, counters, NaN).
    """
    return _checked_settings(_file_settings(algorithm_class, file), str(file.path))


def _file_settings(algorithm_class: type, file: PolicyFile) -> dict[str, Any]:
    """The settings :func:`rebuild_model` needs, from our ``aees_agent.json`` or a plain SB3 ``data`` JSON."""
    meta, where = file.meta, str(file.path)
    version = meta.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UnsafePolicyFile(f"{where}: {META_NAME} field 'version' must be an integer, got {str(version)[:40]!r}; "
                               "save the policy again with SB3Agent.save().")
    if version < META_VERSION:  # plain SB3, or our first format that recorded only the algo
        return {**plain_settings(algorithm_class, file.data, file.path), "algo_kwargs": {}}
    try:
        return {
            "hyperparameters": decode_setting(meta["hyperparameters"], f"{where} hyperparameters"),
            "policy_kwargs": decode_setting(meta["policy_kwargs"], f"{where} policy_kwargs"),
            "algo_kwargs": decode_setting(meta.get("algo_kwargs", {}), f"{where} algo_kwargs"),
            "observation_space": space_from_json(meta["observation_space"], f"{where} observation_space"),
            "action_space": space_from_json(meta["action_space"], f"{where} action_space"),
            "n_envs": meta["n_envs"],
            "counters": dict(meta.get("counters", {})),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafePolicyFile(f"{where}: {META_NAME} lacks or garbles {exc}; save the policy again with SB3Agent.save().") from None


def load_settings(
    algorithm_class: type, file: PolicyFile, kwargs: dict[str, Any], given_spaces: dict[str, spaces.Space[Any] | None]
) -> dict[str, Any]:
    """The file's settings with the caller's: fills ``kwargs`` (constructor arguments) in place.

    Raises:
        ValueError: If a setting the file holds only pickled is not given (names the argument).
    """
    settings = file_settings(algorithm_class, file)
    if "policy_kwargs" not in kwargs and settings["policy_kwargs"] is None:
        raise ValueError(
            f"{file.path} stores its policy_kwargs only pickled, and loading never unpickles; "
            "pass policy_kwargs= (the ones it was trained with)."
        )
    kwargs.setdefault("policy_kwargs", settings["policy_kwargs"])
    kwargs.setdefault("algo_kwargs", settings["algo_kwargs"])
    kwargs.setdefault("deterministic", file.meta.get("deterministic", True))
    kwargs.setdefault("policy", file.meta.get("policy"))
    for key, value in given_spaces.items():
        settings[key] = value if value is not None else settings[key]
        if settings[key] is None:
            raise ValueError(
                f"{file.path} describes its {key} only pickled, and loading never unpickles; "
                f"pass {key}= (e.g. env.{key} of the env the policy was trained on)."
            )
    return settings


def rebuild_model(
    algorithm_class: type,
    policy: str,
    file: PolicyFile,
    settings: dict[str, Any],
    policy_kwargs: dict[str, Any],
    algo_kwargs: dict[str, Any],
    device: str,
) -> Any:
    """A fresh algorithm built from ``settings`` (:func:`load_settings`), with the file's weights loaded strictly.

    ``algo_kwargs`` override the file's hyperparameters.

    Raises:
        UnsafePolicyFile: If the weights do not fit the rebuilt policy, or name other modules.
    """
    hyperparameters = {**settings["hyperparameters"], **{k: v for k, v in algo_kwargs.items() if k != "device"}}
    observation_space, action_space = settings["observation_space"], settings["action_space"]
    n_envs, counters = settings["n_envs"], settings["counters"]
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
