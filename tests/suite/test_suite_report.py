"""Report statistics on a hand-made results folder with known answers; tables, CSV and plots."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from suite_helpers import make_result

from aees_gym.reporting.report import ALL_TASKS, build_report, is_fixed_baseline, to_csv, to_markdown, write_report
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
    assert len(pngs) == 3 * 3 + 1 and any("lr_sensitivity" in p.name for p in pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    assert "![" in (tmp_path / "report" / "report.md").read_text()


def test_report_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="aees-gym suite"):
        build_report(tmp_path / "nope")


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
