"""Every file the project reads goes through one checked reader: regular files, size and depth caps, typed fields.

Each case plants a bad file and asserts the error names the file, the field, what is wrong and what to do;
none may hang (a FIFO), recurse (a deep file) or fail with an AttributeError or KeyError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, json_field, json_object, read_bytes_checked, read_json_checked
from aees_gym.suite.training import read_progress


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    os.mkfifo(path)
    with pytest.raises(FileCheckError, match=r"report\.json: is a pipe, socket or device, not a regular file; give the path of"):
        read_json_checked(path)


def test_a_deep_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FileCheckError, match="nests JSON deeper than 64 levels"):
        read_json_checked(path)


def test_size_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2000)
    with pytest.raises(FileCheckError, match="is 2000 bytes, larger than the 1000 a test file may have"):
        read_bytes_checked(path, max_bytes=1000, what="a test file")


@pytest.mark.parametrize(("text", "match"), [
    ('{"n": NaN}', "NaN is not valid in strict JSON"),
    ('{"n": 1e999}', "too large for a float"),
    ("[1, 2]", "must be a JSON object, got list"),
])
def test_strict_json_and_objects(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(FileCheckError, match=match):
        json_object(read_json_checked(path), path)


def test_a_field_of_the_wrong_type_names_field_problem_and_fix(tmp_path: Path) -> None:
    with pytest.raises(FileCheckError, match=r"f\.json: field 'n': n must be an integer, got the string '3' .*; delete it"):
        json_field({"n": "3"}, "n", checks.positive_int, tmp_path / "f.json", fix="; delete it")
    with pytest.raises(FileCheckError, match=r"field 'n': is missing; delete it"):
        json_field({}, "n", checks.positive_int, tmp_path / "f.json", fix="; delete it")


# ------------------------------------------------------------------ progress reports
GOOD_REPORT = {"windows_trained": 32, "total_timesteps": 64, "started_utc": "2026-01-01T00:00:00+00:00",
               "updated_utc": "2026-01-01T00:05:00+00:00"}


def _write_report(tmp_path: Path, report: Any) -> Path:
    model = tmp_path / "m.zip"
    model.with_suffix(".progress.json").write_text(json.dumps(report))
    return model


@pytest.mark.parametrize(("change", "field", "problem"), [
    ({"windows_trained": "32"}, "windows_trained", "must be an integer, got the string '32'"),
    ({"windows_trained": 32.5}, "windows_trained", "must be an integer, got 32.5"),
    ({"windows_trained": -1}, "windows_trained", "must be an integer in \\[0, inf\\), got -1"),
    ({"total_timesteps": 0}, "total_timesteps", "must be a positive integer"),
    ({"updated_utc": 5}, "updated_utc", "must be a string"),
    ({"updated_utc": "now | <b>x</b>"}, "updated_utc", "not an ISO-8601 time stamp"),
    ({"checkpoint_windows": True}, "checkpoint_windows", "must be an integer, got True"),
])
def test_a_progress_report_is_checked_field_by_field(tmp_path: Path, change: dict[str, Any], field: str, problem: str) -> None:
    model = _write_report(tmp_path, {**GOOD_REPORT, **change})
    with pytest.raises(FileCheckError, match=f"field '{field}': .*{problem}.*; delete the file"):
        read_progress(model)


def test_a_progress_report_that_is_not_an_object_or_a_fifo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileCheckError, match="must be a JSON object, got list"):
        read_progress(_write_report(tmp_path, [1, 2]))
    model = tmp_path / "f.zip"
    os.mkfifo(model.with_suffix(".progress.json"))
    with pytest.raises(FileCheckError, match="not a regular file"):
        read_progress(model)


def test_a_good_progress_report_reads(tmp_path: Path) -> None:
    assert read_progress(_write_report(tmp_path, {**GOOD_REPORT, "checkpoint_windows": 16})) == {
        "windows_trained": 32, "total_timesteps": 64, "updated_utc": "2026-01-01T00:05:00+00:00", "checkpoint_windows": 16}
    assert read_progress(tmp_path / "none.zip") is None


# ------------------------------------------------------------------ model sidecars and prepared data
@pytest.mark.parametrize(("record", "match"), [
    ({"wall_clock_s": "fast"}, r"field 'wall_clock_s': wall_clock_s must be a number, got the string 'fast'"),
    ({"wall_clock_s": -3.0}, r"field 'wall_clock_s': .*non-negative"),
    ({"wall_clock_s": 1.0, "resumed_at_windows": 10**9}, r"field 'resumed_at_windows': .*\[0, 64\], got 1000000000"),
    ([1], "must be a JSON object, got list"),
])
def test_a_model_sidecar_is_checked(tmp_path: Path, record: Any, match: str) -> None:
    from aees_gym.reporting.leaderboard import _sidecar_timing

    path = tmp_path / "m.json"
    path.write_text(json.dumps(record))
    with pytest.raises(FileCheckError, match=match + ".*delete the sidecar"):
        _sidecar_timing(path, 64)
    path.write_text(json.dumps({"wall_clock_s": 2.0, "resumed_at_windows": 16}))
    assert _sidecar_timing(path, 64) == (2.0, 16)


@pytest.mark.parametrize(("change", "field", "problem"), [
    ({"vocab_size": 10**12}, "vocab_size", r"\[2, 1048576\], got 1000000000000"),
    ({"vocab_size": "30522"}, "vocab_size", "must be an integer, got the string"),
    ({"pad_id": 30522}, "pad_id", r"\[0, 30521\]"),
    ({"label_names": "ab"}, "label_names", "must be a list of 2 to 10000 class names"),
    ({"task": None}, "task", "must be a string"),
])
def test_a_pretokenized_folder_is_checked_before_anything_is_sized_by_it(
    tmp_path: Path, change: dict[str, Any], field: str, problem: str,
) -> None:
    from aees_gym.tasks.text import META_FILE, _read_meta

    meta = {"task": "SST2", "encoding": "x", "pad_id": 0, "vocab_size": 30522, "label_names": ["neg", "pos"], **change}
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FileCheckError, match=f"field '{field}': .*{problem}.*re-create the folder with .*pretokenize"):
        _read_meta(tmp_path / META_FILE, "SST2", str(tmp_path))


# ------------------------------------------------------------------ prepared data files
def test_a_planted_mnist_5k_file_is_checked(tmp_path: Path) -> None:
    import gzip

    from aees_gym.tasks.vision import _checked_mnist_table

    path = tmp_path / "mnist_5k.csv.gz"
    row = ",".join(["0"] * 784 + ["3"])
    path.write_bytes(gzip.compress((row + "\n" + ",".join(["300"] * 784 + ["3"]) + "\n").encode()))
    with pytest.raises(ValueError, match=r"pixels outside \[0, 255\] or labels outside \[0, 9\]; prepare it again with `aees-gym data prepare mnist_5k"):
        _checked_mnist_table(path)
    path.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(ValueError, match=r"has 3 columns; mnist_5k has 784 pixel columns and a label"):
        _checked_mnist_table(path)
    path.write_bytes(gzip.compress((row + "\n").encode()))
    x, y = _checked_mnist_table(path)
    assert x.shape == (1, 1, 28, 28) and y.tolist() == [3]
    fifo = tmp_path / "fifo.csv.gz"
    os.mkfifo(fifo)
    with pytest.raises(FileCheckError, match="not a regular file"):
        _checked_mnist_table(fifo)


def test_planted_shipped_corpora_are_checked(tmp_path: Path) -> None:
    import bz2
    import zipfile

    from aees_gym.tasks.text_data import read_news_tweets, read_rotten_tomatoes

    path = tmp_path / "rt.csv.bz2"
    path.write_bytes(bz2.compress(b"label,words\n1,x\n"))
    with pytest.raises(ValueError, match=r"lacks columns \['category', 'text'\]; prepare the data set again"):
        read_rotten_tomatoes(path)
    path.write_bytes(b"not bz2")
    with pytest.raises(FileCheckError, match="cannot be unpacked"):
        read_rotten_tomatoes(path)
    tweets = tmp_path / "tweets.zip"
    with zipfile.ZipFile(tweets, "w") as archive:
        archive.writestr("healthtweets.csv", "source_id,text\nnowhere-1,hello\n")
    with pytest.raises(ValueError, match=r"names outlets \['nowhere'\] that are not among the .* prepare it again"):
        read_news_tweets(tweets)
    with zipfile.ZipFile(tweets, "w") as archive:
        archive.writestr("other.csv", "x")
    with pytest.raises(ValueError, match=r"is not the news tweets archive"):
        read_news_tweets(tweets)
