"""run_one: a full run's record, reproducibility, divergence and errors (which never raise)."""

from __future__ import annotations

import json

from aees_gym.core.threads import single_thread
from aees_gym.reporting.report import build_report, to_markdown
from aees_gym.suite import RunSpec, run_one
from aees_gym.suite.results import FINAL_METRIC_KEYS, WINDOW_KEYS, read_result, write_result

TINY = {"total_steps": 40, "window_length": 10, "eval_every": 2}


def spec(agent="fixed", seed=0, overrides=TINY, **kw):
    return RunSpec(suite="t", task="Synthetic", task_label="Synthetic", agent=agent, agent_label=agent, seed=seed, env_overrides=overrides, **kw)


def test_ok_run_records_windows_eval_curve_metrics_runtime_and_host(tmp_path):
    with single_thread():
        result = run_one(spec("ducb"))
    assert result.status == "ok" and result.error is None
    assert result.run_id == spec("ducb").run_id and result.env_id == "aees_gym/Synthetic-v0"
    assert result.config["total_steps"] == 40 and result.config["task"] == "Synthetic"
    assert [w["window"] for w in result.windows] == [0, 1, 2, 3]
    assert all(set(WINDOW_KEYS) <= set(w) for w in result.windows)
    assert result.windows[-1]["steps_done"] == 40
    assert result.windows[0]["context_bucket"] == "early_stable"  # the context the first choice was made in
    assert sum(w["reward"] for w in result.windows) == result.final_metrics["total_reward"]
    assert [p["step"] for p in result.eval_curve] == [20, 40]
    assert set(FINAL_METRIC_KEYS) <= set(result.final_metrics)
    assert "wall_clock_s" not in result.final_metrics  # timing lives in runtime only
    assert result.final_metrics["total_flops"] > 0
    rt = result.runtime
    assert rt["wall_clock_s"] > 0 and rt["optimizer_steps_per_s"] > 0 and len(rt["window_wall_times_s"]) == 4
    assert rt["controller_overhead_s"] >= rt["agent_time_s"] >= 0
    assert result.host["torch_num_threads"] == 1 and result.host["device"] == "cpu" and result.host["python"]
    # ducb exposes state(): snapshots at 25/50/75% and the last window, kept small.
    assert [s["window"] for s in result.agent_states] == [1, 2, 3]
    assert "lr" in result.agent_states[-1]["state"]
    path = write_result(result, tmp_path)
    assert path.name == f"{result.run_id}.json"
    assert read_result(path).content() == result.content()


def test_same_spec_gives_identical_content():
    with single_thread():
        first, second = run_one(spec("random", seed=3)), run_one(spec("random", seed=3))
        other = run_one(spec("random", seed=4))
    assert first.content() == second.content()
    assert [w["action"] for w in first.windows] != [w["action"] for w in other.windows]
    assert first.final_metrics != other.final_metrics


def test_absurd_learning_rate_is_recorded_as_diverged(tmp_path):
    overrides = {**TINY, "grid": {"lr_multipliers": [1e6], "noise_stds": [0.0]}, "base_lr": 1.0, "optimizer": "sgd"}
    result = run_one(spec("fixed", overrides=overrides, agent_kwargs={"lr_multiplier": 1e6}))
    assert result.status == "diverged", result.error
    assert result.final_metrics["diverged"] is True and result.windows[-1]["diverged"] is True
    assert len(result.windows) < 4  # the run ends at the first diverged window
    text = write_result(result, tmp_path).read_text()
    json.loads(text)  # strict JSON: non-finite numbers are stored as null
    assert "NaN" not in text and "Infinity" not in text
    assert read_result(tmp_path / f"{result.run_id}.json").status == "diverged"
    report = build_report(tmp_path, n_boot=100)
    (row,) = report.rows
    assert (row.n_runs, row.n_ok, row.n_diverged, row.n_error) == (1, 0, 1, 0)
    assert row.metrics["final_val_accuracy"].n == 1  # a diverged run still counts with its final accuracy
    assert "| fixed | 1 | 0 / 1 / 0 |" in to_markdown(report)


def test_failing_agent_is_recorded_as_error_and_does_not_raise(fake_agents):
    result = run_one(spec("crash"))
    assert result.status == "error" and result.final_metrics is None
    assert result.error["type"] == "RuntimeError"
    assert "fails on purpose in window 1" in result.error["message"]
    assert "Traceback" in result.error["traceback"] and "suite_fake_agents.py" in result.error["traceback"]
    assert result.runtime["wall_clock_s"] > 0


def test_unknown_agent_or_bad_override_or_missing_model_become_error_results(fake_agents, tmp_path):
    assert "unknown agent" in run_one(spec("nope")).error["message"]
    assert "windw" in run_one(spec(overrides={"windw": 3})).error["message"]
    missing = run_one(spec("tiny_learner", model_path=str(tmp_path / "none.zip")))
    assert missing.status == "error" and "does not exist" in missing.error["message"]
    untrained = run_one(spec("tiny_learner"))
    assert "offline learner" in untrained.error["message"]


def test_an_agent_registered_at_run_time_runs_through_run_one(monkeypatch):
    """One registry: agents.register_agent is visible to the suite (and so to the CLI)."""
    from aees_gym.suite import agent_registry
    from agents import register_agent
    from agents.baselines import FixedAgent

    class LastCellAgent(FixedAgent):
        name = "last-cell"
        description = "the grid's last cell every window"

        def __init__(self) -> None:
            super().__init__(index=8)  # the default 3 × 3 grid's last cell

    monkeypatch.setattr(agent_registry, "_explicit", {})
    register_agent("last-cell", LastCellAgent)
    with single_thread():
        result = run_one(spec("last-cell"))
    assert result.status == "ok", result.error
    last = result.config["grid"]
    assert {w["lr_multiplier"] for w in result.windows} == {last["lr_multipliers"][-1]}
    assert {w["noise_std"] for w in result.windows} == {last["noise_stds"][-1]}
