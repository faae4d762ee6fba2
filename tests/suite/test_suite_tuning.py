"""The tuned-constant baseline: a base-LR sweep on tuning seeds, the best point evaluated on the others."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from types import SimpleNamespace

import pytest

from aees_gym.reporting.report import build_report
from aees_gym.suite import SuiteConfigError, parse_suite, run_suite
from aees_gym.suite import tuning as tuning_mod
from aees_gym.suite.results import read_result, result_files, scan_results
from aees_gym.suite.tuning import TUNING_DIR, TUNING_RECORD, choose_base_lrs, sweep_runs, tuned_runs
from aees_gym.tasks import get_task

SUITE = """
name = "tune"
seeds = [0, 1]
[env]
total_steps = 40
window_length = 20
[[tasks]]
name = "Synthetic"
[[agents]]
name = "fixed"
label = "fixed ×1.0"
[tuning]
base_lr_multipliers = [0.1, 1, 30]
seeds = [100, 101]
"""


def suite(extra: str = "", **tuning) -> dict:
    data = tomllib.loads(SUITE + extra)
    data["tuning"].update(tuning)
    return data


@pytest.mark.parametrize(
    ("tuning", "expected"),
    [
        ({"seeds": [1, 100]}, ["overlap the evaluation seeds", "[1]"]),
        ({"base_lr_multipliers": []}, ["base_lr_multipliers", "positive numbers"]),
        ({"base_lr_multipliers": [1, -2]}, ["positive numbers"]),
        ({"base_lr_multipliers": [1, 1]}, ["duplicates"]),
        ({"seeds": [100, 100]}, ["seeds", "duplicates"]),
        ({"label": "fixed ×1.0"}, ["already an agent label"]),
        ({"agent": "fixd"}, ["tuning.agent", "fixd"]),
        ({"kwargs": {"lr_mult": 2}}, ["tuning.kwargs", "lr_multiplier"]),
        ({"sedes": [3]}, ["unknown key 'sedes'", "seeds"]),
        ({"agent_grid": {"c": []}}, ["tuning.agent_grid.c", "non-empty list"]),
        ({"agent_grid": {"cc": [1.0]}}, ["tuning.agent_grid", "cc"]),
        ({"env_grid": {"shedule": ["cosine"]}}, ["tuning.env_grid", "'shedule' is not an env setting"]),
        ({"env": {"shedule": "cosine"}}, ["tuning.env", "'shedule' is not an env setting"]),
    ],
)
def test_bad_tuning_tables_are_refused_naming_the_key(tuning, expected):
    with pytest.raises(SuiteConfigError) as info:
        parse_suite(suite(**tuning), "s.toml")
    for part in expected:
        assert part in str(info.value)


def test_sweep_covers_every_multiplier_on_tuning_seeds_only():
    spec = parse_suite(suite())
    runs = sweep_runs(spec)
    base = get_task("Synthetic").default_config().base_lr
    assert sorted({r.seed for r in runs}) == [100, 101]
    assert sorted({r.env_overrides["base_lr"] for r in runs}) == pytest.approx([0.1 * base, base, 30 * base])
    assert len(runs) == 3 * 2 and all(r.env_overrides["total_steps"] == 40 for r in runs)


def fake_results(runs, metric_of, scoring_of=lambda m, s: 0.5):
    """Results by run id with the reward-validation part's ``reward_val_accuracy = reward_val_loss = metric_of(multiplier,
    seed)`` (None: a diverged run) and the scoring part's metrics ``scoring_of(multiplier, seed)``."""
    out = {}
    for r in runs:
        m = r.sweep["tuning_base_lr_multiplier"]
        value, scored = metric_of(m, r.seed), scoring_of(m, r.seed)
        status = "diverged" if value is None else "ok"
        out[r.run_id] = SimpleNamespace(status=status, final_metrics={
            "reward_val_accuracy": value, "reward_val_loss": value, "val_accuracy": scored, "val_loss": scored, "steps_done": 40})
    return out


def test_the_best_mean_wins_and_a_diverged_candidate_never_does():
    spec = parse_suite(suite())
    runs = sweep_runs(spec)
    # ×30 has the best single seed but diverged on the other; ×1 has the best mean.
    table = {(0.1, 100): 0.5, (0.1, 101): 0.6, (1.0, 100): 0.8, (1.0, 101): 0.7, (30.0, 100): 0.99, (30.0, 101): None}
    # The scoring part prefers ×0.1 everywhere: the choice never reads it.
    [choice] = choose_base_lrs(spec, runs, fake_results(runs, lambda m, s: table[(m, s)], lambda m, s: 1.0 if m == 0.1 else 0.0))
    assert choice.multiplier == 1.0 and choice.metric == "val_accuracy" and choice.selection_metric == "reward_val_accuracy"
    assert choice.budget == {"points": 3, "instances": 2, "runs": 6, "finished_runs": 6, "optimizer_steps": 240}
    assert [row["mean"] for row in choice.table] == pytest.approx([0.55, 0.75, None])
    evaluated = tuned_runs(spec, [choice])
    assert [r.seed for r in evaluated] == [0, 1] and {r.agent_label for r in evaluated} == {"tuned"}
    assert all(r.env_overrides["base_lr"] == choice.base_lr and r.training["seeds"] == [100, 101] for r in evaluated)
    assert evaluated[0].training["budget"]["runs"] == 6 and evaluated[0].training["metric"] == "reward_val_accuracy"


def test_lower_is_better_metrics_pick_the_smallest(monkeypatch):
    spec = parse_suite(suite())
    runs = sweep_runs(spec)
    values = {0.1: 0.9, 1.0: 0.2, 30.0: 0.5}
    results = fake_results(runs, lambda m, s: values[m])
    assert choose_base_lrs(spec, runs, results)[0].multiplier == 0.1  # accuracy: the largest
    lossy = dataclasses.replace(get_task("Synthetic"), metric="val_loss", higher_is_better=False)
    monkeypatch.setattr(tuning_mod, "get_task", lambda name: lossy)
    [choice] = choose_base_lrs(spec, runs, results)
    assert choice.metric == "val_loss" and choice.multiplier == 1.0  # a loss: the smallest
    assert choice.selection_metric == "reward_val_loss"


def test_no_candidate_left_means_no_tuned_runs():
    spec = parse_suite(suite())
    runs = sweep_runs(spec)
    [choice] = choose_base_lrs(spec, runs, fake_results(runs, lambda m, s: None))
    assert choice.multiplier is None and tuned_runs(spec, [choice]) == []


@pytest.mark.slow
def test_suite_tunes_on_tuning_seeds_and_evaluates_only_on_evaluation_seeds(tmp_path):
    spec = parse_suite(suite())
    outcome = run_suite(spec, results_dir=tmp_path, progress=False)
    assert outcome.exit_code == 0 and outcome.planned == 2 + 2  # fixed ×1.0 and tuned, two seeds each
    suite_dir = tmp_path / "tune"
    sweep = [read_result(p) for p in sorted((suite_dir / TUNING_DIR).glob("*.json")) if not p.name.startswith("_")]
    assert len(sweep) == 6 and {r.seed for r in sweep} == {100, 101}
    means = {}
    for r in sweep:  # chosen by the reward-validation part
        means.setdefault(r.env_overrides["base_lr"], []).append(r.final_metrics["reward_val_accuracy"])
    best_lr = max(means, key=lambda lr: sum(means[lr]) / 2)
    evaluated = [read_result(p) for p in result_files(suite_dir)]
    tuned = [r for r in evaluated if r.agent_label == "tuned"]
    assert {r.seed for r in evaluated} == {0, 1} and len(tuned) == 2
    assert all(r.env_overrides["base_lr"] == pytest.approx(best_lr) and r.config["base_lr"] == pytest.approx(best_lr) for r in tuned)
    assert tuned[0].training["kind"] == "tuning" and tuned[0].training["seeds"] == [100, 101]
    record = json.loads((suite_dir / TUNING_DIR / TUNING_RECORD).read_text())
    assert record["choices"][0]["base_lr"] == pytest.approx(best_lr) and len(record["choices"][0]["table"]) == 3
    assert record["choices"][0]["budget"]["runs"] == 6 and record["choices"][0]["budget"]["optimizer_steps"] == 6 * 40
    # Reports read only evaluation runs; a second call reuses everything.
    assert {r.seed for r in scan_results(suite_dir).results.values()} == {0, 1}
    assert {row.agent_label for row in build_report(tmp_path, n_boot=50).rows} == {"tuned", "fixed ×1.0"}
    again = run_suite(spec, results_dir=tmp_path, progress=False)
    assert again.ran == 0 and again.reused == 4


def test_report_states_each_agents_reward_and_the_tuned_choice():
    from suite_helpers import make_result

    from aees_gym.reporting.settings import settings_table

    plain = make_result("fixed ×1.0", 0, 0.9)
    heldout = dataclasses.replace(make_result("ducb heldout", 0, 0.9, agent="ducb"), config={"reward": {"name": "heldout"}, "optimizer": "adamw", "base_lr": 1e-3})
    tuned = dataclasses.replace(
        make_result("tuned", 0, 0.9), config={"reward": {"name": "aees"}, "optimizer": "prodigy", "base_lr": 1.0},
        training={"kind": "base_lr_tuning", "seeds": [100], "metric": "val_accuracy", "candidates": [0.5, 1.0], "base_lr": 1.0},
    )
    lines = settings_table([plain, heldout, tuned])
    row = {line.split(" | ")[1]: line for line in lines[2:]}
    assert "| heldout |" in row["ducb heldout"] and "| prodigy | 1 | sweep ×0.5, 1.0 on seeds [100] by val_accuracy |" in row["tuned"]
    assert "| — | — | — |" in row["fixed ×1.0"]  # a result without config says so instead of guessing


def test_agents_carry_their_own_env_settings():
    from aees_gym.suite import plan_suite

    extra = '[[agents]]\nname = "fixed"\nlabel = "Prodigy"\nenv = { optimizer = "prodigy", base_lr = 1.0, reward = { name = "heldout" } }\n'
    data = suite(extra)
    del data["tuning"]
    plan = plan_suite(parse_suite(data), "/tmp/unused")
    by_label = {r.agent_label: r.env_overrides for r in plan.runs}
    assert by_label["Prodigy"] == {"total_steps": 40, "window_length": 20, "optimizer": "prodigy", "base_lr": 1.0, "reward": {"name": "heldout"}}
    assert by_label["fixed ×1.0"] == {"total_steps": 40, "window_length": 20}
    bad = suite('[[agents]]\nname = "fixed"\nlabel = "x"\nenv = { optimiser = "prodigy" }\n')
    with pytest.raises(SuiteConfigError, match="optimiser"):
        parse_suite(bad)


def test_the_references_suite_loads_and_plans():
    from pathlib import Path

    from aees_gym.suite import load_suite, plan_suite

    spec = load_suite(Path(__file__).resolve().parents[2] / "experiments" / "references.toml")
    assert spec.tuning is not None and not set(spec.tuning.seeds) & set(spec.seeds)
    plan = plan_suite(spec, "/tmp/unused")
    assert len(plan.runs) == 2 * 5 * 5 and len(sweep_runs(spec)) == 2 * 5 * 2
    assert {r.env_overrides.get("optimizer") for r in plan.runs} == {None, "schedulefree_adamw", "prodigy"}


def test_a_grid_tunes_agent_arguments_and_env_settings_together():
    data = suite(agent="ducb", agent_grid={"c": [0.1, 1.0]}, env={"schedule": "cosine"}, base_lr_multipliers=[0.5, 2])
    spec = parse_suite(data)
    runs = sweep_runs(spec)
    assert len(runs) == 2 * 2 * 2 and {r.agent_kwargs["c"] for r in runs} == {0.1, 1.0}
    assert all(r.env_overrides["schedule"] == "cosine" for r in runs)
    values = {(0.5, 0.1): 0.6, (0.5, 1.0): 0.7, (2.0, 0.1): 0.9, (2.0, 1.0): 0.8}
    results = {r.run_id: SimpleNamespace(status="ok", final_metrics={
        "reward_val_accuracy": values[(r.sweep["tuning_base_lr_multiplier"], r.agent_kwargs["c"])], "steps_done": 40}) for r in runs}
    [choice] = choose_base_lrs(spec, runs, results)
    assert choice.point == {"base_lr_multiplier": 2.0, "env": {}, "agent": {"c": 0.1}} and choice.budget["points"] == 4
    evaluated = tuned_runs(spec, [choice])
    base = get_task("Synthetic").default_config().base_lr
    assert {r.agent_kwargs["c"] for r in evaluated} == {0.1} and {r.agent for r in evaluated} == {"ducb"}
    assert all(r.env_overrides["base_lr"] == pytest.approx(2 * base) and r.env_overrides["schedule"] == "cosine" for r in evaluated)


def test_tuning_a_task_without_a_reward_validation_metric_is_refused():
    from aees_gym.suite.tuning import TuningInstance, TuningProblem, sweep_specs

    with pytest.raises(ValueError, match="not measured on a reward-validation part"):
        sweep_specs(TuningProblem(), [TuningInstance("GPT2", "GPT2", 100)], "s")  # GPT2 keeps no reward part by default
    with pytest.raises(ValueError, match="reward_fraction is 0"):
        sweep_specs(TuningProblem(), [TuningInstance("Synthetic", "S", 100, {"reward_fraction": 0.0})], "s")
    kept = sweep_specs(TuningProblem(), [TuningInstance("GPT2", "GPT2", 100, {"reward_fraction": 0.2})], "s")
    assert len(kept) == 1 and kept[0].env_overrides["reward_fraction"] == 0.2


def test_tuned_specs_run_the_choice_on_test_instances_never_tuned_on():
    from aees_gym.suite.tuning import TuningInstance, TuningProblem, choose_point, sweep_specs, tuned_specs

    problem = TuningProblem("ducb", agent_grid={"c": (0.1, 1.0)})
    tuning = [TuningInstance("Synthetic", f"S#{s}", s, {"total_steps": 40}) for s in (100, 101)]
    runs = sweep_specs(problem, tuning, "board")
    results = {r.run_id: SimpleNamespace(status="ok", final_metrics={"reward_val_accuracy": r.agent_kwargs["c"], "steps_done": 40})
               for r in runs}
    choice = choose_point(problem, tuning, runs, results, "S")
    test = [TuningInstance("Synthetic", f"S#{s}", s, {"total_steps": 40}) for s in (0, 1, 2)]
    evaluated = tuned_specs(problem, choice, tuning, test, "board", "ducb (tuned c)")
    assert [r.seed for r in evaluated] == [0, 1, 2] and {r.agent_kwargs["c"] for r in evaluated} == {1.0}
    assert evaluated[0].training["budget"] == {"points": 2, "instances": 2, "runs": 4, "finished_runs": 4, "optimizer_steps": 160}
    with pytest.raises(ValueError, match="tuning instances too"):
        tuned_specs(problem, choice, tuning, tuning[:1], "board", "x")
