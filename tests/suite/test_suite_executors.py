"""Executors: the same spec gives the same result content serially, in a spawned pool and on Ray."""

from __future__ import annotations

import importlib.util
import json

import pytest
from suite_helpers import synthetic_suite

from aees_gym.suite import execute, load_suite, run_suite
from aees_gym.suite.results import read_result, result_files

BODY = synthetic_suite('name = "random"', 'name = "ducb"')


def _contents(suite_dir):
    return {p.stem: read_result(p).content() for p in result_files(suite_dir)}


def fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return x * 10


def test_serial_executor_yields_exceptions_instead_of_raising():
    outcomes = dict(execute(fails_on_two, [1, 2, 3]))
    assert outcomes[0] == 10 and outcomes[2] == 30
    assert isinstance(outcomes[1], ValueError)
    with pytest.raises(ValueError, match="choose one of"):
        execute(fails_on_two, [1], executor="threads")
    with pytest.raises(ValueError, match="workers"):
        execute(fails_on_two, [1], workers=0)


@pytest.mark.slow
def test_serial_and_local_and_ray_give_identical_content(write_suite, tmp_path):
    spec = load_suite(write_suite(BODY, name="same"))
    serial = run_suite(spec, results_dir=tmp_path / "serial", executor="serial", progress=False)
    local = run_suite(spec, results_dir=tmp_path / "local", executor="local", workers=2, progress=False)
    assert serial.ran == local.ran == 4 and serial.exit_code == local.exit_code == 0
    reference = _contents(serial.suite_dir)
    assert len(reference) == 4
    assert _contents(local.suite_dir) == reference
    pids = {read_result(p).host["pid"] for p in result_files(local.suite_dir)}
    assert len(pids) >= 1 and all(read_result(p).host["torch_num_threads"] == 1 for p in result_files(local.suite_dir))
    if importlib.util.find_spec("ray") is not None:
        ray_run = run_suite(spec, results_dir=tmp_path / "ray", executor="ray", workers=2, progress=False)
        assert ray_run.ran == 4 and _contents(ray_run.suite_dir) == reference
    else:
        with pytest.raises(ImportError, match=r"install the 'ray' extra: pip install 'aees-gym\[ray\]'"):
            run_suite(spec, results_dir=tmp_path / "ray", executor="ray", progress=False)


def test_a_failing_run_is_recorded_and_the_others_continue(write_suite, tmp_path, fake_agents):
    spec = load_suite(write_suite(BODY.replace('name = "ducb"', 'name = "crash"'), name="mixed"))
    outcome = run_suite(spec, results_dir=tmp_path, progress=False)
    assert outcome.statuses == {"ok": 2, "error": 2} and outcome.exit_code == 1
    errors = [read_result(p) for p in result_files(outcome.suite_dir) if read_result(p).status == "error"]
    assert all("fails on purpose" in r.error["message"] for r in errors)
    session = json.loads((outcome.suite_dir / "_last_session.json").read_text())
    assert session["planned"] == 4 and session["ran"] == 4 and session["statuses"] == {"ok": 2, "error": 2}
    assert session["wall_clock_s"] >= 0 and session["executor"] == "serial"
