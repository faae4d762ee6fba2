"""Resuming suites: a SIGKILLed suite finishes only its missing runs; corrupt files are reported and re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from suite_helpers import synthetic_suite

from aees_gym.reporting.report import build_report, to_markdown
from aees_gym.suite import load_suite, plan_suite, run_suite
from aees_gym.suite.results import read_result, result_files

FOUR_AGENTS = synthetic_suite(
    'name = "random"',
    'name = "fixed"\nlabel = "fixed ×0.5"\nkwargs = { lr_multiplier = 0.5 }',
    'name = "fixed"\nlabel = "fixed ×1.0"',
    'name = "fixed"\nlabel = "fixed ×2.0"\nkwargs = { lr_multiplier = 2.0 }',
    seeds=(0, 1, 2, 3),
)
SLOWER_ENV = "[env]\ntotal_steps = 100\nwindow_length = 10\n"


def _run_files(suite_dir: Path) -> list[Path]:
    return result_files(suite_dir)


@pytest.mark.slow
def test_sigkill_mid_suite_then_rerun_completes_only_missing_runs(write_suite, tmp_path):
    config = write_suite(FOUR_AGENTS, name="killed", env=SLOWER_ENV)
    results = tmp_path / "results"
    suite_dir = results / "killed"
    cmd = [sys.executable, "-m", "aees_gym.cli", "suite", str(config), "--results-dir", str(results), "--executor", "serial", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (suite_dir.is_dir() and _run_files(suite_dir)):
            assert proc.poll() is None, "the suite ended before writing any result"
            assert time.monotonic() < deadline, "no result file appeared"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = {p.name: p.stat().st_mtime_ns for p in _run_files(suite_dir)}
    planned = {r.run_id for r in plan_suite(load_suite(config), suite_dir).runs}
    assert 1 <= len(before) < len(planned) == 16, "the kill must land mid-suite"

    outcome = run_suite(load_suite(config), results_dir=results, progress=False)
    assert (outcome.reused, outcome.ran, outcome.corrupt) == (len(before), 16 - len(before), ())
    after = _run_files(suite_dir)
    assert sorted(p.stem for p in after) == sorted(planned)  # nothing missing, nothing duplicated
    assert all(read_result(p).status == "ok" for p in after)
    assert {p.name: p.stat().st_mtime_ns for p in after if p.name in before} == before  # finished runs untouched
    again = run_suite(load_suite(config), results_dir=results, progress=False)
    assert (again.reused, again.ran) == (16, 0)


def test_corrupt_truncated_and_error_files_are_reported_and_rerun(write_suite, tmp_path):
    body = "seeds = [0, 1]\n[[tasks]]\nname = 'Synthetic'\n[[agents]]\nname = 'random'\n[[agents]]\nname = 'fixed'\n"
    spec = load_suite(write_suite(body, name="damaged"))
    first = run_suite(spec, results_dir=tmp_path, progress=False)
    assert first.ran == 4 and first.exit_code == 0
    truncated, broken, errored, intact = sorted(_run_files(first.suite_dir))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = json.loads(broken.read_text())
    data["status"] = "bogus"
    broken.write_text(json.dumps(data))
    data = json.loads(errored.read_text())
    data.update(status="error", error={"type": "RuntimeError", "message": "worker lost", "traceback": ""}, final_metrics=None)
    errored.write_text(json.dumps(data))

    report = build_report(tmp_path)  # must not crash
    assert sorted(e.path for e in report.invalid) == sorted([truncated, broken])
    assert any(e.field == "status" and "bogus" in e.reason for e in report.invalid)
    markdown = to_markdown(report)
    assert truncated.name in markdown and broken.name in markdown
    assert sum(r.n_error for r in report.rows) == 1

    intact_mtime = intact.stat().st_mtime_ns
    notices: list[str] = []
    second = run_suite(spec, results_dir=tmp_path, progress=False, log=notices.append)
    assert second.reused == 1 and second.ran == 3
    assert sorted(p.name for p in second.corrupt) == sorted([truncated.name + ".corrupt", broken.name + ".corrupt"])
    assert any(truncated.name in n for n in notices) and any(broken.name in n for n in notices)
    assert all(read_result(p).status == "ok" for p in _run_files(first.suite_dir))
    assert intact.stat().st_mtime_ns == intact_mtime  # the one good file was reused, not rewritten
    final = build_report(tmp_path)
    assert not final.invalid and len(final.set_aside) == 2 and sum(r.n_ok for r in final.rows) == 4
