"""File I/O: the one place the project writes a file or replaces a folder, and reads one it did not make.

Writes are atomic. Every writer goes through :func:`atomic_write_bytes` (text and JSON are thin
layers over it), so a killed process leaves either the old file or the new one, never a truncated
mix. The data is fsync'd before the rename and the folder after it, so the rename survives a crash
of the machine. Files get the permissions of an ordinary ``open()`` under the user's umask
(``tempfile.mkstemp`` alone would make every file 0600, which breaks result folders shared on a cluster).

Reads are checked. Every file a user, another process or a download hands us goes through
:func:`read_bytes_checked` / :func:`read_json_checked`: regular files only (a FIFO or device is
refused without blocking), at most ``max_bytes`` (checked before reading, so nothing allocates by a
size a file claims; a compressed stream is capped by what it unpacks to, see
:func:`read_stream_checked` and :func:`read_gzip_lines_checked`), JSON nested at most ``max_depth`` deep (checked by a linear scan before
parsing, so a deep file never recurses), strict numbers (no NaN/Infinity, no integer too large for a
float). :func:`json_object` and :func:`json_field` then check a schema with the value checks of
:mod:`aees_gym.core.checks`. Every refusal is a :class:`FileCheckError` naming the file, the field,
what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gzip
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
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


# ------------------------------------------------------------------ checked reads
#: Default cap of a JSON file the project reads (result files are tens of kB, reports and sidecars less).
MAX_JSON_BYTES = 64 * 2**20
#: Deepest JSON nesting read (real files nest about 6 levels; the parser recurses).
MAX_JSON_DEPTH = 64


class FileCheckError(ValueError):
    """A file that cannot be used: not a regular file, too large, not JSON, or a field breaking the schema.

    Attributes:
        path: The file.
        field: The field at fault (``None`` for the file as a whole).
        reason: What is wrong, and what to do.
    """

    def __init__(self, path: Path | str, field_name: str | None, reason: str) -> None:
        self.path = Path(path)
        self.field = field_name
        self.reason = reason
        where = f"field {field_name!r}: " if field_name else ""
        super().__init__(f"{self.path}: {where}{reason}")


@contextlib.contextmanager
def open_checked(
    path: Path | str, *, max_bytes: int, what: str = "this file", error: type[FileCheckError] = FileCheckError
) -> Iterator[Any]:
    """``path`` open for binary reading if it is a regular file of at most ``max_bytes`` (checked before reading).

    The file is opened non-blocking, so a FIFO planted under the name fails at once instead of hanging.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(path, None, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
            raise error(path, None, f"is {kind}, not a regular file; give the path of {what}")
        if info.st_size > max_bytes:
            raise error(path, None, f"is {info.st_size} bytes, larger than the {max_bytes} {what} may have; "
                                    "it is not one this project wrote")
        handle = os.fdopen(os.dup(fd), "rb")
    except OSError as exc:
        raise error(path, None, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    with handle:
        yield handle


def read_bytes_checked(
    path: Path | str, *, max_bytes: int, what: str = "this file", error: type[FileCheckError] = FileCheckError
) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` (see :func:`open_checked`)."""
    with open_checked(path, max_bytes=max_bytes, what=what, error=error) as handle:
        try:
            raw = handle.read(max_bytes + 1)
        except OSError as exc:
            raise error(path, None, f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:  # it grew while being read
        raise error(path, None, f"is larger than the {max_bytes} bytes {what} may have")
    return raw


def read_stream_checked(
    stream: Any, path: Path | str, *, max_bytes: int, what: str = "this file", error: type[FileCheckError] = FileCheckError,
) -> bytes:
    """At most ``max_bytes`` from an open (e.g. decompressing) ``stream`` of ``path``: a compressed bomb stops at the cap."""
    try:
        data = stream.read(max_bytes + 1)
    except (OSError, EOFError, ValueError) as exc:
        raise error(path, None, f"cannot be unpacked ({exc}); it is not {what}") from None
    if len(data) > max_bytes:
        raise error(path, None, f"unpacks to more than the {max_bytes} bytes {what} may have; it is not one this project reads")
    return data


def read_gzip_lines_checked(
    path: Path | str, *, max_bytes: int, max_unpacked_bytes: int, max_line_bytes: int, max_lines: int,
    what: str = "this file", error: type[FileCheckError] = FileCheckError,
) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of each non-blank line of a gzip file, every cap checked while it unpacks.

    The file itself is read through :func:`open_checked` (a regular file of at most ``max_bytes``);
    decompression stops at once when a line passes ``max_line_bytes``, the lines together pass
    ``max_unpacked_bytes`` or their count passes ``max_lines``, so a gzip bomb (a tiny file that
    unpacks to gigabytes, or to millions of tiny lines) costs at most the caps. A line that breaks a
    cap is named as ``path:number``. Lines already yielded stay valid when a later one fails.
    """
    path = Path(path)
    with open_checked(path, max_bytes=max_bytes, what=what, error=error) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as handle:
        total = 0
        for number in range(1, max_lines + 2):
            try:
                line = handle.readline(max_line_bytes + 1)
            except (OSError, EOFError, zlib.error) as exc:  # not gzip, or cut off mid-stream
                raise error(path, None, f"cannot be read to its end as gzip ({exc}); it is not {what}") from None
            if not line:
                return
            if number > max_lines:
                raise error(path, None, f"has more than the {max_lines} lines {what} may have; it is not one this project wrote")
            if len(line) > max_line_bytes:
                raise error(f"{path}:{number}", None, f"line is larger than the {max_line_bytes} bytes a line of {what} may have")
            total += len(line)
            if total > max_unpacked_bytes:
                raise error(path, None, f"unpacks to more than the {max_unpacked_bytes} bytes {what} may have; "
                                        "it is not one this project wrote")
            if line.strip():
                yield number, line


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


def parse_json_checked(
    raw: bytes, path: Path | str, *, max_depth: int = MAX_JSON_DEPTH, error: type[FileCheckError] = FileCheckError,
    field_name: str | None = None,
) -> Any:
    """Strict JSON of ``raw`` (from ``path``, or its member ``field_name``), nested at most ``max_depth`` deep."""
    if json_depth_exceeds(raw, max_depth):
        raise error(path, field_name, f"nests JSON deeper than {max_depth} levels; it is not a file this project wrote")
    try:
        return json.loads(raw.decode("utf-8"), parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant)
    except _BadNumber as exc:
        raise error(path, field_name, str(exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(path, field_name, f"not readable as JSON ({exc})") from None


def read_json_checked(
    path: Path | str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH, what: str = "this file",
    error: type[FileCheckError] = FileCheckError,
) -> Any:
    """Parse one JSON file, refusing anything that could stall or crash the reader.

    Only regular files are read (a FIFO, device or folder is refused without blocking), at most
    ``max_bytes``, nested at most ``max_depth`` deep (checked before parsing), strict JSON only: a
    number too large for a float, ``NaN`` or ``Infinity`` makes the file invalid.

    Raises:
        FileCheckError: (or ``error``, a subclass) naming the file and the reason.
    """
    raw = read_bytes_checked(path, max_bytes=max_bytes, what=what, error=error)
    return parse_json_checked(raw, path, max_depth=max_depth, error=error)


def json_object(
    value: Any, path: Path | str, field_name: str | None = None, *, fix: str = "", error: type[FileCheckError] = FileCheckError
) -> dict[str, Any]:
    """``value`` if it is a JSON object (a dict); otherwise a :class:`FileCheckError` naming what it is."""
    if not isinstance(value, dict):
        raise error(path, field_name, f"must be a JSON object, got {type(value).__name__} {_short(value)}{fix}")
    return value


def json_field(
    data: Mapping[str, Any], key: str, check: Callable[..., Any], path: Path | str, *,
    fix: str = "", error: type[FileCheckError] = FileCheckError, **kwargs: Any,
) -> Any:
    """``check(key, data[key], **kwargs)`` (a :mod:`aees_gym.core.checks` helper), failing as a :class:`FileCheckError`.

    A missing key is an error too; the message names the file, the field, the problem and ``fix``.
    """
    if key not in data:
        raise error(path, key, f"is missing{fix}")
    try:
        return check(key, data[key], **kwargs)
    except (TypeError, ValueError) as exc:
        raise error(path, key, f"{str(exc).rstrip('.')}{fix}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
