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
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from aees_gym.core.fileio import atomic_write_bytes
from aees_gym.suite.results import (  # noqa: F401 - the reading side lives in results (re-exported here)
    ARCHIVE_NAME,
    ArchiveScan,
    ResultFileError,
    RunResult,
    archive_path,
    loose_result_files,
    read_archive,
    read_result,
    suite_results,
)

#: Sub-folders of a suite folder whose results are compacted with it (the tuning sweep's runs).
NESTED_RESULT_DIRS = ("tuning",)


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
