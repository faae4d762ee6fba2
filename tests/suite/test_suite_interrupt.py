"""Ctrl-C / SIGTERM stop a running suite at once with every executor, keep what finished, and a rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aees_gym.suite import load_suite, plan_suite
from aees_gym.suite.orchestrate import count_finished, inspect_existing
from aees_gym.suite.results import result_files

# Four task variants (four batched groups) × two agents × four seeds: minutes of work in all, so a
# suite that did not stop would still be running long after the signal.
MANY_RUNS = """
seeds = [0, 1, 2, 3]
[[tasks]]
name = "Synthetic"
label = "a"
[[tasks]]
name = "Synthetic"
label = "b"
overrides = { base_lr = 2e-3 }
[[tasks]]
name = "Synthetic"
label = "c"
overrides = { base_lr = 5e-4 }
[[tasks]]
name = "Synthetic"
label = "d"
overrides = { base_lr = 3e-3 }
[[agents]]
name = "random"
[[agents]]
name = "fixed"
"""
ENV = "[env]\ntotal_steps = 300\nwindow_length = 10\n"


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc; the pool workers of a running suite)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "workers", "sig"),
    [("serial", 1, signal.SIGINT), ("local", 2, signal.SIGINT), ("batched", 1, signal.SIGINT), ("batched", 2, signal.SIGTERM)],
)
def test_first_interrupt_stops_at_once_keeps_results_and_rerun_resumes(write_suite, tmp_path, executor, workers, sig):
    config = write_suite(MANY_RUNS, name="stopped", env=ENV)
    suite_dir = tmp_path / "out" / "stopped"
    cmd = [sys.executable, "-m", "aees_gym.cli", "suite", str(config), "--results-dir", str(tmp_path / "out"),
           "--executor", executor, "--workers", str(workers), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 600
        while not (suite_dir.is_dir() and result_files(suite_dir)):
            assert proc.poll() is None, f"the suite ended before writing a result: {proc.communicate()}"
            assert time.monotonic() < deadline, "no result file appeared"
            time.sleep(0.05)
        at_signal = len(result_files(suite_dir))
        children = _children(proc.pid)
        os.kill(proc.pid, sig)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=120)
        stopped_after = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    planned = len(plan_suite(load_suite(config), suite_dir).runs)
    kept = count_finished(suite_dir)
    assert proc.returncode == 130, (out, err)
    assert err == f"interrupted: {kept} results kept; rerun to resume\n", err  # one line, no traceback
    assert out == ""
    # Stopped, not drained: the runs in flight at the signal were cancelled, not finished (at most
    # one per worker may have landed between the snapshot above and the signal).
    assert at_signal <= kept <= at_signal + workers < planned, (at_signal, kept, planned, stopped_after)
    assert len(result_files(suite_dir)) == kept  # every file is a whole, valid result; no temp files left
    assert not [p for p in suite_dir.iterdir() if p.name.startswith(".")]
    # No worker process is left behind.
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []
    # The rerun reuses exactly what was kept and runs the rest.
    state = inspect_existing(plan_suite(load_suite(config), suite_dir), suite_dir)
    assert len(state.finished) == kept and len(state.pending) == planned - kept and not state.corrupt
