"""RunResult: the record of one suite run, its JSON schema, atomic IO and validation on load.

One run (task × agent × seed, see :class:`aees_gym.suite.RunSpec`) is one JSON file
``<results_dir>/<suite>/<run_id>.json``. Every field is documented in ``docs/results-schema.md``.
Files are written atomically (temporary file in the same folder, then ``os.replace``), so a killed
process leaves either the complete old file, the complete new one, or none. JSON is strict: a
non-finite float (a diverged loss) is written as ``null``. An archived suite holds the same
objects one per line in ``runs.jsonl.gz`` (:mod:`aees_gym.suite.archive` writes it); the readers
here accept both forms. The schema's constants and validation live in
:mod:`aees_gym.suite.result_schema` and are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import (
    atomic_write_text,
    dumps_json,
    json_safe,
    parse_json_checked,
    read_gzip_lines_checked,
    read_json_checked,
)
from aees_gym.suite.result_schema import (  # noqa: F401 - re-exported: the schema's public names live here too
    FINAL_METRIC_KEYS,
    MAX_JSON_DEPTH,
    MAX_RESULT_BYTES,
    RESERVED_PREFIX,
    SCHEMA_VERSION,
    STATUSES,
    VOLATILE_FIELDS,
    WINDOW_KEYS,
    FileCheckError,
    ResultFileError,
    validate_result_dict,
)


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


# --------------------------------------------------------------------------- IO
def result_path(directory: Path | str, run_id: str) -> Path:
    return Path(directory) / f"{run_id}.json"


def write_result(result: RunResult, directory: Path | str) -> Path:
    """Atomically write ``result`` as ``<directory>/<run_id>.json``."""
    return atomic_write_text(result_path(directory, result.run_id), dumps_json(result.to_dict()))


def read_json_file(path: Path | str, *, max_bytes: int = MAX_RESULT_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse one JSON file of a results folder through :func:`aees_gym.core.fileio.read_json_checked`.

    Only regular files are read (a FIFO, device or folder is refused without blocking), at most
    ``max_bytes``, nested at most ``max_depth`` deep (checked before parsing), strict JSON only.

    Raises:
        ResultFileError: Naming the file and the reason.
    """
    return read_json_checked(path, max_bytes=max_bytes, max_depth=max_depth, what="a result file", error=ResultFileError)


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


# --------------------------------------------------------------------------- the compact form (reading)
# One gzip JSON-lines file per suite folder; :mod:`aees_gym.suite.archive` writes it.
ARCHIVE_NAME = "runs.jsonl.gz"
#: Largest archive file read (the archived suites are 0.4 to 5 MB).
MAX_ARCHIVE_BYTES = 512 * 2**20
#: Most bytes one archive may unpack to (bounds a gzip bomb; the archived suites unpack to 3 to 30 MB).
MAX_ARCHIVE_UNPACKED_BYTES = 2 * 2**30
#: Most lines (one result each) one archive may hold (bounds a bomb of tiny lines; suites hold hundreds).
MAX_ARCHIVE_LINES = 200_000


def archive_path(directory: Path | str) -> Path:
    """``<directory>/runs.jsonl.gz``."""
    return Path(directory) / ARCHIVE_NAME


def loose_result_files(directory: Path | str) -> list[Path]:
    """The per-run ``<run_id>.json`` files directly in ``directory`` (reserved ``_*`` files excluded)."""
    root = Path(directory)
    return sorted(p for p in root.glob("*.json") if not p.name.startswith((RESERVED_PREFIX, ".")))


@dataclass(frozen=True)
class ArchiveScan:
    """The valid results of an archive by run id, and what could not be read (a bad line, a cut-off file)."""

    results: dict[str, RunResult]
    invalid: list[ResultFileError]


def read_archive(path: Path | str) -> ArchiveScan:
    """Load every result of a ``runs.jsonl.gz``; a bad line or a truncated file is reported, never raised.

    The lines read before a truncation are kept, so a cut-off archive loses only its tail.
    """
    path = Path(path)
    results: dict[str, RunResult] = {}
    invalid: list[ResultFileError] = []
    lines = read_gzip_lines_checked(
        path, max_bytes=MAX_ARCHIVE_BYTES, max_unpacked_bytes=MAX_ARCHIVE_UNPACKED_BYTES, max_line_bytes=MAX_RESULT_BYTES,
        max_lines=MAX_ARCHIVE_LINES, what="a results archive", error=ResultFileError,
    )
    try:
        for number, line in lines:
            source = f"{path}:{number}"
            try:
                result = RunResult.from_dict(parse_json_checked(line, source, max_depth=MAX_JSON_DEPTH, error=ResultFileError), source)
            except ResultFileError as exc:
                invalid.append(exc)
                continue
            results[result.run_id] = result
    except ResultFileError as exc:  # the file as a whole: not a regular file, too large, not gzip, cut off, a cap passed
        invalid.append(exc)
    return ArchiveScan(results, invalid)


def suite_results(directory: Path | str) -> tuple[dict[str, RunResult], list[ResultFileError]]:
    """Every valid result of one suite folder, archived or loose (a loose file wins), and the unreadable ones."""
    directory = Path(directory)
    results: dict[str, RunResult] = {}
    invalid: list[ResultFileError] = []
    if archive_path(directory).exists():
        scan = read_archive(archive_path(directory))
        results.update(scan.results)
        invalid += scan.invalid
    for path in loose_result_files(directory):
        try:
            result = read_result(path)
        except ResultFileError as exc:
            invalid.append(exc)
            continue
        results[result.run_id] = result
    return results, invalid


def scan_results(directory: Path | str) -> ResultScan:
    """Load every result of a suite folder, or of every suite folder one level below ``directory``.

    Both forms are read: the loose ``<run_id>.json`` files of :func:`result_files` and the compact
    ``runs.jsonl.gz`` (written by :mod:`aees_gym.suite.archive`) (a loose file wins over the archived copy).
    Never raises on a bad file or line.
    """
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
