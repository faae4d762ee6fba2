"""The leaderboard end to end on synthetic-mix-v0: quick mode, resume, stale runs, pending rows, scoring."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from aees_gym.reporting.leaderboard import BEST_FIXED, ci_widths, raw_scores
from aees_gym.reporting.rows import TaskMetric
from aees_gym.suite import SuiteConfigError
from aees_gym.suite.leaderboard import load_leaderboard, parse_leaderboard, plan_set
from experiments.leaderboard import CONFIG, main

BOARD = """\
executor = "batched"
workers = 1
n_boot = 200
[[sets]]
name = "synthetic-mix-v0"
[[agents]]
name = "random"
[[agents]]
name = "ducb"
[[agents]]
name = "sb3"
label = "PPO (aees)"
kwargs = { algo = "ppo", algo_kwargs = { n_steps = 8, batch_size = 32, n_epochs = 1 } }
training = { total_timesteps = 64, seed = 7, n_envs = 4, vec_env = "batched" }
[[agents]]
name = "sb3"
label = "PPO (unregistered)"
kwargs = { algo = "ppo", algo_kwargs = { n_steps = 8, batch_size = 32, n_epochs = 1 } }
env = { reward = { name = "no-such-reward" } }
training = { total_timesteps = 64, seed = 7, n_envs = 4, vec_env = "batched" }
"""


def _rows(table: Path) -> dict[str, list[str]]:
    rows = {}
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| rank"):
            rows[cells[1]] = cells
    return rows


@pytest.fixture
def board(tmp_path: Path) -> Path:
    path = tmp_path / "board.toml"
    path.write_text(BOARD)
    return path


def _run(board: Path, tmp_path: Path, *extra: str) -> int:
    return main([str(board), "--results-dir", str(tmp_path / "res"), "--out", str(tmp_path / "board.md"), *extra])


@pytest.mark.slow
def test_leaderboard_runs_resumes_and_lists_pending(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An unregistered reward is an error before anything runs …
    assert _run(board, tmp_path) == 2
    assert "no-such-reward" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
    # … and with --skip-unavailable its agent is listed as pending, everything else runs.
    assert _run(board, tmp_path, "--skip-unavailable") == 0
    rows = _rows(tmp_path / "board.md")
    fixed = [label for label in rows if label.startswith("fixed ")]
    assert len(fixed) == 9  # every cell of the 3 × 3 grid
    for label in ("random", "ducb", "PPO (aees)", BEST_FIXED, *fixed):
        assert rows[label][-1] == "done", rows[label]
        assert rows[label][11] == "2 (0)"  # both test runs of synthetic-mix-v0
    assert rows["random"][8] == "0.00" and rows["fixed lr1_n0"][6] == "ref."  # normalised; P(better than the reference)
    scored = [cells for cells in rows.values() if cells[-1] == "done"]
    assert [float(c[4]) for c in scored] == sorted((float(c[4]) for c in scored), reverse=True)  # sorted by the raw IQM
    assert rows["PPO (aees)"][2] == "aees" and rows["PPO (aees)"][3].startswith("64 windows")
    assert "not registered" in rows["PPO (unregistered)"][-1]
    suite_dir = tmp_path / "res" / "leaderboard" / "synthetic-mix-v0"
    (model,) = (suite_dir / "models").glob("*.zip")
    assert not list((suite_dir / "models").glob("*.progress.json"))  # the report goes once the model is saved
    results = sorted(suite_dir.glob("*.json"))
    assert len(results) == 2 * (9 + 3)
    assert {json.loads(p.read_text())["task_label"].split("[")[0] for p in results} == {"Synthetic"}

    # Resume: nothing is trained or run again.
    stamps = {p: p.stat().st_mtime_ns for p in [model, *results]}
    capsys.readouterr()
    assert _run(board, tmp_path, "--skip-unavailable") == 0
    out = capsys.readouterr().out
    assert "training" not in out and "running" not in out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # A lost run is run again, alone; a run recorded under another config is stale and runs again too.
    results[0].unlink()
    data = json.loads(results[1].read_text())
    data["config"]["batch_size"] += 1
    results[1].write_text(json.dumps(data))
    assert _run(board, tmp_path, "--skip-unavailable") == 0
    out = capsys.readouterr().out
    assert "1 finished runs are stale" in out and "running 2 test runs" in out and "training" not in out
    assert results[0].exists() and json.loads(results[1].read_text())["config"]["batch_size"] == data["config"]["batch_size"] - 1


@pytest.mark.slow
def test_only_runs_the_named_agents(board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(board, tmp_path, "--only", "no such agent") == 2
    assert "'PPO (aees)'" in capsys.readouterr().err  # the error lists the labels to choose from
    assert _run(board, tmp_path, "--skip-unavailable", "--only", "PPO (aees)", "--only", "ducb") == 0
    rows = _rows(tmp_path / "board.md")
    assert rows["PPO (aees)"][-1] == rows["ducb"][-1] == "pending: waiting for random, every fixed cell and the reference 'fixed lr1_n0'"
    assert rows["PPO (aees)"][3].startswith("64 windows")
    assert rows["random"][-1] == "pending: 0 of 2 test runs finished"
    suite_dir = tmp_path / "res" / "leaderboard" / "synthetic-mix-v0"
    assert {json.loads(p.read_text())["agent_label"] for p in suite_dir.glob("*.json")} == {"PPO (aees)", "ducb"}


def test_pending_rows_before_anything_ran(board: Path, tmp_path: Path) -> None:
    assert _run(board, tmp_path, "--table-only") == 0
    rows = _rows(tmp_path / "board.md")
    assert rows["PPO (aees)"][-1] == "pending: trained 0 of 64 windows"
    assert rows["random"][-1] == "pending: 0 of 2 test runs finished"
    assert "not registered" in rows["PPO (unregistered)"][-1]
    assert BEST_FIXED not in rows  # no score without random and the fixed cells


def test_quick_mode_keeps_every_agent_on_the_test_set(tmp_path: Path) -> None:
    spec = load_leaderboard(CONFIG)
    quick = spec.quick(tmp_path)
    assert list(quick.sets) == ["synthetic-mix-v0"] and [e.label for e in quick.entries] == [e.label for e in spec.entries]
    learners = [e.agent.training for e in quick.entries if e.agent.training is not None]
    assert len(learners) == 6 and all(t.total_timesteps == 64 and t.n_envs <= 4 for t in learners)
    full = [e.agent.training for e in spec.entries if e.agent.training is not None]
    assert all(t.total_timesteps >= 100_000 and t.vec_env == "batched" for t in full)
    assert {e.reward for e in spec.entries if e.agent.training is not None} == {"aees", "heldout"}
    assert len(spec.sets) >= 2


def test_plan_trains_on_train_and_runs_the_test_split(tmp_path: Path) -> None:
    plan = plan_set(load_leaderboard(CONFIG), "digits-mix-v0", tmp_path)
    s = plan.instance_set
    assert {r.task_label for r in plan.plan.runs} == {i.name for i in s.test}
    assert all(r.env_overrides["window_length"] == 20 for r in plan.plan.runs)
    for job in plan.plan.trainings:
        assert job.env_overrides["instance_set"] == "digits-mix-v0" and job.env_overrides["split"] == "train"
    heldout = [j for j in plan.plan.trainings if j.env_overrides.get("reward") == {"name": "heldout"}]
    assert len(heldout) == 3 and len({j.model_path for j in plan.plan.trainings}) == 6


def test_bad_leaderboard_files_are_named() -> None:
    with pytest.raises(SuiteConfigError, match="Unknown instance set"):
        parse_leaderboard({"sets": [{"name": "nope-v0"}], "agents": [{"name": "random"}]})
    with pytest.raises(SuiteConfigError, match="include 'random'"):
        parse_leaderboard({"sets": [{"name": "synthetic-mix-v0"}], "agents": [{"name": "ducb"}]})


def _result(agent: str, config: str, seed: int, value: float | None) -> SimpleNamespace:
    return SimpleNamespace(agent_label=agent, task_label=f"{config}#{seed}", final_metrics={"perplexity": value})


def test_scores_follow_the_metric_direction() -> None:
    # Lower is better: the best fixed cell is the one with the lowest mean.
    runs = [_result("random", "A", s, v) for s, v in ((0, 10.0), (1, 12.0))]
    runs += [_result("fixed a", "A", s, v) for s, v in ((0, 6.0), (1, 6.0))]
    runs += [_result("fixed b", "A", s, v) for s, v in ((0, 20.0), (1, 20.0))]
    runs += [_result("agent", "A", s, v) for s, v in ((0, 8.5), (1, None))]  # one run without the metric
    scores = raw_scores(runs, TaskMetric("perplexity", False), ["fixed a", "fixed b"], "fixed a", n_boot=100)
    assert scores[BEST_FIXED].normalised[0] == pytest.approx(1.0) and scores["random"].normalised[0] == pytest.approx(0.0)
    assert scores["fixed b"].normalised[0] == pytest.approx((20 - 11) / (6 - 11))
    # The missing value counts as the worst run of the configuration (20), in the raw IQM too.
    assert scores["agent"].iqm == pytest.approx(np.mean([8.5, 20.0])) and scores["agent"].diverged == 1
    # Paired by instance against the reference (6, 6): 8.5 and 20 both lose.
    assert scores["agent"].poi[0] == 0.0 and scores["random"].poi[0] == 0.0 and scores["fixed a"].poi is None
    assert scores["fixed b"].poi[0] == 0.0 and scores[BEST_FIXED].poi[0] == 0.5


def test_the_normaliser_floor_keeps_tiny_ranges_from_magnifying() -> None:
    # Random ties the best cell up to 0.001 accuracy: without a floor, 0.001 would be the whole scale.
    runs = [_result("random", "A", s, 0.900) for s in range(3)] + [_result("fixed a", "A", s, 0.901) for s in range(3)]
    runs += [_result("agent", "A", s, 0.905) for s in range(3)]
    for r in runs:
        r.final_metrics = {"val_accuracy": r.final_metrics["perplexity"]}
    scores = raw_scores(runs, TaskMetric("val_accuracy", True), ["fixed a"], "fixed a", n_boot=100)
    assert scores["agent"].normalised[0] == pytest.approx(0.005 / 0.05)  # floor: 5% of the accuracy scale
    assert scores["agent"].poi[0] == 1.0
    widths = ci_widths(list(scores.values()))
    assert widths["iqm"] == (0.0, 0.0) and widths["poi"] == (0.0, 0.0)  # runs identical within each agent


def test_a_reference_missing_from_the_set_is_named(board: Path, tmp_path: Path) -> None:
    spec = parse_leaderboard({"sets": [{"name": "synthetic-mix-v0"}], "agents": [{"name": "random"}], "reference": "tuned"})
    with pytest.raises(SuiteConfigError, match="reference 'tuned' is not an agent of set 'synthetic-mix-v0'; choose one of"):
        plan_set(spec, "synthetic-mix-v0", tmp_path)


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path: Path) -> None:
    assert main(["--quick", "--skip-unavailable", "--results-dir", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "leaderboard.md")
    learners = [f"{algo} ({reward})" for algo in ("PPO", "A2C", "DQN") for reward in ("aees", "heldout")]
    for label in ("random", "ducb", "contextual", "heuristic", *learners, BEST_FIXED):
        assert rows[label][-1] == "done", rows[label]
    # Every learner trains on the batched engine, the heldout ones included: one model each.
    assert len(list((tmp_path / "leaderboard" / "synthetic-mix-v0" / "models").glob("*.zip"))) == 6


def test_a_training_in_flight_shows_its_last_progress_report(board: Path, tmp_path: Path) -> None:
    from aees_gym.core.fileio import atomic_write_json
    from aees_gym.suite.training import checkpoint_path, progress_path

    spec = load_leaderboard(board)
    job = plan_set(spec, "synthetic-mix-v0", tmp_path / "res").job_of("PPO (aees)")
    report = {"windows_trained": 32, "total_timesteps": 64, "started_utc": "2026-01-01T00:00:00+00:00",
              "updated_utc": "2026-01-01T00:05:00+00:00"}
    atomic_write_json(progress_path(job.model_path), report)
    assert _run(board, tmp_path, "--table-only") == 0
    status = _rows(tmp_path / "board.md")["PPO (aees)"][-1]
    assert status == "pending: 32 of 64 windows trained (report of 2026-01-01T00:05:00+00:00; a restart begins again from 0)"
    checkpoint_path(job.model_path).write_bytes(b"")  # only its presence is read here
    assert _run(board, tmp_path, "--table-only") == 0
    assert _rows(tmp_path / "board.md")["PPO (aees)"][-1].endswith("a restart resumes from its last checkpoint)")
    atomic_write_json(progress_path(job.model_path), {**report, "checkpoint_windows": 16})  # a learner that says where
    assert _run(board, tmp_path, "--table-only") == 0
    assert _rows(tmp_path / "board.md")["PPO (aees)"][-1].endswith("a restart resumes from its last checkpoint, at window 16)")
    progress_path(job.model_path).write_text("{not json")  # a torn or foreign file reads as no report
    assert _run(board, tmp_path, "--table-only") == 0
    assert _rows(tmp_path / "board.md")["PPO (aees)"][-1] == "pending: trained 0 of 64 windows; a checkpoint is kept"
