"""Report statistics on a hand-made results folder with known answers; tables, CSV and plots."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace

import numpy as np
import pytest
from suite_helpers import make_result

from aees_gym.reporting.effect_size import hedges_correction
from aees_gym.reporting.report import ALL_TASKS, build_report, is_fixed_baseline, tasks_csv, to_csv, to_markdown, write_report
from aees_gym.suite.results import write_result

A = [0.5, 0.6, 0.7, 0.8]
BASE = [0.55, 0.65, 0.75, 0.85]


@pytest.fixture
def hand_made(tmp_path):
    suite = tmp_path / "hand"
    for seed, (a, b) in enumerate(zip(A, BASE, strict=True)):
        write_result(make_result("A", seed, a, agent="ducb", train_loss=float(seed + 1), reward=0.1 * seed,
                                 steps_to_target=None if seed < 2 else 40), suite)
        write_result(make_result("fixed ×1.0", seed, b, agent_kwargs={"lr_multiplier": 1.0}), suite)
        write_result(make_result("fixed ×2.0", seed, b - 0.5, agent_kwargs={"lr_multiplier": 2.0}), suite)
        # A second task where A always wins: the all-tasks PoI is the mean of the two tasks' PoIs.
        write_result(make_result("A", seed, 0.9, agent="ducb", task_label="U"), suite)
        write_result(make_result("fixed ×1.0", seed, 0.1, task_label="U"), suite)
    # A diverged run keeps its final accuracy (near chance), so divergence lowers the numbers.
    write_result(make_result("A", 4, 0.1, agent="ducb", status="diverged", train_loss=None), suite)
    write_result(make_result("A", 5, None, agent="ducb", status="error"), suite)
    (suite / "0000truncated.json").write_text('{"schema_version": 1, "run_id": ')
    return tmp_path


def row(report, task, label):
    return next(r for r in (*report.rows, *report.overall) if r.task_label == task and r.agent_label == label)


def test_statistics_match_hand_computed_values(hand_made):
    report = build_report(hand_made, n_boot=500)
    a = row(report, "T", "A")
    assert (a.n_runs, a.n_ok, a.n_diverged, a.n_error) == (6, 4, 1, 1)
    acc = a.metrics["final_val_accuracy"]
    # The diverged run's accuracy enters too: 5 values, mean 0.54, sample std, IQM of the middle three (0.5, 0.6, 0.7).
    assert acc.n == 5 and acc.mean == pytest.approx(0.54) and acc.std == pytest.approx(np.std([*A, 0.1], ddof=1))
    assert acc.iqm == pytest.approx(0.6) and 0.1 <= acc.ci_low <= acc.iqm <= acc.ci_high <= 0.8
    loss = a.metrics["final_train_loss"]
    assert loss.n == 4 and loss.mean == pytest.approx(2.5)  # the diverged run's missing loss is left out
    steps = a.metrics["steps_to_target"]
    assert steps.n == 5 and steps.mean == pytest.approx((100 + 100 + 40 + 40 + 100) / 5)  # never reached → budget
    assert a.reached_target == 2
    assert a.metrics["total_reward"].mean == pytest.approx((0 + 0.1 + 0.2 + 0.3 + 0.5) / 5)
    # P(A > base): pairs won: 0.6>0.55; 0.7>0.55,0.65; 0.8>0.55,0.65,0.75; the diverged 0.1 none → 6 of 20.
    assert a.baseline == "fixed ×1.0" and a.poi[0] == pytest.approx(6 / 20) and a.poi[1] <= 6 / 20 <= a.poi[2]
    assert row(report, "T", "fixed ×1.0").is_baseline and row(report, "T", "fixed ×1.0").poi is None
    assert row(report, "T", "fixed ×2.0").poi[0] == pytest.approx(0.0)
    assert row(report, "U", "A").poi == (1.0, 1.0, 1.0)
    overall = row(report, ALL_TASKS, "A")
    assert overall.poi[0] == pytest.approx((6 / 20 + 1.0) / 2) and overall.n_runs == 10
    assert overall.metrics["final_val_accuracy"].n == 9


def test_baseline_rule_and_explicit_baseline(hand_made):
    assert is_fixed_baseline(make_result("x", 0, 0.5, agent_kwargs={}))
    assert is_fixed_baseline(make_result("x", 0, 0.5, agent_kwargs={"lr_multiplier": 1, "noise_std": 0}))
    assert not is_fixed_baseline(make_result("x", 0, 0.5, agent_kwargs={"lr_multiplier": 2.0}))
    assert not is_fixed_baseline(make_result("x", 0, 0.5, agent_kwargs={"index": 4}))
    assert not is_fixed_baseline(make_result("x", 0, 0.5, agent="fixed+cosine"))
    report = build_report(hand_made, baseline="fixed ×2.0", n_boot=200)
    # A wins every pair against ×2.0 (0.05…0.35) except the diverged 0.1 against 0.15, 0.25, 0.35 → 17 of 20.
    assert row(report, "T", "A").poi[0] == pytest.approx(17 / 20) and row(report, "T", "fixed ×2.0").is_baseline


def test_markdown_and_csv_tables_list_every_row_and_the_skipped_file(hand_made):
    report = build_report(hand_made, n_boot=200)
    assert [e.path.name for e in report.invalid] == ["0000truncated.json"]
    md = to_markdown(report)
    assert "## hand — T" in md and "## hand — U" in md and "## hand — all tasks" in md
    assert "| A | 6 | 4 / 1 / 1 | 0.540 ± 0.270 | 0.600 [" in md
    assert "0.30 [" in md and "| baseline |" in md and "0000truncated.json" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert len(rows) == len(report.rows) + len(report.overall) == 5 + 3
    first = next(r for r in rows if r["task_label"] == "T" and r["agent_label"] == "A")
    assert float(first["final_val_accuracy_iqm"]) == pytest.approx(0.6) and first["n_diverged"] == "1"
    assert float(first["poi"]) == pytest.approx(0.3)


def test_write_report_draws_pngs_including_lr_sensitivity(tmp_path):
    suite = tmp_path / "sweep"
    for mult, acc in ((0.1, 0.3), (1.0, 0.8), (10.0, 0.5)):
        for seed in range(3):
            for label, agent, shift in (("fixed ×1.0", "fixed", 0.0), ("ducb", "ducb", 0.05)):
                write_result(make_result(label, seed, acc + shift + 0.01 * seed, agent=agent, suite="sweep", task_label=f"T lr×{mult:g}",
                                         sweep={"base_lr_multiplier": mult}), suite)
    written = write_report(build_report(tmp_path, n_boot=100), plots=True)
    names = sorted(p.name for p in written)
    assert names[:2] == ["report.md", "summary.csv"] or {"report.md", "summary.csv"} <= set(names)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 3 * 3 + 1 + 1 + 1 and any("lr_sensitivity" in p.name for p in pngs)  # + the profile and the forest plot
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    assert "![" in (tmp_path / "report" / "report.md").read_text()


def test_report_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="aees-gym suite"):
        build_report(tmp_path / "nope")


def test_discriminative_power_of_the_fixed_cells_matches_hand_computation(hand_made):
    report = build_report(hand_made, n_boot=1000)
    t = next(d for d in report.discrimination if d.task_label == "T")
    # ×1.0 = BASE, ×2.0 = BASE - 0.5: difference 0.5; each cell's squared deviations sum to 0.05 → SD sqrt(0.1 / 6).
    assert (t.best, t.worst) == ("fixed ×1.0", "fixed ×2.0") and t.spread.difference == pytest.approx(0.5)
    assert t.spread.pooled_sd == pytest.approx(math.sqrt(0.1 / 6))
    assert t.spread.g == pytest.approx(hedges_correction(6) * 0.5 / math.sqrt(0.1 / 6))
    assert t.ci[0] <= t.spread.g <= t.ci[1]
    # Fully separated 4 + 4 runs: exact permutation p = 2 / C(8, 4) = 2 / 70.
    assert t.p_value == pytest.approx(2 / 70, abs=0.012) and t.verdict == "control matters"
    u = next(d for d in report.discrimination if d.task_label == "U")
    assert u.spread is None and "≥ 2 fixed cells" in u.reason
    md = to_markdown(report)
    assert "### Discriminative power" in md and "| T | val_accuracy ↑ | fixed ×1.0 (4), fixed ×2.0 (4) | fixed ×1.0 | fixed ×2.0 | 0.5 |" in md
    rows = list(csv.DictReader(io.StringIO(tasks_csv(report))))
    assert [r["task_label"] for r in rows] == ["T", "U"] and float(rows[0]["hedges_g"]) == pytest.approx(t.spread.g)


def _with(result, *, final=None, config=None):
    return replace(result, final_metrics={**result.final_metrics, **(final or {})}, config={**result.config, **(config or {})})


@pytest.fixture
def timed(tmp_path):
    """Two tasks with targets, known steps to target; one perplexity task (lower is better) without one."""
    suite = tmp_path / "timed"
    steps = {  # (task, agent) → steps to target of seeds 0..4 (None = never)
        ("T1", "fast"): [100, 100, 200, 200, 300], ("T1", "fixed ×1.0"): [200, 300, 400, None, 400],
        ("T1", "slow"): [None, None, None, 800, 800], ("T2", "fast"): [500, 500, 500, 500, 500],
        ("T2", "fixed ×1.0"): [250, 250, 250, 250, 250], ("T2", "slow"): [600, 700, 1000, 1000, 900],
    }
    for (task, label), values in steps.items():
        for seed, s in enumerate(values):
            agent = "fixed" if label.startswith("fixed") else label
            r = make_result(label, seed, 0.8, agent=agent, suite="timed", task_label=task, steps_to_target=s)
            write_result(_with(r, config={"reward": {"name": "aees" if label != "slow" else "loss_delta"}}), suite)
    ppl = {"fixed ×1.0": [30.0, 31.0, 32.0, 33.0, 34.0], "fixed ×2.0": [20.0, 21.0, 22.0], "fast": [25.0, 26.0, 27.0, 28.0, 29.0]}
    for label, values in ppl.items():
        for seed, p in enumerate(values):
            r = make_result(label, seed, 0.3, agent="fixed" if label.startswith("fixed") else label, suite="timed", task="GPT2",
                            task_label="LM", agent_kwargs={"lr_multiplier": 2.0} if label == "fixed ×2.0" else None)
            write_result(_with(r, final={"val_perplexity": p}, config={"target_accuracy": None}), suite)
    return tmp_path


def test_time_to_target_and_performance_profiles_match_hand_computation(timed):
    report = build_report(timed, n_boot=200)
    t1 = next(t for t in report.times if t.task_label == "T1")
    assert t1.targets == (0.9,)
    med = {a.agent_label: (a.median_steps, a.reached, a.ratio) for a in t1.agents}
    # Medians: fast 200; fixed 400 (the never-run sorts last); slow: 3 of 5 never → never.
    assert med == {"fast": (200, 5, 1.0), "fixed ×1.0": (400, 4, 2.0), "slow": (math.inf, 2, math.inf)}
    lm = next(t for t in report.times if t.task_label == "LM")
    assert not lm.applies
    profile = next(p for p in report.profiles if p.suite == "timed")
    assert profile.tasks == ("T1", "T2")  # the task without a target is not in the profile
    by_agent = dict(zip(profile.agents, zip(profile.rho_1, profile.rho_2, profile.rho_inf, strict=True), strict=True))
    # T2 medians: fast 500 (×2), fixed 250 (×1), slow 900 (×3.6).
    assert by_agent["fast"] == (0.5, 1.0, 1.0) and by_agent["fixed ×1.0"] == (0.5, 1.0, 1.0) and by_agent["slow"] == (0.0, 0.0, 0.5)
    assert np.all(np.diff(profile.rho, axis=1) >= 0)
    md = to_markdown(report)
    assert "T1 (val acc ≥ 0.9)" in md and "| fast | 200 (5/5), ×1.00 | 500 (5/5), ×2.00 |" in md and "never (2/5)" in md
    assert "LM: no accuracy target" in md and "lower is better" in md and "time to target does not apply" in md
    written = write_report(report, timed / "out", plots=True)
    assert any(p.name == "timed_performance_profile.png" for p in written)
    assert "![performance profile timed](plots/timed_performance_profile.png)" in (timed / "out" / "report.md").read_text()


def test_lower_is_better_metric_ranks_flags_and_rewards(timed):
    report = build_report(timed, n_boot=200)
    lm = {r.agent_label: r for r in report.rows if r.task_label == "LM"}
    assert lm["fixed ×1.0"].metric.name == "val_perplexity" and not lm["fixed ×1.0"].metric.higher_is_better
    assert lm["fixed ×2.0"].metrics["task_metric"].iqm == pytest.approx(21.0)
    assert (lm["fixed ×2.0"].rank, lm["fast"].rank, lm["fixed ×1.0"].rank) == (1, 2, 3)  # lower perplexity ranks first
    assert lm["fast"].poi[0] == 1.0 and lm["fixed ×2.0"].poi[0] == 1.0  # every run beats every baseline run (lower)
    d = next(d for d in report.discrimination if d.task_label == "LM")
    assert (d.best, d.worst) == ("fixed ×2.0", "fixed ×1.0")
    assert lm["fixed ×2.0"].few_runs and not lm["fast"].few_runs
    md = to_markdown(report)
    assert "| fixed ×2.0 | 3 | 3 / 0 / 0 | 0.300 ± 0.000 | 0.300 [0.300, 0.300] ⚑ |" in md and "| fixed ×2.0 ⚑ | fixed |" in md
    assert "val_perplexity ↓ IQM [95% CI]" in md and "rank (val_perplexity ↓)" in md
    assert "| slow | slow | loss_delta | 10 |" in md and "| fast | fast | aees | 15 |" in md
    rows = {(r["task_label"], r["agent_label"]): r for r in csv.DictReader(io.StringIO(to_csv(report)))}
    assert rows[("LM", "fixed ×2.0")]["few_runs"] == "True" and rows[("LM", "fixed ×2.0")]["rank"] == "1"
    assert rows[("T1", "slow")]["reward"] == "loss_delta" and rows[("T1", "fixed ×1.0")]["median_steps_to_target"] == "400.0"
    # Over all tasks the accuracy and the perplexity tasks cannot share one task-metric summary.
    assert next(r for r in report.overall if r.agent_label == "fast").metrics["task_metric"] is None


def test_report_of_a_folder_without_results_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no valid run results"):
        build_report(tmp_path / "empty")


def test_arm_fractions_extend_to_the_momentum_axis():
    import dataclasses

    from aees_gym.reporting.plots import arm_fractions

    grid = {"lr_multipliers": [0.5, 1.0], "noise_stds": [0.0], "momenta": [0.0, 0.9]}
    base = make_result("ducb", 0, 0.9, windows=2)
    windows = [{**w, "action": a} for w, a in zip(base.windows, (3, 1), strict=True)]
    run = dataclasses.replace(base, config={**base.config, "grid": grid}, windows=windows)
    names, fractions = arm_fractions([run])
    assert names == ["lr0p5_n0_m0", "lr0p5_n0_m0p9", "lr1_n0_m0", "lr1_n0_m0p9"]
    np.testing.assert_array_equal(fractions[:, 0], [0, 0, 0, 1])
    np.testing.assert_array_equal(fractions[:, 1], [0, 1, 0, 0])


def test_references_running_the_fixed_agent_are_neither_grid_cells_nor_the_baseline(tmp_path):
    """Prodigy / a tuned LR run the `fixed` agent with env settings of their own: not cells, not the baseline."""
    suite = tmp_path / "refs"
    for seed in range(5):
        for label, kwargs, acc in (("fixed ×1.0", None, 0.80), ("fixed ×2.0", {"lr_multiplier": 2.0}, 0.70), ("random", None, 0.75)):
            write_result(make_result(label, seed, acc + 0.01 * seed, agent="random" if label == "random" else "fixed",
                                     suite="refs", agent_kwargs=kwargs), suite)
        prodigy = make_result("Prodigy", seed, 0.95, suite="refs")
        write_result(replace(prodigy, env_overrides={"optimizer": "prodigy", "base_lr": 1.0}), suite)
    report = build_report(tmp_path, n_boot=200)
    d = next(d for d in report.discrimination if d.task_label == "T")
    assert set(d.cells) == {"fixed ×1.0", "fixed ×2.0"} and (d.best, d.worst) == ("fixed ×1.0", "fixed ×2.0")
    assert "P(better than fixed ×1.0)" in to_markdown(report)
