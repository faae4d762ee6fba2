"""The batched executor: runs sharing a task variant trained together, results as the local executor's."""

from __future__ import annotations

import math

import pytest

from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.batched_executor import group_runs
from aees_gym.suite.plan import plan_suite
from aees_gym.suite.results import read_result, result_files

BODY = """
seeds = [0, 1]
[[tasks]]
name = "Synthetic"
[[tasks]]
name = "Synthetic"
label = "Synthetic lr x3"
overrides = { base_lr = 3e-3 }
[[agents]]
name = "fixed"
[[agents]]
name = "random"
[[agents]]
name = "ducb"
"""
# Window-log and metric fields compared between executors (floats within the batched engine's tolerance).
RTOL = 1e-4


def _contents(suite_dir):
    return {p.stem: read_result(p).content() for p in result_files(suite_dir)}


def _assert_close(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=RTOL, abs=1e-6), where
    else:
        assert a == b, where


def test_runs_are_grouped_by_task_variant(write_suite, tmp_path):
    spec = load_suite(write_suite(BODY))
    plan = plan_suite(spec, tmp_path)
    groups = group_runs(plan.runs)
    assert len(groups) == 2 and sorted(len(g) for g in groups) == [6, 6]
    for g in groups:
        assert len({(plan.runs[i].task_label) for i in g}) == 1
    assert [len(g) for g in group_runs(plan.runs, max_group=4)] == [4, 2, 4, 2]


def test_batched_results_equal_local_within_tolerance_and_resume_reruns_only_missing(write_suite, tmp_path):
    spec = load_suite(write_suite(BODY))
    serial = run_suite(spec, results_dir=tmp_path / "serial", executor="serial", progress=False)
    batched = run_suite(spec, results_dir=tmp_path / "batched", executor="batched", progress=False)
    assert serial.statuses == batched.statuses == {"ok": 12}
    expected, got = _contents(serial.suite_dir), _contents(batched.suite_dir)
    assert expected.keys() == got.keys()
    for run_id in expected:
        _assert_close(got[run_id], expected[run_id], run_id)
    # Delete some result files: only those runs run again, and they come back the same.
    files = sorted(result_files(batched.suite_dir))
    for path in files[:3]:
        path.unlink()
    again = run_suite(spec, results_dir=tmp_path / "batched", executor="batched", progress=False)
    assert again.reused == 9 and again.ran == 3
    for run_id, content in _contents(batched.suite_dir).items():
        _assert_close(content, expected[run_id], run_id)


def test_an_erroring_agent_ends_only_its_own_run(write_suite, tmp_path, fake_agents):
    body = """
    seeds = [0, 1]
    [[tasks]]
    name = "Synthetic"
    [[agents]]
    name = "crash"
    [[agents]]
    name = "fixed"
    """
    outcome = run_suite(load_suite(write_suite(body)), results_dir=tmp_path, executor="batched", progress=False)
    results = [read_result(p) for p in result_files(outcome.suite_dir)]
    by_agent = {}
    for r in results:
        by_agent.setdefault(r.agent, []).append(r)
    assert [r.status for r in by_agent["crash"]] == ["error", "error"]
    assert "fails on purpose" in by_agent["crash"][0].error["message"]
    assert all(r.status == "ok" and len(r.windows) == 4 for r in by_agent["fixed"])
    assert outcome.exit_code == 1


def test_training_table_vec_env_batched_trains_sb3_in_one_process(write_suite, tmp_path):
    body = """
    seeds = [0, 1]
    [[tasks]]
    name = "Synthetic"
    [[agents]]
    name = "sb3"
    kwargs = { algo = "ppo", algo_kwargs = { n_steps = 8, batch_size = 16 } }
    training = { total_timesteps = 32, seed = 1000, n_envs = 4, vec_env = "batched" }
    [[agents]]
    name = "fixed"
    """
    spec = load_suite(write_suite(body))
    assert spec.agents[0].training.vec_env == "batched"
    outcome = run_suite(spec, results_dir=tmp_path, executor="batched", progress=False)
    assert outcome.statuses == {"ok": 4} and outcome.trained == 1
    sb3 = [read_result(p) for p in result_files(outcome.suite_dir) if read_result(p).agent == "sb3"]
    assert [r.training["vec_env"] for r in sb3] == ["batched", "batched"]


def test_an_unknown_vec_env_is_a_clear_error(write_suite):
    from aees_gym.suite import SuiteConfigError

    body = """
    seeds = [0]
    [[tasks]]
    name = "Synthetic"
    [[agents]]
    name = "sb3"
    training = { total_timesteps = 32, vec_env = "threads" }
    """
    with pytest.raises(SuiteConfigError, match="batched"):
        load_suite(write_suite(body))


MIXED = """
seeds = [0, 1]
[[tasks]]
name = "Synthetic"
[[agents]]
name = "heuristic"
[[agents]]
name = "ducb"
label = "ducb (heldout)"
env = { reward = { name = "heldout" } }
[[agents]]
name = "fixed"
label = "fixed sgd momentum axis"
env = { optimizer = "sgd", grid = { lr_multipliers = [1.0], noise_stds = [0.0], momenta = [0.0, 0.9] } }
[[agents]]
name = "fixed"
label = "fixed schedule-free"
env = { optimizer = "schedulefree_adamw" }
"""


def test_exact_candidates_batch_and_unbatchable_settings_fall_back_to_single_runs(write_suite, tmp_path):
    """The heuristic's exact candidates, the held-out reward's runs and a momentum axis batch; an
    optimizer the engine does not implement sends those runs through run_one, with the same results."""
    spec = load_suite(write_suite(MIXED))
    plan = plan_suite(spec, tmp_path)
    groups = group_runs(plan.runs)
    assert sorted(len(g) for g in groups) == [1, 1, 2, 2, 2]  # heuristic, ducb (heldout), momentum × 2 seeds; schedule-free alone
    singles = [plan.runs[g[0]] for g in groups if len(g) == 1]
    assert all(r.env_overrides["optimizer"] == "schedulefree_adamw" for r in singles)
    serial = run_suite(spec, results_dir=tmp_path / "serial", executor="serial", progress=False)
    batched = run_suite(spec, results_dir=tmp_path / "batched", executor="batched", progress=False)
    assert serial.statuses == batched.statuses == {"ok": 8}
    expected, got = _contents(serial.suite_dir), _contents(batched.suite_dir)
    assert expected.keys() == got.keys()
    for run_id in expected:
        _assert_close(expected[run_id]["windows"], got[run_id]["windows"], run_id)
    heuristic = [read_result(p) for p in result_files(batched.suite_dir) if read_result(p).agent == "heuristic"]
    assert len({w["lr_multiplier"] for r in heuristic for w in r.windows}) > 1  # exact, moving candidates
