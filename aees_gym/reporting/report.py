"""Aggregate a results folder into tables: per task × agent, and per agent over all tasks.

For each metric: ``n``, mean ± sample std, the interquartile mean (IQM) and its 95% stratified
bootstrap CI (:mod:`aees_gym.reporting.stats`); the probability of improvement (PoI) of each agent's final
validation accuracy over the baseline's, with a 95% CI; run counts by status.

**Baseline.** In each (suite, task variant) the baseline is the plain optimizer: agent ``fixed``
with ``lr_multiplier`` 1.0 and ``noise_std`` 0.0 (given or left at those defaults, no ``index``).
Schedule baselines such as ``fixed+cosine`` are other agent names and never the baseline. When
several labels qualify, the alphabetically first is used; ``build_report(baseline=LABEL)`` (CLI
``--baseline``) picks a label explicitly.

**Runs counted.** ``ok`` and ``diverged`` runs enter the statistics (a diverged run keeps its final
accuracy, so divergence lowers the numbers instead of vanishing); ``error`` runs are only counted.
A metric a run does not have (a diverged run's train loss) is left out of that metric's ``n``.
Steps-to-target of a run that never reaches the task's target accuracy counts as the full budget
(``total_steps``; the table also shows how many runs reached it).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core.fileio import atomic_write_text
from aees_gym.reporting import stats
from aees_gym.reporting.settings import settings_table
from aees_gym.suite.results import ResultFileError, RunResult, read_json_file, scan_results

ALL_TASKS = "(all tasks)"


@dataclass(frozen=True)
class Metric:
    """One reported quantity of a run (``None`` when the run does not have it)."""

    key: str
    title: str
    higher_is_better: bool
    extract: Callable[[RunResult], float | None]


def _final(key: str) -> Callable[[RunResult], float | None]:
    return lambda r: None if r.final_metrics is None else r.final_metrics.get(key)


def _steps_to_target(r: RunResult) -> float | None:
    if r.final_metrics is None or r.config is None or r.config.get("target_accuracy") is None:
        return None
    steps = r.final_metrics.get("steps_to_target")
    return float(r.config["total_steps"]) if steps is None else float(steps)


METRICS: tuple[Metric, ...] = (
    Metric("final_val_accuracy", "final val acc", True, _final("val_accuracy")),
    Metric("best_val_accuracy", "best val acc", True, _final("best_val_accuracy")),
    Metric("final_train_loss", "final train loss", False, _final("final_train_loss")),
    Metric("total_reward", "total reward", True, _final("total_reward")),
    Metric("steps_to_target", "steps to target", False, _steps_to_target),
    Metric("wall_clock_s", "wall clock s", False, lambda r: r.runtime.get("wall_clock_s")),
)
POI_METRIC = "final_val_accuracy"


@dataclass(frozen=True)
class Summary:
    """mean ± std, IQM and its CI of one metric over ``n`` runs (stratified by task when aggregated)."""

    n: int
    mean: float
    std: float
    iqm: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ReportRow:
    """One agent on one task variant (or on all tasks of a suite, ``task_label == ALL_TASKS``)."""

    suite: str
    task_label: str
    agent_label: str
    agent: str
    n_runs: int
    n_ok: int
    n_diverged: int
    n_error: int
    metrics: dict[str, Summary | None]
    reached_target: int | None
    poi: tuple[float, float, float] | None
    baseline: str | None
    is_baseline: bool


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


# --------------------------------------------------------------------------- statistics
def _values(results: Iterable[RunResult], metric: Metric) -> list[float]:
    out = []
    for r in results:
        if r.status == "error":
            continue
        value = metric.extract(r)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
    return out


def summarize(by_task: dict[str, list[float]], n_boot: int = 2000, seed: int = 0) -> Summary | None:
    """Summary of values grouped by task (one group for a single task); ``None`` without values."""
    strata = {task: values for task, values in by_task.items() if values}
    if not strata:
        return None
    flat = np.concatenate([np.asarray(v, dtype=float) for v in strata.values()])
    mean, std = stats.mean_std(flat)
    iqm, low, high = stats.stratified_bootstrap_ci(strata, stats.iqm, n_boot=n_boot, seed=seed)
    return Summary(int(flat.size), mean, std, iqm, low, high)


def is_fixed_baseline(result: RunResult) -> bool:
    """True for the plain optimizer: agent ``fixed`` at lr ×1.0, σ 0 (see the module docstring)."""
    kwargs = result.agent_kwargs
    if result.agent != "fixed" or "index" in kwargs:
        return False
    try:
        return float(kwargs.get("lr_multiplier", 1.0)) == 1.0 and float(kwargs.get("noise_std", 0.0)) == 0.0
    except (TypeError, ValueError):
        return False


def _baseline_label(results: list[RunResult], explicit: str | None) -> str | None:
    labels = {r.agent_label for r in results}
    if explicit is not None:
        return explicit if explicit in labels else None
    return min((r.agent_label for r in results if is_fixed_baseline(r)), default=None)


def _poi(agent: dict[str, list[float]], base: dict[str, list[float]], n_boot: int, seed: int) -> tuple[float, float, float] | None:
    tasks = sorted(t for t in agent if agent[t] and base.get(t))
    if not tasks:
        return None
    return stats.probability_of_improvement_ci({t: agent[t] for t in tasks}, {t: base[t] for t in tasks}, n_boot=n_boot, seed=seed)


def _row(suite: str, task: str, label: str, runs: list[RunResult], base_runs: list[RunResult], baseline: str | None, n_boot: int, seed: int) -> ReportRow:
    metrics = {m.key: summarize(_group_values(runs, m), n_boot, seed) for m in METRICS}
    poi_metric = next(m for m in METRICS if m.key == POI_METRIC)
    is_base = baseline == label
    poi = None if is_base else _poi(_group_values(runs, poi_metric), _group_values(base_runs, poi_metric), n_boot, seed)
    has_target = [r for r in runs if r.status != "error" and _steps_to_target(r) is not None]
    reached = sum(1 for r in has_target if (r.final_metrics or {}).get("steps_to_target") is not None)
    return ReportRow(
        suite=suite, task_label=task, agent_label=label, agent=runs[0].agent, n_runs=len(runs),
        n_ok=sum(r.status == "ok" for r in runs), n_diverged=sum(r.status == "diverged" for r in runs),
        n_error=sum(r.status == "error" for r in runs), metrics=metrics,
        reached_target=reached if has_target else None, poi=poi, baseline=baseline, is_baseline=is_base,
    )


def _group_values(runs: list[RunResult], metric: Metric) -> dict[str, list[float]]:
    groups: dict[str, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(r.task_label, []).append(r)
    return {task: _values(rs, metric) for task, rs in groups.items()}


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
    for suite in sorted({r.suite for r in results}):
        in_suite = [r for r in results if r.suite == suite]
        labels = _agent_order(root, suite, {r.agent_label for r in in_suite})
        base_by_task: dict[str, str | None] = {}
        for task in sorted({r.task_label for r in in_suite}):
            in_task = [r for r in in_suite if r.task_label == task]
            base = base_by_task[task] = _baseline_label(in_task, baseline)
            base_runs = [r for r in in_task if r.agent_label == base]
            for label in labels:
                runs = [r for r in in_task if r.agent_label == label]
                if runs:
                    rows.append(_row(suite, task, label, runs, base_runs, base, n_boot, seed))
        # Over all tasks, each task's runs are compared with that task's own baseline runs.
        bases = {b for b in base_by_task.values() if b is not None}
        suite_base = next(iter(bases)) if len(bases) == 1 else None
        base_runs = [r for r in in_suite if base_by_task.get(r.task_label) == r.agent_label]
        for label in labels:
            runs = [r for r in in_suite if r.agent_label == label]
            overall.append(_row(suite, ALL_TASKS, label, runs, base_runs, suite_base, n_boot, seed))
    set_aside = sorted([*root.glob("*.corrupt"), *root.glob("*/*.corrupt")])
    return Report(root, tuple(rows), tuple(overall), tuple(results), tuple(scan.invalid), tuple(set_aside), n_boot)


# --------------------------------------------------------------------------- writers
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


def _status_cell(row: ReportRow) -> str:
    return f"{row.n_ok} / {row.n_diverged} / {row.n_error}"


def _table(rows: list[ReportRow], per_task: bool) -> list[str]:
    base = rows[0].baseline or "fixed ×1.0"
    head = ["agent", "runs", "ok / div / err", "final val acc", "final val acc IQM [95% CI]", "best val acc IQM [95% CI]"]
    if per_task:
        head += ["final train loss IQM [95% CI]", "total reward IQM [95% CI]", "steps to target IQM [95% CI] (reached)"]
    head += [f"P(> {base}) [95% CI]", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        m = row.metrics
        cells = [row.agent_label, str(row.n_runs), _status_cell(row), _cell_mean(m["final_val_accuracy"]),
                 _cell_iqm(m["final_val_accuracy"]), _cell_iqm(m["best_val_accuracy"])]
        if per_task:
            reached = "" if row.reached_target is None else f" ({row.reached_target}/{row.n_runs - row.n_error})"
            steps = m["steps_to_target"]
            cells += [_cell_iqm(m["final_train_loss"], 4), _cell_iqm(m["total_reward"]),
                      ("—" if steps is None else _cell_iqm(steps, 0)) + reached]
        wall = m["wall_clock_s"]
        cells += [_cell_poi(row), "—" if wall is None else f"{wall.mean:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(report: Report, plots: Iterable[Path] = ()) -> str:
    """The report as Markdown: one table per suite × task variant, one per suite over all tasks.

    ``plots`` are image paths relative to the Markdown file; each is embedded.
    """
    n_files = len(report.results)
    lines = [
        f"# Results: {report.results_dir}", "",
        (f"{n_files} runs loaded; {len(report.invalid)} invalid files skipped and {len(report.set_aside)} files set aside as corrupt "
         "(listed at the end; a suite rerun moves invalid files aside and repeats their runs)."),
        f"Cells: mean ± sample std, and the interquartile mean (IQM) with a 95% stratified bootstrap CI "
        f"({report.n_boot} resamples over seeds, stratified by task in the all-tasks tables). "
        "P(> baseline): probability that a run of the agent ends with a higher final validation accuracy than a run "
        "of the baseline (`fixed` at lr ×1.0, σ 0 unless chosen otherwise), with its 95% CI. "
        "Steps to target count the full budget for runs that never reach the target.", "",
    ]
    for suite in sorted({r.suite for r in report.rows}):
        for task in sorted({r.task_label for r in report.rows if r.suite == suite}):
            lines += [f"## {suite} — {task}", "", *_table([r for r in report.rows if r.suite == suite and r.task_label == task], True), ""]
        overall = [r for r in report.overall if r.suite == suite]
        if overall and len({r.task_label for r in report.rows if r.suite == suite}) > 1:
            lines += [f"## {suite} — all tasks (stratified by task)", "", *_table(overall, False), ""]
    lines += ["## Agent settings", "", "The reward each agent learned from; final metrics come only from the scoring split, which no reward sees.", "", *settings_table(report.results), ""]
    plots = list(plots)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.as_posix()})" for p in plots]
        lines.append("")
    if report.invalid or report.set_aside:
        lines += ["## Files skipped", ""]
        lines += [f"- `{e.path}`: {(e.field + ': ') if e.field else ''}{e.reason}" for e in report.invalid]
        lines += [f"- `{p}`: set aside by a suite run as corrupt" for p in report.set_aside]
        lines.append("")
    return "\n".join(lines)


def _summary_fields(prefix: str, s: Summary | None) -> dict[str, Any]:
    names = ("n", "mean", "std", "iqm", "ci_low", "ci_high")
    return {f"{prefix}_{k}": ("" if s is None else getattr(s, k)) for k in names}


def to_csv(report: Report) -> str:
    """One CSV row per task × agent and per suite × agent over all tasks (``task_label`` = ``(all tasks)``)."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for row in (*report.rows, *report.overall):
        data: dict[str, Any] = {
            "suite": row.suite, "task_label": row.task_label, "agent_label": row.agent_label, "agent": row.agent,
            "n_runs": row.n_runs, "n_ok": row.n_ok, "n_diverged": row.n_diverged, "n_error": row.n_error,
        }
        for metric in METRICS:
            data.update(_summary_fields(metric.key, row.metrics[metric.key]))
        poi = row.poi or ("", "", "")
        data.update(reached_target="" if row.reached_target is None else row.reached_target, baseline=row.baseline or "",
                    is_baseline=row.is_baseline, poi=poi[0], poi_ci_low=poi[1], poi_ci_high=poi[2])
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(data), lineterminator="\n")
            writer.writeheader()
        writer.writerow(data)
    return buffer.getvalue()


def write_report(report: Report, out_dir: Path | str | None = None, *, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``summary.csv`` and (with ``plots``) PNGs under ``plots/``.

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
    if plots:
        from aees_gym.reporting.plots import write_plots

        order = list(dict.fromkeys(row.agent_label for row in report.rows))
        images = write_plots(report.results, out / "plots", agent_order=order)
    markdown = to_markdown(report, [p.relative_to(out) for p in images])
    return [atomic_write_text(out / "report.md", markdown), atomic_write_text(out / "summary.csv", to_csv(report)), *images]
