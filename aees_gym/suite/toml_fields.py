"""Field checks shared by the suite and leaderboard files: the TOML reader, key/type/range checks that
raise :class:`SuiteConfigError` naming the key, and the limits such files may ask for.

:mod:`aees_gym.suite.suite_file` (the suite schema and its parser) re-exports every name here.
"""

from __future__ import annotations

import os
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, read_bytes_checked
from aees_gym.envs.registration import task_of
from aees_gym.tasks import get_task, registered_tasks


class SuiteConfigError(ValueError):
    """A suite specification that cannot be run; the message names the key and the valid choices."""


def _check_keys(where: str, table: Any, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise SuiteConfigError(f"{where} must be a table, got {type(table).__name__}.")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise SuiteConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {list(valid)}.")
    for key in required:
        if key not in table:
            raise SuiteConfigError(f"{where}: missing required key {key!r}.")
    return table


def _int(where: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        return checks.integer(where, value, minimum=minimum, maximum=maximum)
    except (TypeError, ValueError) as exc:
        raise SuiteConfigError(str(exc)) from None


def _positive_numbers(where: str, values: list[Any]) -> tuple[float, ...]:
    try:
        return tuple(float(checks.positive(f"{where}[{i}]", v)) for i, v in enumerate(values))
    except (TypeError, ValueError) as exc:
        raise SuiteConfigError(str(exc)) from None


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SuiteConfigError(f"{where} must be a non-empty string, got {value!r}.")
    return value


def _folder(where: str, value: Any) -> str:
    """A folder to write under: a non-empty path without control characters that is not an existing file."""
    folder = _str(where, value)
    bad = next((ch for ch in folder if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise SuiteConfigError(f"{where} {folder!r} contains the control character {bad!r}; write a plain folder path.")
    if Path(folder).expanduser().exists() and not Path(folder).expanduser().is_dir():
        raise SuiteConfigError(f"{where} {folder!r} is an existing file, not a folder; name a folder (it is created if missing).")
    return folder


#: Most worker processes a suite or leaderboard file may ask for.
MAX_WORKERS = 1024
#: Largest bootstrap a leaderboard file may ask for (memory grows with it).
MAX_BOOT = 1_000_000
#: Largest suite or leaderboard file read (real ones are a few kB).
MAX_SUITE_FILE_BYTES = 4 * 2**20


def read_toml_file(path: Path | str, what: str) -> dict[str, Any]:
    """The TOML of ``path`` through the checked reader (a regular file, at most :data:`MAX_SUITE_FILE_BYTES`).

    Raises:
        SuiteConfigError: If the file is missing, not a regular file, too large, or not valid TOML.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise SuiteConfigError(f"{what} {path} does not exist.")
    try:
        raw = read_bytes_checked(path, max_bytes=MAX_SUITE_FILE_BYTES, what=what)
        return tomllib.loads(raw.decode("utf-8"))
    except FileCheckError as exc:
        raise SuiteConfigError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise SuiteConfigError(f"{path}: not UTF-8 text ({exc}); save the {what} as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SuiteConfigError(f"{path}: nests tables or arrays too deeply to be a {what}.") from None


def ray_address(where: str, value: Any) -> str:
    """A Ray cluster address: ``auto``, ``local``, ``ray://HOST:PORT`` (Ray client) or ``HOST:PORT`` (the GCS)."""
    text = _str(where, value).strip()
    if text in ("auto", "local"):
        return text
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SuiteConfigError(f"{where} is {value!r}; use 'auto' (a `ray start --head` cluster on this machine), 'local', "
                               "'HOST:PORT' (e.g. '10.0.0.5:6379') or 'ray://HOST:PORT' (e.g. 'ray://head:10001').")
    return text


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise SuiteConfigError(f"{where} must be a non-empty list, got {value!r}.")
    return value


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SuiteConfigError(f"{where} must be a table, got {value!r}.")
    return dict(value)


def resolve_task_name(where: str, name: str) -> str:
    """``Digits`` or ``aees_gym/Digits-v0`` (optionally ``aees_gym:aees_gym/Digits-v0``) → ``Digits``."""
    try:
        task = task_of(name)
        get_task(task)
    except (KeyError, ValueError):
        raise SuiteConfigError(f"{where}: unknown task {name!r}; registered tasks: {list(registered_tasks())}.") from None
    return task


def default_agent_label(name: str, kwargs: Mapping[str, Any]) -> str:
    """``fixed lr_multiplier=0.5`` style label when a config gives none."""
    return " ".join([name, *(f"{k}={v}" for k, v in sorted(kwargs.items()))])


#: Longest suite name in UTF-8 bytes: it is a folder name, and file systems allow 255 bytes per name.
MAX_SUITE_NAME_BYTES = 100
#: Sub-folders of a results folder that the report never reads as suites.
_RESERVED_FOLDERS = ("models", "report", "tuning")


def _suite_name(source: str, value: Any) -> str:
    name = _str(f"{source}: name", value)
    fix = f"use at most {MAX_SUITE_NAME_BYTES} letters, digits, '-' and '_'"
    if any(ch in name for ch in "/\\") or name.startswith(".") or name in _RESERVED_FOLDERS:
        raise SuiteConfigError(f"{source}: name {name!r} cannot be a results folder name; {fix}.")
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        raise SuiteConfigError(f"{source}: name {name!r} contains the control character {bad!r}; {fix}.")
    if len(name.encode("utf-8")) > MAX_SUITE_NAME_BYTES:
        raise SuiteConfigError(f"{source}: name is {len(name.encode('utf-8'))} bytes long; {fix}.")
    return name
