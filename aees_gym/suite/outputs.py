"""Output folders and files, checked before any work starts; the archive written only on request.

Every command writes under ``runs/`` by default. The repository's ``results/`` is the archive of
real runs that the documentation quotes: a folder holding an :data:`ARCHIVE_MARKER` file (or below
one) is written only when the caller asks for it (``--archive``), so following the docs never
rewrites it. The checks here run before a run trains or a folder is created, so an output that
cannot be written (a file where a folder should be, a read-only folder) fails in one line at once
instead of after the work, losing it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A file that marks a folder as the archive (``results/.aees-archive`` in the repository).
ARCHIVE_MARKER = ".aees-archive"
#: Where commands write by default.
DEFAULT_OUTPUT_DIR = "runs"


class OutputError(ValueError):
    """An output path that cannot or may not be written; the message names the path and the fix."""


def archive_root(path: Path | str) -> Path | None:
    """The archive folder (one holding :data:`ARCHIVE_MARKER`) that ``path`` lies in, or None."""
    current = Path(os.path.abspath(path))
    for folder in (current, *current.parents):
        if (folder / ARCHIVE_MARKER).is_file():
            return folder
    return None


def _nearest_existing(path: Path) -> Path:
    current = Path(os.path.abspath(path))
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def check_output_dir(path: Path | str, *, what: str, archive: bool = False, flag: str = "--archive") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder outside the archive unless ``archive``.

    Nothing is created. Returns ``path``.

    Raises:
        OutputError: Naming ``what``, the path and the fix.
    """
    path = Path(path)
    root = archive_root(path)
    if root is not None and not archive:
        raise OutputError(f"{what} {path} is inside the archive {root} (it holds {ARCHIVE_MARKER}); write under "
                          f"{DEFAULT_OUTPUT_DIR}/ instead, or pass {flag} to add to the archive on purpose.")
    existing = _nearest_existing(path)
    if existing != Path(os.path.abspath(path)) and not existing.is_dir():
        raise OutputError(f"{what} {path} cannot be created: {existing} is a file, not a folder; choose another path.")
    if existing == Path(os.path.abspath(path)) and not existing.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; choose a folder (or move the file away).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path} is not writable ({existing} denies writing); choose a folder you can write to.")
    return path


def check_output_file(path: Path | str, *, what: str, archive: bool = False, flag: str = "--archive") -> Path:
    """Check that the file ``path`` can be written (its folder via :func:`check_output_dir`; not a folder itself).

    Raises:
        OutputError: Naming ``what``, the path and the fix.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name, e.g. {path / 'model.zip'}.")
    check_output_dir(path.parent, what=f"{what}'s folder", archive=archive, flag=flag)
    return path
