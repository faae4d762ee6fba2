"""The compact archive (runs.jsonl.gz) is read through the checked reader: a gzip bomb, an endless
line, a flood of tiny lines, an oversized or non-regular file each stop at a cap with an error that
names the archive, and the lines before the fault are kept."""

from __future__ import annotations

import gzip
import os
import random
import threading
from pathlib import Path

import pytest

from aees_gym.core.fileio import FileCheckError, read_gzip_lines_checked
from aees_gym.suite import results
from aees_gym.suite.results import ARCHIVE_NAME, ResultFileError, read_archive

CAPS = {"max_bytes": 1 << 20, "max_unpacked_bytes": 1 << 16, "max_line_bytes": 1 << 10, "max_lines": 50}


def _gz(path: Path, body: bytes) -> Path:
    path.write_bytes(gzip.compress(body, mtime=0))
    return path


def _read(path: Path, **caps: int) -> list[tuple[int, bytes]]:
    return list(read_gzip_lines_checked(path, **{**CAPS, **caps}, what="a results archive"))


def test_lines_within_the_caps_come_back_numbered_and_blank_lines_skipped(tmp_path):
    path = _gz(tmp_path / "a.gz", b'{"a": 1}\n\n{"b": 2}\n')
    assert _read(path) == [(1, b'{"a": 1}\n'), (3, b'{"b": 2}\n')]


def test_a_gzip_bomb_stops_at_the_unpacked_cap(tmp_path):
    body = (b"x" * 1000 + b"\n") * 5000  # 5 MB unpacked, a few kB packed
    path = _gz(tmp_path / "bomb.gz", body)
    assert path.stat().st_size < 20_000
    seen: list[int] = []
    with pytest.raises(FileCheckError, match="unpacks to more than the 65536 bytes"):
        for number, _ in read_gzip_lines_checked(path, **{**CAPS, "max_lines": 10**6}, what="a results archive"):
            seen.append(number)
    assert 0 < len(seen) <= 66  # what came before the cap was yielded, nothing far past it was unpacked


def test_a_line_longer_than_the_line_cap_is_named_by_its_number(tmp_path):
    path = _gz(tmp_path / "long.gz", b"{}\n" + b"y" * 5000 + b"\n")
    with pytest.raises(FileCheckError, match=r"long\.gz:2: line is larger than the 1024 bytes") as info:
        _read(path)
    assert info.value.path == Path(f"{path}:2")


def test_a_flood_of_tiny_lines_stops_at_the_line_count_cap(tmp_path):
    path = _gz(tmp_path / "flood.gz", b"{}\n" * 51)
    assert len(_read(_gz(tmp_path / "ok.gz", b"{}\n" * 50))) == 50
    with pytest.raises(FileCheckError, match="more than the 50 lines"):
        _read(path)


def test_the_packed_file_is_refused_by_size_before_unpacking(tmp_path):
    path = _gz(tmp_path / "big.gz", os.urandom(4096))
    with pytest.raises(FileCheckError, match="larger than the 100 a results archive may have"):
        _read(path, max_bytes=100)


def test_not_gzip_and_cut_off_are_errors_not_crashes(tmp_path):
    plain = tmp_path / "plain.gz"
    plain.write_bytes(b'{"a": 1}\n')
    with pytest.raises(FileCheckError, match="as gzip"):
        _read(plain)
    # Seeded, short, hard-to-compress lines: random bytes could hold a >1 kB run without a newline
    # and trip the line cap before the cut is reached.
    rng = random.Random(0)
    data = gzip.compress(b"".join(rng.randbytes(40).hex().encode() + b"\n" for _ in range(40)), mtime=0)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileCheckError, match="as gzip"):
        _read(cut)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_planted_as_the_archive_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / ARCHIVE_NAME
    os.mkfifo(fifo)
    out: list = []
    reader = threading.Thread(target=lambda: out.append(read_archive(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO archive blocked"
    [scan] = out
    assert scan.results == {} and "not a regular file" in scan.invalid[0].reason
    assert isinstance(scan.invalid[0], ResultFileError)


def test_read_archive_applies_its_caps_and_keeps_the_lines_before(tmp_path, monkeypatch):
    line = b'{"schema_version": 0}\n'  # parses, then fails the schema: reported per line
    path = _gz(tmp_path / ARCHIVE_NAME, line * 3 + b"[" * 200 + b"\n" + line * 100)
    monkeypatch.setattr(results, "MAX_ARCHIVE_LINES", 10)
    scan = read_archive(path)
    reasons = [e.reason for e in scan.invalid]
    assert reasons[:3] == ["is 0; this aees_gym reads version 1"] * 3
    assert "nests JSON deeper than 64 levels" in reasons[3] and scan.invalid[3].path == Path(f"{path}:4")
    assert "more than the 10 lines" in reasons[-1] and len(reasons) == 11
    monkeypatch.setattr(results, "MAX_ARCHIVE_UNPACKED_BYTES", 50)
    assert "unpacks to more than the 50 bytes" in read_archive(path).invalid[-1].reason
