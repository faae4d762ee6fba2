"""The RunResult schema: its constants, :class:`ResultFileError`, and validation of a result's data.

Kept apart from :mod:`aees_gym.suite.results` (the dataclass and file IO, which re-exports every
name here) so that readers of both result forms — loose files and the compact archive — build on
it without an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import MAX_JSON_DEPTH as MAX_JSON_DEPTH  # deepest JSON nesting read (re-exported)
from aees_gym.core.fileio import FileCheckError

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "error")
#: Fields that legitimately differ between two executions of the same spec (time and machine).
VOLATILE_FIELDS = ("runtime", "host")
#: Files in a results folder that are not run results (names starting with this are skipped).
RESERVED_PREFIX = "_"
#: A result file above this size is invalid (real ones are tens of kB; this bounds memory and time).
MAX_RESULT_BYTES = 64 * 2**20

# Keys every per-window log and every final_metrics of a finished run must carry.
WINDOW_KEYS = (
    "window", "action", "lr_index", "noise_index", "lr_multiplier", "noise_std", "candidate_name",
    "reward", "reward_terms", "loss_first", "loss_last", "loss_mean", "trend_bucket", "phase_bucket",
    "context_bucket", "steps_done", "diverged",
)
FINAL_METRIC_KEYS = (
    "val_accuracy", "val_loss", "best_val_accuracy", "final_train_loss", "steps_done", "windows",
    "total_reward", "diverged", "steps_to_target",
)


class ResultFileError(FileCheckError):
    """A result file (or archive line) that cannot be read: unparsable JSON or a field that breaks the schema."""


# --------------------------------------------------------------------------- validation
_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,), "run_id": (str,), "suite": (str,), "task": (str,), "task_label": (str,),
    "env_id": (str,), "agent": (str,), "agent_label": (str,), "seed": (int,), "status": (str,),
    "sweep": (dict,), "env_overrides": (dict,), "agent_kwargs": (dict,), "training": (dict, type(None)),
    "model_path": (str, type(None)), "error": (dict, type(None)), "config": (dict, type(None)),
    "windows": (list,), "agent_states": (list,), "eval_curve": (list,), "final_metrics": (dict, type(None)),
    "runtime": (dict,), "host": (dict,),
}


def validate_result_dict(data: Any, source: Path | str = "<data>") -> None:
    """Raise :class:`ResultFileError` naming ``source`` and the field if ``data`` breaks the schema."""
    if not isinstance(data, Mapping):
        raise ResultFileError(source, None, f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultFileError(source, "schema_version", f"is {version!r}; this aees_gym reads version {SCHEMA_VERSION}")
    for name, types in _TYPES.items():
        if name not in data:
            raise ResultFileError(source, name, "is missing")
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ResultFileError(source, name, f"must be {expected}, got {type(value).__name__}")
    unknown = set(data) - set(_TYPES)
    if unknown:
        raise ResultFileError(source, sorted(unknown)[0], f"is not a RunResult field; valid fields: {sorted(_TYPES)}")
    if data["status"] not in STATUSES:
        raise ResultFileError(source, "status", f"is {data['status']!r}; valid statuses: {list(STATUSES)}")
    if data["status"] == "error":
        if not data["error"] or not isinstance(data["error"].get("message"), str):
            raise ResultFileError(source, "error", "an error run needs error.message")
        return
    if data["final_metrics"] is None:
        raise ResultFileError(source, "final_metrics", f"is null but status is {data['status']!r}")
    _require_keys(source, "final_metrics", data["final_metrics"], FINAL_METRIC_KEYS)
    for i, window in enumerate(data["windows"]):
        if not isinstance(window, Mapping):
            raise ResultFileError(source, f"windows[{i}]", "must be an object")
        _require_keys(source, f"windows[{i}]", window, WINDOW_KEYS)
    for i, point in enumerate(data["eval_curve"]):
        if not isinstance(point, Mapping) or not isinstance(point.get("step"), int):
            raise ResultFileError(source, f"eval_curve[{i}]", "must be an object with an integer 'step'")
    _validate_values(source, data)


# Value rules of a finished run: name → (nullable, minimum, maximum, integer). Every number the
# report and the plots read is checked, so a bad value makes the file invalid (named, set aside)
# instead of being dropped from a mean or crashing a plot.
_Rule = tuple[bool, float | None, float | None, bool]
_FINAL_RULES: dict[str, _Rule] = {
    "val_accuracy": (False, 0.0, 1.0, False), "best_val_accuracy": (False, 0.0, 1.0, False),
    "val_loss": (True, None, None, False), "final_train_loss": (True, None, None, False),
    "steps_done": (False, 0, None, True), "windows": (False, 0, None, True), "total_reward": (False, None, None, False),
    "steps_to_target": (True, 0, None, False), "flops_per_step": (True, 0, None, False), "total_flops": (True, 0, None, False),
    "reward_val_accuracy": (True, 0.0, 1.0, False), "reward_val_loss": (True, None, None, False),
}
_WINDOW_RULES: dict[str, _Rule] = {
    "action": (False, 0, None, True), "lr_index": (False, 0, None, True), "noise_index": (False, 0, None, True),
    "lr_multiplier": (False, None, None, False), "noise_std": (False, None, None, False), "reward": (False, None, None, False),
    "loss_first": (True, None, None, False), "loss_last": (True, None, None, False), "loss_mean": (True, None, None, False),
    "steps_done": (False, 0, None, True), "momentum": (True, 0.0, 1.0, False), "frozen_fraction": (False, 0.0, 1.0, False),
}
_CURVE_RULES: dict[str, _Rule] = {"step": (False, 0, None, True), "val_accuracy": (False, 0.0, 1.0, False), "val_loss": (True, None, None, False)}


def _check_number(source: Path | str, name: str, value: Any, rule: _Rule) -> None:
    nullable, low, high, integer = rule
    if value is None and nullable:
        return
    kind = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise ResultFileError(source, name, f"must be {kind}{' or null' if nullable else ''}, got {value!r}")
    if not math.isfinite(value):
        raise ResultFileError(source, name, f"must be {kind}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ResultFileError(source, name, f"is {value!r}; valid range {bounds}")


def _check_rules(source: Path | str, prefix: str, values: Mapping[str, Any], rules: Mapping[str, _Rule]) -> None:
    for key, rule in rules.items():
        if key in values:
            _check_number(source, f"{prefix}.{key}", values[key], rule)


def _validate_values(source: Path | str, data: Mapping[str, Any]) -> None:
    """Types and ranges of the numbers of an ``ok`` or ``diverged`` run."""
    final = data["final_metrics"]
    _check_rules(source, "final_metrics", final, _FINAL_RULES)
    if not isinstance(final["diverged"], bool) or final["diverged"] != (data["status"] == "diverged"):
        raise ResultFileError(source, "final_metrics.diverged", f"is {final['diverged']!r} but status is {data['status']!r}")
    for i, window in enumerate(data["windows"]):
        if window["window"] != i or isinstance(window["window"], bool):
            raise ResultFileError(source, f"windows[{i}].window", f"is {window['window']!r}; windows are numbered from 0 in order")
        _check_rules(source, f"windows[{i}]", window, _WINDOW_RULES)
    for i, point in enumerate(data["eval_curve"]):
        _check_rules(source, f"eval_curve[{i}]", point, _CURVE_RULES)
    _check_number(source, "runtime.wall_clock_s", data["runtime"].get("wall_clock_s"), (False, 0, None, False))
    if "base_lr_multiplier" in data["sweep"]:
        _check_number(source, "sweep.base_lr_multiplier", data["sweep"]["base_lr_multiplier"], (False, 1e-300, None, False))
    config = data["config"]
    if config is None:
        raise ResultFileError(source, "config", f"is null but status is {data['status']!r}")
    _check_number(source, "config.total_steps", config.get("total_steps"), (False, 1, None, True))
    _check_number(source, "config.target_accuracy", config.get("target_accuracy"), (True, 0.0, 1.0, False))
    if "grid" in config:
        from aees_gym.core.grid import CandidateGrid

        try:
            CandidateGrid.from_dict(config["grid"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ResultFileError(source, "config.grid", f"is not a candidate grid ({exc})") from None


def _require_keys(source: Path | str, prefix: str, value: Mapping[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key not in value:
            raise ResultFileError(source, f"{prefix}.{key}", "is missing")
