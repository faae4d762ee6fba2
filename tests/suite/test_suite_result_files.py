"""Result files that break the schema's values, or could stall a reader, are named and set aside, never averaged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from suite_helpers import make_result

from aees_gym.reporting.report import build_report, to_markdown
from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.results import ResultFileError, quarantine, read_result, result_files, scan_results, write_result


def _edit(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    data[int(last) if isinstance(data, list) else last] = value


# (dotted path in the JSON, bad value, field the error names)
BAD_VALUES = [
    ("final_metrics.val_accuracy", 1.5, "final_metrics.val_accuracy"),
    ("final_metrics.val_accuracy", "0.9", "final_metrics.val_accuracy"),
    ("final_metrics.val_accuracy", None, "final_metrics.val_accuracy"),
    ("final_metrics.best_val_accuracy", -0.1, "final_metrics.best_val_accuracy"),
    ("final_metrics.total_reward", "high", "final_metrics.total_reward"),
    ("final_metrics.steps_done", 2.5, "final_metrics.steps_done"),
    ("final_metrics.diverged", True, "final_metrics.diverged"),
    ("eval_curve.0.val_accuracy", 7, "eval_curve[0].val_accuracy"),
    ("windows.1.window", 5, "windows[1].window"),
    ("windows.0.reward", [1], "windows[0].reward"),
    ("runtime.wall_clock_s", -1.0, "runtime.wall_clock_s"),
    ("config.total_steps", 0, "config.total_steps"),
    ("config.target_accuracy", 2.0, "config.target_accuracy"),
    ("config.grid", {"lr_multipliers": "x"}, "config.grid"),
    ("config", None, "config"),
    ("sweep", {"base_lr_multiplier": -3}, "sweep.base_lr_multiplier"),
]


@pytest.mark.parametrize(("where", "value", "field"), BAD_VALUES)
def test_a_value_that_breaks_the_schema_is_invalid_and_named(tmp_path, where, value, field):
    path = write_result(make_result("A", 0, 0.5), tmp_path)
    data = json.loads(path.read_text())
    _edit(data, where, value)
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError) as info:
        read_result(path)
    assert info.value.field == field and info.value.path == path and str(path) in str(info.value)


# Texts that break strict JSON: numbers too large for a float, non-finite constants.
HUGE = [("1e400", "too large"), ("-1e999", "too large"), ("9" * 400, "too large"), ("9" * 5000, "too large"), ("NaN", "strict JSON"),
        ("Infinity", "strict JSON")]


@pytest.mark.parametrize(("number", "reason"), HUGE)
def test_numbers_too_large_for_a_float_make_the_file_invalid(tmp_path, number, reason):
    path = write_result(make_result("A", 0, 0.5), tmp_path)
    text = path.read_text().replace('"total_reward": 0.5', f'"total_reward": {number}')
    assert number in text
    path.write_text(text)
    with pytest.raises(ResultFileError, match=reason):
        read_result(path)


def _hostile_files(folder: Path) -> dict[str, str]:
    """A FIFO, a device link, a folder, deep nesting and an oversized file, each named like a result; name → reason."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.json")
    os.symlink("/dev/zero", folder / "zero.json")
    (folder / "folder.json").mkdir()
    (folder / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (folder / "deepobj.json").write_text('{"a": ' * 50_000 + "1" + "}" * 50_000)
    with open(folder / "huge.json", "wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: nothing is written to disk
    return {"fifo.json": "not a regular file", "zero.json": "not a regular file", "folder.json": "not a regular file",
            "deep.json": "deeper than 64", "deepobj.json": "deeper than 64", "huge.json": "larger than"}


def test_hostile_files_neither_stop_nor_hang_the_report(tmp_path):
    suite = tmp_path / "hand"
    for seed in range(2):
        write_result(make_result("fixed ×1.0", seed, 0.5 + 0.1 * seed), suite)
    reasons = _hostile_files(suite)
    os.mkfifo(suite / "_manifest.json")  # the report reads the manifest for the agent order
    scan = scan_results(tmp_path)
    assert {e.path.name: e.reason for e in scan.invalid}.keys() == reasons.keys()
    assert all(reasons[e.path.name] in e.reason for e in scan.invalid)
    # The CLI in its own process: a FIFO would block it forever, hence the timeout.
    cmd = [sys.executable, "-m", "aees_gym.cli", "report", str(tmp_path), "--no-plots", "--n-boot", "50"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stderr for name in reasons) and "6 invalid result files skipped" in done.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "2 runs loaded; 6 invalid files skipped" in markdown and all(name in markdown for name in reasons)


def test_a_report_over_a_folder_without_results_is_an_error(tmp_path, capsys):
    from aees_gym.cli import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no valid run results"):
        build_report(tmp_path / "empty")
    assert main(["report", str(tmp_path / "empty"), "--no-plots"]) == 2
    assert "no valid run results" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "0000.json").write_text("[" * 1000)
    assert main(["report", str(tmp_path / "bad"), "--no-plots"]) == 2
    assert "1 files could not be read" in capsys.readouterr().err and not (tmp_path / "bad" / "report").exists()


def test_a_suite_rerun_sets_invalid_and_hostile_files_aside_and_repeats_their_runs(write_suite, tmp_path):
    config = write_suite("seeds = [0, 1, 2, 3]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'fixed'\n", name="hostile")
    first = run_suite(load_suite(config), results_dir=tmp_path, progress=False)
    assert first.ran == 4
    out_of_range, deep, fifo, _intact = result_files(first.suite_dir)
    data = json.loads(out_of_range.read_text())
    data["final_metrics"]["val_accuracy"] = 1.5
    out_of_range.write_text(json.dumps(data))
    deep.write_text("[" * 100_000)
    fifo.unlink()
    os.mkfifo(fifo)
    report = build_report(tmp_path, n_boot=50)  # the value error is named, not averaged
    assert {e.path.name for e in report.invalid} == {out_of_range.name, deep.name, fifo.name}
    assert sum(r.n_runs for r in report.rows) == 1

    cmd = [sys.executable, "-m", "aees_gym.cli", "suite", str(config), "--results-dir", str(tmp_path), "--no-progress"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for path, reason in ((out_of_range, "valid range [0.0, 1.0]"), (deep, "deeper than 64"), (fifo, "not a regular file")):
        assert f"corrupt result file {path.name}: " in done.stderr and reason in done.stderr
        assert path.with_name(path.name + ".corrupt").exists() and read_result(path).status == "ok"
    assert "4 runs planned, 1 already done, 3 run now" in done.stdout
    final = build_report(tmp_path, n_boot=50)
    assert not final.invalid and len(final.set_aside) == 3 and sum(r.n_ok for r in final.rows) == 4
    assert "0 invalid files skipped and 3 files set aside as corrupt" in to_markdown(final)


def test_quarantine_keeps_every_copy_when_an_earlier_one_is_in_the_way(tmp_path):
    (tmp_path / "a.json").mkdir()
    assert quarantine(tmp_path / "a.json") == tmp_path / "a.json.corrupt"
    (tmp_path / "a.json").write_text("{")
    assert quarantine(tmp_path / "a.json") == tmp_path / "a.json.1.corrupt"
    assert (tmp_path / "a.json.corrupt").is_dir() and (tmp_path / "a.json.1.corrupt").read_text() == "{"
