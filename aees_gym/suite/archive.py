"""The compact form of a suite folder: every run result in one gzip-compressed JSON-lines file.

A suite writes one ``<run_id>.json`` per run while it runs (each atomically, so a killed suite loses
only the runs in flight and a rerun skips the finished ones). :func:`compact` then folds those files
into ``<suite>/runs.jsonl.gz`` — one result per line, sorted by run id, written to a temporary file
and renamed into place — and only after the rename deletes the loose files it holds. A crash at any
point leaves every result readable: before the rename the loose files are still there, after it the
archive holds them (a loose file left beside the archive wins over the archived copy; both are the
same run). Every reader (the suite's resume rule, the report) accepts both forms.

The archive is written deterministically (sorted lines, no timestamp in the gzip header), so
re-archiving unchanged results gives the same bytes, and paths inside it are stored relative to the
suite folder, so an archive means the same on every machine.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from aees_gym.core.fileio import atomic_write_bytes
from aees_gym.suite.results import (
    MAX_RESULT_BYTES,
    RESERVED_PREFIX,
    ResultFileError,
    RunResult,
    parse_json_bytes,
    read_result,
)

ARCHIVE_NAME = "runs.jsonl.gz"
#: Most decompressed bytes one archive may expand to (bounds a gzip bomb; real ones are ~100 MB).
MAX_ARCHIVE_BYTES = 4 * 2**30
#: Sub-folders of a suite folder whose results are compacted with it (the tuning sweep's runs).
NESTED_RESULT_DIRS = ("tuning",)


def archive_path(directory: Path | str) -> Path:
    """``<directory>/runs.jsonl.gz``."""
    return Path(directory) / ARCHIVE_NAME


def loose_result_files(directory: Path | str) -> list[Path]:
    """The per-run ``<run_id>.json`` files directly in ``directory`` (reserved ``_*`` files excluded)."""
    root = Path(directory)
    return sorted(p for p in root.glob("*.json") if not p.name.startswith((RESERVED_PREFIX, ".")))


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a gzip file, each line at most ``MAX_RESULT_BYTES``, in total at most ``MAX_ARCHIVE_BYTES``."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ResultFileError(path, None, "is not a regular file")
    total = 0
    with gzip.open(path, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(MAX_RESULT_BYTES + 1), b""), start=1):
            total += len(line)
            if len(line) > MAX_RESULT_BYTES:
                raise ResultFileError(f"{path}:{number}", None, f"line is larger than the {MAX_RESULT_BYTES} bytes a result may have")
            if total > MAX_ARCHIVE_BYTES:
                raise ResultFileError(path, None, f"expands to more than {MAX_ARCHIVE_BYTES} bytes")
            if line.strip():
                yield number, line


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
    try:
        for number, line in _lines(path):
            source = f"{path}:{number}"
            try:
                result = RunResult.from_dict(parse_json_bytes(line, source), source)
            except ResultFileError as exc:
                invalid.append(exc)
                continue
            results[result.run_id] = result
    except ResultFileError as exc:
        invalid.append(exc)
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, or cut off mid-stream
        invalid.append(ResultFileError(path, None, f"cannot be read to its end as gzip ({exc})"))
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


def portable(result: RunResult, suite_dir: Path) -> RunResult:
    """``result`` with its ``model_path`` relative to the suite folder (``models/<key>.zip``), the same on every machine."""
    if result.model_path is None:
        return result
    path = Path(result.model_path)
    if not path.is_absolute():
        return result
    try:
        relative = PurePosixPath(path.resolve().relative_to(suite_dir.resolve()).as_posix())
    except ValueError:  # a model stored outside the suite folder: keep what lies inside a models/ folder
        relative = PurePosixPath(path.parent.name, path.name) if path.parent.name == "models" else PurePosixPath(path.name)
    return replace(result, model_path=str(relative))


def encode_archive(results: Iterable[RunResult]) -> bytes:
    """Gzip of one JSON line per result, sorted by run id, with a fixed header (same results → same bytes)."""
    lines = [json.dumps(r.to_dict(), sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n"
             for r in sorted(results, key=lambda r: r.run_id)]
    return gzip.compress("".join(lines).encode("utf-8"), compresslevel=9, mtime=0)


@dataclass(frozen=True)
class CompactOutcome:
    """What :func:`compact` did in one folder."""

    archive: Path
    archived: int
    folded: int
    invalid: tuple[ResultFileError, ...]


def compact(directory: Path | str) -> list[CompactOutcome]:
    """Fold the loose result files of a suite folder (and its tuning folder) into its ``runs.jsonl.gz``.

    Unreadable loose files stay where they are (a rerun repeats their runs); an archive with an
    unreadable line is not rewritten, so nothing it holds is lost.

    Raises:
        ResultFileError: If the existing archive cannot be read in full (names the file and the line).
    """
    directory = Path(directory)
    outcomes = []
    for folder in [directory, *(directory / name for name in NESTED_RESULT_DIRS)]:
        if not folder.is_dir():
            continue
        old = read_archive(archive_path(folder)) if archive_path(folder).exists() else ArchiveScan({}, [])
        if old.invalid:
            raise ResultFileError(old.invalid[0].path, None, f"{old.invalid[0].reason}; fix or move the archive aside before compacting")
        loose: dict[str, tuple[Path, RunResult]] = {}
        invalid: list[ResultFileError] = []
        for path in loose_result_files(folder):
            try:
                loose[path.stem] = (path, read_result(path))
            except ResultFileError as exc:
                invalid.append(exc)
        if not loose and not old.results:
            continue
        merged = {**old.results, **{rid: r for rid, (_, r) in loose.items()}}
        target = atomic_write_bytes(archive_path(folder), encode_archive(portable(r, directory) for r in merged.values()))
        for path, _ in loose.values():  # only now: until the rename above, these files are the results
            path.unlink(missing_ok=True)
        outcomes.append(CompactOutcome(target, len(merged), len(loose), tuple(invalid)))
    return outcomes
