"""core.fileio: atomic writes honour the umask, and a replaced folder is never missing or half-built."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from aees_gym.core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_write_with, replace_dir


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        for write in (lambda p: atomic_write_text(p, "x"), lambda p: atomic_write_bytes(p, b"x"),
                      lambda p: atomic_write_json(p, {"a": 1}), lambda p: atomic_write_with(p, lambda t: t.write_text("x"))):
            path = tmp_path / f"f{umask}"
            write(path)
            assert stat.S_IMODE(path.stat().st_mode) == mode
            path.unlink()
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "r.json", "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_json_is_strict_and_stable(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "a.json", {"b": float("nan"), "a": (1, 2)})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": None}


def test_replace_dir_swaps_contents_and_keeps_the_target_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "data"
    replace_dir(target, lambda d: (d / "v").write_text("1"))
    replace_dir(target, lambda d: (d / "v").write_text("2"))
    assert (target / "v").read_text() == "2"

    def broken(folder: Path) -> None:
        (folder / "v").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_dir(target, broken)
    assert (target / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_reader_never_finds_the_replaced_folder_missing(tmp_path: Path) -> None:
    target = tmp_path / "data"
    replace_dir(target, lambda d: (d / "v").write_text("0"))
    missing: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                (target / "v").read_text()
            except FileNotFoundError as exc:
                missing.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            replace_dir(target, lambda d, i=i: (d / "v").write_text(str(i)))
    finally:
        stop.set()
        reader.join()
    assert not missing and (target / "v").read_text() == "199"
