"""Aggregate a results folder into a report: per-suite overview, per task × agent tables, CSV, plots.

Per suite, an overview: the reward each agent was scored with, the discriminative power of each
task and the time to target with performance profiles (:mod:`aees_gym.reporting.sections`). Per
suite × task variant × agent, and per suite × agent over all tasks: for each metric ``n``, mean ±
sample std, the interquartile mean (IQM) and its 95% stratified bootstrap CI
(:mod:`aees_gym.reporting.stats`); the task metric's rank; the probability that a run beats a run of
the baseline on the task metric (:mod:`aees_gym.reporting.rows` defines rows, baseline and metric),
with a 95% CI; run counts by status. Cells with fewer than 5 counted runs are flagged.
``build_report(baseline=LABEL)`` (CLI ``--baseline``) picks the baseline explicitly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import atomic_write_text
from aees_gym.reporting.markdown import md_cell
from aees_gym.reporting.rows import (
    ALL_TASKS,
    FEW_RUNS,
    METRICS,
    TASK_METRIC,
    ReportRow,
    Summary,
    baseline_label,
    is_fixed_baseline,
    make_row,
    ranks,
    summarize,
)
from aees_gym.reporting.sections import Discrimination, Profile, TimeToTarget, discriminative_power, suite_profile, time_to_target
from aees_gym.reporting.settings import settings_table
from aees_gym.suite.results import ResultFileError, RunResult, read_json_file, scan_results

__all__ = ["ALL_TASKS", "METRICS", "Report", "ReportRow", "Summary", "build_report", "is_fixed_baseline", "summarize",
           "to_csv", "to_markdown", "tasks_csv", "write_report"]
FLAG = "⚑"


@dataclass(frozen=True)
class Report:
    """Everything the writers need; ``invalid`` lists files that were skipped and why."""

    results_dir: Path
    rows: tuple[ReportRow, ...]
    overall: tuple[ReportRow, ...]
    results: tuple[RunResult, ...]
    invalid: tuple[ResultFileError, ...] = ()
    set_aside: tuple[Path, ...] = ()
    n_boot: int = 2000
    discrimination: tuple[Discrimination, ...] = ()
    times: tuple[TimeToTarget, ...] = ()
    profiles: tuple[Profile, ...] = ()


def _agent_order(results_dir: Path, suite: str, labels: set[str]) -> list[str]:
    # The suite's manifest keeps the config's agent order, which reads better than alphabetical.
    order: list[str] = []
    for manifest in (results_dir / "_manifest.json", results_dir / suite / "_manifest.json"):
        if not manifest.exists():
            continue
        try:
            data = read_json_file(manifest)
            if data.get("suite") == suite:
                order = [str(a["label"]) for a in data["spec"]["agents"]]
                break
        except (ResultFileError, AttributeError, KeyError, TypeError):
            continue
    return [x for x in order if x in labels] + sorted(labels - set(order))


def build_report(results_dir: Path | str, *, baseline: str | None = None, n_boot: int = 2000, seed: int = 0) -> Report:
    """Load every result under ``results_dir`` (a suite folder or a folder of suites) and aggregate.

    Files that do not load (unparsable, schema or value errors, not regular files) are listed with
    the reason in ``Report.invalid`` and left out of every statistic; this never raises for them.

    Raises:
        FileNotFoundError: If ``results_dir`` is not a folder or holds no valid result.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist; run a suite first (aees-gym suite CONFIG).")
    scan = scan_results(root)
    if not scan.results:
        bad = f"; {len(scan.invalid)} files could not be read, e.g. {scan.invalid[0]}" if scan.invalid else ""
        raise FileNotFoundError(f"results folder {root} holds no valid run results{bad}; run a suite first (aees-gym suite CONFIG).")
    results = sorted(scan.results.values(), key=lambda r: (r.suite, r.task_label, r.agent_label, r.seed))
    rows: list[ReportRow] = []
    overall: list[ReportRow] = []
    spreads: list[Discrimination] = []
    times: list[TimeToTarget] = []
    profiles: list[Profile] = []
    for suite in sorted({r.suite for r in results}):
        in_suite = [r for r in results if r.suite == suite]
        labels = _agent_order(root, suite, {r.agent_label for r in in_suite})
        base_by_task: dict[str, str | None] = {}
        for task in sorted({r.task_label for r in in_suite}):
            in_task = [r for r in in_suite if r.task_label == task]
            base = base_by_task[task] = baseline_label(in_task, baseline)
            base_runs = [r for r in in_task if r.agent_label == base]
            task_rows = [make_row(suite, task, label, runs, base_runs, base, n_boot, seed)
                         for label in labels if (runs := [r for r in in_task if r.agent_label == label])]
            rows += [replace(row, rank=rank) for row, rank in zip(task_rows, ranks(task_rows), strict=True)]
            spreads.append(discriminative_power(suite, task, in_task, n_boot, seed))
            times.append(time_to_target(suite, task, in_task, labels))
        # Over all tasks, each task's runs are compared with that task's own baseline runs.
        bases = {b for b in base_by_task.values() if b is not None}
        suite_base = next(iter(bases)) if len(bases) == 1 else None
        base_runs = [r for r in in_suite if base_by_task.get(r.task_label) == r.agent_label]
        for label in labels:
            runs = [r for r in in_suite if r.agent_label == label]
            overall.append(make_row(suite, ALL_TASKS, label, runs, base_runs, suite_base, n_boot, seed))
        profile = suite_profile(suite, times, labels)
        profiles += [profile] if profile else []
    set_aside = sorted([*root.glob("*.corrupt"), *root.glob("*/*.corrupt")])
    return Report(root, tuple(rows), tuple(overall), tuple(results), tuple(scan.invalid), tuple(set_aside), n_boot,
                  tuple(spreads), tuple(times), tuple(profiles))


# --------------------------------------------------------------------------- Markdown
def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the results folder when inside it (reports name no machine's absolute paths)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def _cell_mean(s: Summary | None, digits: int = 3) -> str:
    return "—" if s is None else f"{_fmt(s.mean, digits)} ± {_fmt(s.std, digits)}"


def _cell_iqm(s: Summary | None, digits: int = 3) -> str:
    return "—" if s is None else f"{_fmt(s.iqm, digits)} [{_fmt(s.ci_low, digits)}, {_fmt(s.ci_high, digits)}]"


def _cell_poi(row: ReportRow) -> str:
    if row.is_baseline:
        return "baseline"
    if row.poi is None:
        return "—"
    p, low, high = row.poi
    return f"{p:.2f} [{low:.2f}, {high:.2f}]"


def _label(row: ReportRow) -> str:
    return f"{md_cell(row.agent_label)} {FLAG}" if row.few_runs else md_cell(row.agent_label)


def _table(rows: list[ReportRow], per_task: bool) -> list[str]:
    base = rows[0].baseline or "fixed ×1.0"
    metric = rows[0].metric if all(r.metric == rows[0].metric for r in rows) else None
    extra_metric = metric is not None and metric.name != "val_accuracy"
    head = ["agent", "runs", "ok / div / err", "final val acc", "final val acc IQM [95% CI]", "best val acc IQM [95% CI]"]
    if extra_metric:
        head.append(f"{metric.name} {metric.arrow} IQM [95% CI]")
    if per_task:
        head += ["final train loss IQM [95% CI]", "total reward IQM [95% CI]", "steps to target IQM [95% CI] (reached)",
                 f"rank ({metric.name} {metric.arrow})" if metric else "rank"]
    head += [f"P(better than {md_cell(base)}) [95% CI]", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        m = row.metrics
        # The flag sits on the first interval, the number it warns about.
        flag = f" {FLAG}" if row.few_runs else ""
        cells = [md_cell(row.agent_label), str(row.n_runs), f"{row.n_ok} / {row.n_diverged} / {row.n_error}", _cell_mean(m["final_val_accuracy"]),
                 _cell_iqm(m["final_val_accuracy"]) + flag, _cell_iqm(m["best_val_accuracy"])]
        if extra_metric:
            cells.append(_cell_iqm(m[TASK_METRIC.key]))
        if per_task:
            reached = "" if row.reached_target is None else f" ({row.reached_target}/{row.n_counted})"
            steps = m["steps_to_target"]
            cells += [_cell_iqm(m["final_train_loss"], 4), _cell_iqm(m["total_reward"]),
                      ("—" if steps is None else _cell_iqm(steps, 0)) + reached, "—" if row.rank is None else str(row.rank)]
        wall = m["wall_clock_s"]
        cells += [_cell_poi(row), "—" if wall is None else f"{wall.mean:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _agents_table(rows: list[ReportRow]) -> list[str]:
    lines = ["| agent | agent name | reward (`config.reward.name`) | runs (ok + diverged) |", "|---|---|---|---|"]
    return lines + [f"| {_label(r)} | {md_cell(r.agent)} | {md_cell(r.reward)} | {r.n_counted} |" for r in rows]


def _discrimination_table(items: list[Discrimination]) -> list[str]:
    lines = ["| task | metric | fixed cells (runs) | best | worst | best − worst | seed SD | g [95% CI] | p | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in items:
        cells = ", ".join(f"{md_cell(label)} ({len(v)})" for label, v in d.cells.items()) or "—"
        metric = f"{d.metric.name} {d.metric.arrow}"
        if d.spread is None or d.ci is None:
            lines.append(f"| {md_cell(d.task_label)} | {metric} | {cells} | — | — | — | — | — | — | {md_cell(d.reason)} |")
            continue
        s = d.spread
        lines.append(f"| {md_cell(d.task_label)} | {metric} | {cells} | {md_cell(d.best)} | {md_cell(d.worst)} | {s.difference:.4g} | {s.pooled_sd:.4g} | "
                     f"{s.g:.2f} [{d.ci[0]:.2f}, {d.ci[1]:.2f}] | {d.p_value:.3f} | {d.verdict} |")
    return lines


def _steps(x: float) -> str:
    return "never" if x == float("inf") else f"{x:.0f}"


def _times_table(items: list[TimeToTarget], profile: Profile | None) -> list[str]:
    applies = [t for t in items if t.applies]
    lines: list[str] = []
    if applies:
        head = ["agent", *(f"{md_cell(t.task_label)} (val acc ≥ {', '.join(f'{x:g}' for x in t.targets)})" for t in applies)]
        labels = list(dict.fromkeys(a.agent_label for t in applies for a in t.agents))
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label in labels:
            cells = [md_cell(label)]
            for t in applies:
                a = next((a for a in t.agents if a.agent_label == label), None)
                flag = f" {FLAG}" if a is not None and a.n < FEW_RUNS else ""
                cells.append("—" if a is None else f"{_steps(a.median_steps)} ({a.reached}/{a.n}{flag}), ×{a.ratio:.2f}"
                             if a.ratio != float("inf") else f"{_steps(a.median_steps)} ({a.reached}/{a.n}{flag})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for t in items:
        if not t.applies:
            lines.append(f"- {md_cell(t.task_label)}: no accuracy target (`config.target_accuracy` unset; metric {t.metric.name} "
                         f"{'higher' if t.metric.higher_is_better else 'lower'} is better), so time to target does not apply.")
    if profile is not None:
        lines += ["", f"Performance profile over {len(profile.tasks)} tasks with a target: ρ(1) = share of tasks where the agent "
                  "is the fastest, ρ(∞) = share of tasks it reaches.", "", "| agent | ρ(1) | ρ(2) | ρ(∞) |", "|---|---|---|---|"]
        lines += [f"| {md_cell(a)} | {profile.rho_1[i]:.2f} | {profile.rho_2[i]:.2f} | {profile.rho_inf[i]:.2f} |" for i, a in enumerate(profile.agents)]
    return lines


def _intro(report: Report) -> list[str]:
    return [
        f"# Results: {report.results_dir.name}", "",  # the folder's name: no machine's absolute path in an archived report
        (f"{len(report.results)} runs loaded; {len(report.invalid)} invalid files skipped and {len(report.set_aside)} files set aside "
         "as corrupt (listed at the end; a suite rerun moves invalid files aside and repeats their runs)."),
        f"Cells: mean ± sample std, and the interquartile mean (IQM) with a 95% stratified bootstrap CI ({report.n_boot} resamples over "
        "seeds, stratified by task in the all-tasks tables). Each task ranks runs by its own metric (↑ higher is better, ↓ lower). "
        "P(better than baseline): probability that a run of the agent ends better on the task metric than a run of the baseline "
        "(`fixed` at lr ×1.0, σ 0 unless chosen otherwise; ties count half), with its 95% CI. Steps to target in the per-task "
        f"tables count the full budget for runs that never reach the target. {FLAG} (after an agent's first interval, or its label "
        f"in the overview): fewer than {FEW_RUNS} runs (ok + diverged); its intervals are unreliable.", "",
    ]


def _overview(report: Report, suite: str, images: dict[str, Path]) -> list[str]:
    agents = {r.agent_label: r for r in report.overall if r.suite == suite}
    lines = [f"## {md_cell(suite)} — overview", "", "### Agents and rewards", "", *_agents_table(list(agents.values())), "",
             "### Discriminative power", "",
             "Per task, the best and the worst `fixed` cell on the task metric: their mean difference, the seed noise (SD "
             "within cells, pooled over all fixed cells) and Hedges' g = difference / seed SD (small-sample corrected) with a "
             "95% stratified bootstrap CI; p: permutation test against \"all fixed cells are the same\" (the pick of the extreme "
             "pair included). p < 0.05: the setting matters, controllers can be told apart; otherwise every controller must "
             "tie within seed noise.", "",
             *_discrimination_table([d for d in report.discrimination if d.suite == suite]), "",
             "### Time to target", "",
             "Target per task: validation accuracy ≥ `config.target_accuracy` (stated in the header). Cell: the median over runs "
             "of the optimizer steps to the first evaluation at or above the target (a run that never reaches it counts as "
             "never, so the median is finite only when more than half the runs reach it), (runs reaching / runs), and × the "
             "fastest agent's median on that task.", "",
             *_times_table([t for t in report.times if t.suite == suite], next((p for p in report.profiles if p.suite == suite), None)), ""]
    if suite in images:
        lines += [f"![performance profile {suite}]({images[suite].as_posix()})", ""]
    return lines


def to_markdown(report: Report, plots: Iterable[Path] = (), profile_plots: dict[str, Path] | None = None) -> str:
    """The report as Markdown: per suite an overview, one table per task variant and one over all tasks.

    ``plots`` are image paths relative to the Markdown file, embedded at the end; ``profile_plots``
    maps a suite to its performance-profile image, embedded in the suite's overview.
    """
    lines = _intro(report)
    for suite in sorted({r.suite for r in report.rows}):
        lines += _overview(report, suite, profile_plots or {})
        for task in sorted({r.task_label for r in report.rows if r.suite == suite}):
            lines += [f"## {md_cell(suite)} — {md_cell(task)}", "", *_table([r for r in report.rows if r.suite == suite and r.task_label == task], True), ""]
        overall = [r for r in report.overall if r.suite == suite]
        if overall and len({r.task_label for r in report.rows if r.suite == suite}) > 1:
            lines += [f"## {md_cell(suite)} — all tasks (stratified by task)", "", *_table(overall, False), ""]
    lines += ["## Agent settings", "", "The reward each agent learned from; final metrics come only from the scoring split, which no reward sees.", "", *settings_table(report.results), ""]
    plots = list(plots)
    if plots:
        lines += ["## Plots", "", *(f"![{p.stem}]({p.as_posix()})" for p in plots), ""]
    if report.invalid or report.set_aside:
        lines += ["## Files skipped", ""]
        lines += [f"- `{md_cell(_relative(e.path, report.results_dir))}`: {md_cell((e.field + ': ') if e.field else '')}{md_cell(e.reason)}"
                  for e in report.invalid]
        lines += [f"- `{md_cell(_relative(p, report.results_dir))}`: set aside by a suite run as corrupt" for p in report.set_aside]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CSV and files
def _summary_fields(prefix: str, s: Summary | None) -> dict[str, Any]:
    names = ("n", "mean", "std", "iqm", "ci_low", "ci_high")
    return {f"{prefix}_{k}": ("" if s is None else getattr(s, k)) for k in names}


def _csv(records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for data in records:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(data), lineterminator="\n")
            writer.writeheader()
        writer.writerow(data)
    return buffer.getvalue()


def to_csv(report: Report) -> str:
    """One CSV row per task × agent and per suite × agent over all tasks (``task_label`` = ``(all tasks)``)."""
    times = {(t.suite, t.task_label, a.agent_label): (t, a) for t in report.times for a in t.agents}

    def record(row: ReportRow) -> dict[str, Any]:
        data: dict[str, Any] = {
            "suite": row.suite, "task_label": row.task_label, "agent_label": row.agent_label, "agent": row.agent,
            "reward": row.reward, "n_runs": row.n_runs, "n_ok": row.n_ok, "n_diverged": row.n_diverged, "n_error": row.n_error,
            "few_runs": row.few_runs, "metric": row.metric.name if row.metric else "",
            "higher_is_better": "" if row.metric is None else row.metric.higher_is_better, "rank": "" if row.rank is None else row.rank,
        }
        for metric in (*METRICS, TASK_METRIC):
            data.update(_summary_fields(metric.key, row.metrics[metric.key]))
        poi = row.poi or ("", "", "")
        t, a = times.get((row.suite, row.task_label, row.agent_label), (None, None))
        data.update(reached_target="" if row.reached_target is None else row.reached_target, baseline=row.baseline or "",
                    is_baseline=row.is_baseline, poi=poi[0], poi_ci_low=poi[1], poi_ci_high=poi[2],
                    target_accuracy="" if t is None else ";".join(f"{x:g}" for x in t.targets),
                    median_steps_to_target="" if a is None else a.median_steps, steps_ratio_to_fastest="" if a is None else a.ratio)
        return data

    return _csv(record(row) for row in (*report.rows, *report.overall))


def tasks_csv(report: Report) -> str:
    """One CSV row per suite × task variant: the task metric and the discriminative power of its fixed cells."""
    def record(d: Discrimination) -> dict[str, Any]:
        s = d.spread
        return {"suite": d.suite, "task_label": d.task_label, "metric": d.metric.name, "higher_is_better": d.metric.higher_is_better,
                "fixed_cells": ";".join(f"{k}={len(v)}" for k, v in d.cells.items()), "best": d.best or "", "worst": d.worst or "",
                "difference": "" if s is None else s.difference, "seed_sd": "" if s is None else s.pooled_sd,
                "hedges_g": "" if s is None else s.g, "g_ci_low": "" if d.ci is None else d.ci[0], "g_ci_high": "" if d.ci is None else d.ci[1],
                "p_value": "" if d.p_value is None else d.p_value, "verdict": d.verdict if s is not None else d.reason}

    return _csv(record(d) for d in report.discrimination)


def write_report(report: Report, out_dir: Path | str | None = None, *, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``summary.csv``, ``tasks.csv`` and (with ``plots``) PNGs under ``plots/``.

    Args:
        report: From :func:`build_report`.
        out_dir: Output folder (default ``<results_dir>/report``).
        plots: Also draw the plots (needs the ``plot`` extra; raises ImportError naming it).

    Returns:
        The written files.
    """
    out = Path(out_dir) if out_dir is not None else report.results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    images: list[Path] = []
    profile_images: dict[str, Path] = {}
    if plots:
        from aees_gym.reporting.forest import write_forest_plots
        from aees_gym.reporting.plots import plot_performance_profile, run_styles, write_plots

        order = list(dict.fromkeys(row.agent_label for row in report.rows))
        # The headline forest plots come first in the report's plot section.
        images = write_forest_plots(report.overall, report.results, out / "plots", report.n_boot)
        images += write_plots(report.results, out / "plots", agent_order=order)
        for p in report.profiles:
            styles = run_styles([r for r in report.results if r.suite == p.suite], order)
            profile_images[p.suite] = plot_performance_profile(p.agents, p.taus, p.rho, p.rho_inf, p.suite, len(p.tasks), out / "plots",
                                                               styles if set(p.agents) <= set(styles) else None)
    markdown = to_markdown(report, [p.relative_to(out) for p in images], {s: p.relative_to(out) for s, p in profile_images.items()})
    return [atomic_write_text(out / "report.md", markdown), atomic_write_text(out / "summary.csv", to_csv(report)),
            atomic_write_text(out / "tasks.csv", tasks_csv(report)), *images, *profile_images.values()]
