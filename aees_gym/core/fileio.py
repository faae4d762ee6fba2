"""Atomic file writes: the one place the project writes a file or replaces a folder.

Every writer goes through :func:`atomic_write_bytes` (text and JSON are thin layers over it), so a
killed process leaves either the old file or the new one, never a truncated mix. The data is
fsync'd before the rename and the folder after it, so the rename survives a crash of the machine.
Files get the permissions of an ordinary ``open()`` under the user's umask (``tempfile.mkstemp``
alone would make every file 0600, which breaks result folders shared on a cluster).
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    # os.umask can only be read by setting it; restore it at once (no thread of ours writes files here).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Let ``write(tmp)`` create a file at a temporary path beside ``path``, then move it into place.

    For writers that insist on a path of their own (a library's ``save``); the temporary name keeps
    ``path``'s suffix, since some of them append one to any other name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        return json_safe(item())
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored in a result file.")


def dumps_json(data: Any) -> str:
    """Strict, stable JSON of :func:`json_safe` ``(data)``: sorted keys, non-finite floats as null."""
    return json.dumps(json_safe(data), sort_keys=True, indent=1, allow_nan=False) + "\n"


def atomic_write_json(path: Path | str, data: Any) -> Path:
    """Write :func:`dumps_json` ``(data)`` to ``path`` atomically."""
    return atomic_write_text(path, dumps_json(data))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one system call (Linux ``renameat2(RENAME_EXCHANGE)``); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # kernel or file system without the flag: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(target: Path | str, build: Callable[[Path], None]) -> Path:
    """Build a folder with ``build(tmp)`` and swap it in for ``target``; ``target`` is never missing.

    The new folder is built beside ``target``, then exchanged with it in one atomic system call on
    Linux (elsewhere the old folder is renamed aside and the new one into place, and renamed back if
    that fails). A failed ``build`` leaves ``target`` untouched; the old folder is deleted last.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~_current_umask())
        if not target.exists():
            os.replace(tmp, target)
        elif _exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        else:
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, aside)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(aside, target)
                raise
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)
    return target
