"""RunResult: the record of one suite run, its JSON schema, atomic IO and validation on load.

One run (task × agent × seed, see :class:`aees_gym.suite.RunSpec`) is one JSON file
``<results_dir>/<suite>/<run_id>.json``. Every field is documented in ``docs/results-schema.md``.
Files are written atomically (temporary file in the same folder, then ``os.replace``), so a killed
process leaves either the complete old file, the complete new one, or none. JSON is strict: a
non-finite float (a diverged loss) is written as ``null``.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import atomic_write_text, dumps_json, json_safe

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "error")
#: Fields that legitimately differ between two executions of the same spec (time and machine).
VOLATILE_FIELDS = ("runtime", "host")
#: Files in a results folder that are not run results (names starting with this are skipped).
RESERVED_PREFIX = "_"
#: A result file above this size is invalid (real ones are tens of kB; this bounds memory and time).
MAX_RESULT_BYTES = 64 * 2**20
#: Deepest JSON nesting a result file may have (real ones nest about 6 levels; the parser recurses).
MAX_JSON_DEPTH = 64

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


class ResultFileError(ValueError):
    """A result file that cannot be read: unparsable JSON or a field that breaks the schema."""

    def __init__(self, path: Path | str, field_name: str | None, reason: str) -> None:
        self.path = Path(path)
        self.field = field_name
        self.reason = reason
        where = f"field {field_name!r}: " if field_name else ""
        super().__init__(f"{self.path}: {where}{reason}")


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced; see ``docs/results-schema.md`` for each field."""

    run_id: str
    suite: str
    task: str
    task_label: str
    env_id: str
    agent: str
    agent_label: str
    seed: int
    status: str
    sweep: dict[str, Any] = field(default_factory=dict)
    env_overrides: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    model_path: str | None = None
    error: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    agent_states: list[dict[str, Any]] = field(default_factory=list)
    eval_curve: list[dict[str, Any]] = field(default_factory=list)
    final_metrics: dict[str, Any] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite floats become ``None``."""
        return json_safe(asdict(self))

    def content(self) -> dict[str, Any]:
        """The fields that must be identical for the same spec on any executor or machine.

        Everything but ``runtime`` and ``host``, with ``model_path`` reduced to its file name (the
        results folder may sit elsewhere on another machine).
        """
        data = {k: v for k, v in self.to_dict().items() if k not in VOLATILE_FIELDS}
        if data["model_path"] is not None:
            data["model_path"] = Path(data["model_path"]).name
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | str = "<data>") -> RunResult:
        """Validate ``data`` against the schema and build the result.

        Raises:
            ResultFileError: Naming ``source`` and the first offending field.
        """
        validate_result_dict(data, source)
        return cls(**{f.name: data[f.name] for f in fields(cls)})


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


# --------------------------------------------------------------------------- IO
def result_path(directory: Path | str, run_id: str) -> Path:
    return Path(directory) / f"{run_id}.json"


def write_result(result: RunResult, directory: Path | str) -> Path:
    """Atomically write ``result`` as ``<directory>/<run_id>.json``."""
    return atomic_write_text(result_path(directory, result.run_id), dumps_json(result.to_dict()))


class _BadNumber(ValueError):
    pass


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"number {text[:40]!r} is too large for a float")
    return value


def _parse_int(text: str) -> int:
    try:
        value = int(text)  # Python refuses over 4,300 digits with ValueError
        float(value)
    except (ValueError, OverflowError):
        raise _BadNumber(f"integer of {len(text)} digits is too large for a float") from None
    return value


def _parse_constant(text: str) -> Any:
    raise _BadNumber(f"{text} is not valid in strict JSON (non-finite numbers are stored as null)")


# Possessive quantifiers (Python 3.11+): no backtracking, linear even in escape-heavy strings.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``raw`` JSON nests brackets deeper than ``limit`` (a linear scan: no recursion, no parse)."""
    import numpy as np

    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(brackets), 1 << 20):  # chunks bound the memory of the running sum
        chunk = np.frombuffer(brackets[start:start + (1 << 20)], dtype=np.uint8)
        running = depth + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1))
        if running.max(initial=depth) > limit:
            return True
        depth = int(running[-1])
    return False


def read_json_file(path: Path | str, *, max_bytes: int = MAX_RESULT_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse one JSON file of a results folder, refusing anything that could stall or crash a reader.

    Only regular files are read (a FIFO, device or folder is refused without blocking), at most
    ``max_bytes``, nested at most ``max_depth`` deep (checked before parsing), strict JSON only: a
    number too large for a float, ``NaN`` or ``Infinity`` makes the file invalid.

    Raises:
        ResultFileError: Naming the file and the reason.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ResultFileError(path, None, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
            raise ResultFileError(path, None, f"is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise ResultFileError(path, None, f"is {info.st_size} bytes, larger than the {max_bytes} a result file may have")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ResultFileError(path, None, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:  # it grew while being read
        raise ResultFileError(path, None, f"is larger than the {max_bytes} bytes a result file may have")
    return parse_json_bytes(raw, path, max_depth=max_depth)


def parse_json_bytes(raw: bytes, source: Path | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON of one document (a result file, or one line of an archive), depth checked before parsing.

    Raises:
        ResultFileError: Naming ``source`` and the reason.
    """
    if json_depth_exceeds(raw, max_depth):
        raise ResultFileError(source, None, f"nests JSON deeper than {max_depth} levels")
    try:
        return json.loads(raw.decode("utf-8"), parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant)
    except _BadNumber as exc:
        raise ResultFileError(source, None, str(exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResultFileError(source, None, f"not readable as JSON ({exc})") from None


def read_result(path: Path | str) -> RunResult:
    """Load and validate one result file.

    Raises:
        ResultFileError: If the file is unreadable, not JSON, breaks the schema, or its ``run_id``
            does not match its file name.
    """
    path = Path(path)
    result = RunResult.from_dict(read_json_file(path), path)
    if result.run_id != path.stem:
        raise ResultFileError(path, "run_id", f"is {result.run_id!r} but the file is named {path.name!r}")
    return result


@dataclass(frozen=True)
class ResultScan:
    """What a results folder holds: valid results by run id, and the files that failed to load."""

    results: dict[str, RunResult]
    invalid: list[ResultFileError]

    @property
    def invalid_paths(self) -> list[Path]:
        return [error.path for error in self.invalid]


def result_files(directory: Path | str) -> list[Path]:
    """Run-result files of a suite folder, or of every suite folder one level below ``directory``."""
    root = Path(directory)
    files = list(root.glob("*.json")) + list(root.glob("*/*.json"))
    return sorted(p for p in files if not p.name.startswith((RESERVED_PREFIX, ".")) and p.parent.name not in ("models", "report", "tuning"))


def scan_results(directory: Path | str) -> ResultScan:
    """Load every result of a suite folder, or of every suite folder one level below ``directory``.

    Both forms are read: the loose ``<run_id>.json`` files of :func:`result_files` and the compact
    ``runs.jsonl.gz`` of :mod:`aees_gym.suite.archive` (a loose file wins over the archived copy).
    Never raises on a bad file or line.
    """
    from aees_gym.suite.archive import suite_results  # archive builds on this module

    root = Path(directory)
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("models", "report", "tuning")
                             and not p.name.startswith("."))] if root.is_dir() else []
    results: dict[str, RunResult] = {}
    invalid: list[ResultFileError] = []
    for folder in folders:
        found, bad = suite_results(folder)
        invalid += bad
        results.update({f"{r.suite}/{r.run_id}": r for r in found.values()})
    return ResultScan(results, invalid)


def quarantine(path: Path | str) -> Path:
    """Move a bad result file aside to ``<name>.corrupt`` (kept for inspection) and return the new path."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    for n in range(1, 1000):
        try:
            os.replace(path, target)
            return target
        except OSError:  # an earlier copy in the way that cannot be replaced (a folder): keep both
            if not os.path.lexists(target):
                raise
            target = path.with_name(f"{path.name}.{n}.corrupt")
    os.replace(path, target)
    return target


def to_rows(results: Iterable[RunResult]) -> list[dict[str, Any]]:
    """One flat row per run: identity, status, final metrics (``final_*`` keys) and wall clock."""
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "suite": r.suite, "task": r.task, "task_label": r.task_label, "agent": r.agent,
            "agent_label": r.agent_label, "seed": r.seed, "status": r.status, "run_id": r.run_id,
            **{f"sweep_{k}": v for k, v in r.sweep.items()},
        }
        row.update({f"final_{k}": v for k, v in (r.final_metrics or {}).items()})
        row["wall_clock_s"] = r.runtime.get("wall_clock_s")
        rows.append(row)
    return rows


def to_dataframe(results: Iterable[RunResult]) -> Any:
    """:func:`to_rows` as a ``pandas.DataFrame`` (needs pandas)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("to_dataframe needs pandas; install it with: pip install pandas") from exc
    return pd.DataFrame(to_rows(results))
