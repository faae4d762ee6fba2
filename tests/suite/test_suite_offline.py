"""Offline learners are trained once per task variant on training seeds, then evaluated on held-out seeds."""

from __future__ import annotations

import json

from aees_gym.cli import main
from aees_gym.suite import load_suite, run_suite
from aees_gym.suite.results import read_result, result_files

BODY = """
seeds = [0, 1, 2]
[[tasks]]
name = "Synthetic"
[[tasks]]
name = "Synthetic"
label = "Synthetic small lr"
overrides = { base_lr = 3e-4 }
[[agents]]
name = "tiny_learner"
label = "tiny"
training = { total_timesteps = 12, seed = 100, n_envs = 2 }
[[agents]]
name = "fixed"
"""


def test_offline_learner_trained_once_per_task_and_evaluated_on_disjoint_seeds(write_suite, tmp_path, fake_agents, monkeypatch):
    log = tmp_path / "learn.jsonl"
    monkeypatch.setenv("TINY_LEARNER_LOG", str(log))
    spec = load_suite(write_suite(BODY, name="offline"))
    outcome = run_suite(spec, results_dir=tmp_path / "results", progress=False)
    assert outcome.exit_code == 0 and outcome.trained == 2 and outcome.ran == 2 * 2 * 3
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2  # one training per task variant, not one per evaluation seed
    assert all(c["env_seeds"] == [100, 101] and c["n_envs"] == 2 for c in calls)
    assert sorted(c["env_kwargs"].get("base_lr", 0) for c in calls) == [0, 3e-4]  # trained on its own variant
    models = sorted((outcome.suite_dir / "models").glob("*.zip"))
    assert len(models) == 2 and all(m.with_suffix(".json").exists() for m in models)
    sidecar = json.loads(models[0].with_suffix(".json").read_text())
    assert sidecar["training_seeds"] == [100, 101] and sidecar["wall_clock_s"] > 0

    learned = [read_result(p) for p in result_files(outcome.suite_dir) if read_result(p).agent == "tiny_learner"]
    assert len(learned) == 6 and {r.seed for r in learned} == {0, 1, 2}
    assert all(r.status == "ok" and r.model_path in {str(m) for m in models} for r in learned)
    assert all(r.training["seeds"] == [100, 101] and not set(r.training["seeds"]) & {r.seed} for r in learned)
    # The loaded model drives the run: it plays its best training arm in every window.
    for r in learned:
        values = r.agent_states[-1]["state"]["values"]
        assert {w["action"] for w in r.windows} == {values.index(max(values))}

    again = run_suite(spec, results_dir=tmp_path / "results", progress=False)
    assert (again.trained, again.ran) == (0, 0) and len(log.read_text().splitlines()) == 2


def test_missing_model_is_retrained_before_failed_runs_are_repeated(write_suite, tmp_path, fake_agents, monkeypatch):
    log = tmp_path / "learn.jsonl"
    monkeypatch.setenv("TINY_LEARNER_LOG", str(log))
    spec = load_suite(write_suite(BODY.replace("[[tasks]]\nname = \"Synthetic\"\nlabel = \"Synthetic small lr\"\noverrides = { base_lr = 3e-4 }\n", ""), name="retrain"))
    first = run_suite(spec, results_dir=tmp_path, progress=False)
    (model,) = (first.suite_dir / "models").glob("*.zip")
    model.unlink()
    learned = [p for p in result_files(first.suite_dir) if read_result(p).agent == "tiny_learner"]
    learned[0].unlink()
    second = run_suite(spec, results_dir=tmp_path, progress=False)
    assert (second.trained, second.ran, second.exit_code) == (1, 1, 0) and model.exists()


def test_cli_train_agent_then_run_with_the_model(tmp_path, fake_agents, capsys):
    model = tmp_path / "tiny.zip"
    code = main(["train-agent", "--agent", "tiny_learner", "--task", "Synthetic", "--total-timesteps", "8", "--seed", "50",
                 "--set", "total_steps=40", "--set", "window_length=10", "--out", str(model)])
    assert code == 0 and model.exists() and "seeds [50]" in capsys.readouterr().out
    code = main(["run", "--task", "Synthetic", "--agent", "tiny_learner", "--model", str(model), "--seed", "0",
                 "--set", "total_steps=40", "--set", "window_length=10", "--out", str(tmp_path / "out")])
    assert code == 0
    (result_file,) = (tmp_path / "out").glob("*.json")
    assert read_result(result_file).status == "ok"
    assert main(["run", "--task", "Synthetic", "--agent", "tiny_learner"]) == 2  # no --model
    assert main(["train-agent", "--agent", "fixed", "--task", "Synthetic", "--total-timesteps", "8", "--out", str(model)]) == 2
