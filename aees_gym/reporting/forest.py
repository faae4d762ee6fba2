"""The headline figure of a suite: a forest plot of every agent over all its tasks (rliable style).

One row per agent, grouped as in :mod:`aees_gym.reporting.styles`. Left: the interquartile mean of
the task metric with its 95% stratified bootstrap CI (the all-tasks row of the report), with the
baseline's IQM as a vertical line. Right: the probability that a run of the agent ends better than
a run of the baseline (the plain optimizer, ``fixed`` ×1.0) on the same task, with its 95% CI and
the line of no difference at 0.5. The numbers are the report's all-tasks table; nothing new is
computed here. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aees_gym.reporting.rows import TASK_METRIC, ReportRow, Summary
from aees_gym.reporting.styles import AgentStyle, grouped
from aees_gym.suite.results import RunResult


def _summary(row: ReportRow) -> Summary | None:
    return row.metrics.get(TASK_METRIC.key) or row.metrics.get("final_val_accuracy")


def forest_layout(rows: Sequence[ReportRow], styles: dict[str, AgentStyle]) -> list[tuple[str, ReportRow | None]]:
    """Top-to-bottom entries: a ``(group, None)`` header before each group's ``(label, row)`` entries."""
    by_label = {r.agent_label: r for r in rows}
    entries: list[tuple[str, ReportRow | None]] = []
    for group, labels in grouped(list(by_label), styles):
        entries.append((group, None))
        entries += [(label, by_label[label]) for label in labels]
    return entries


def forest_figure(rows: Sequence[ReportRow], styles: dict[str, AgentStyle], title: str) -> Any:
    """The forest-plot figure of ``rows`` (one suite's all-tasks rows, or one task's rows)."""
    from aees_gym.reporting.plots import _figure

    entries = forest_layout(rows, styles)
    fig = _figure(9.0, 1.3 + 0.28 * len(entries))
    ax_iqm, ax_poi = fig.subplots(1, 2, sharey=True, width_ratios=[1.2, 1.0])
    ys = list(range(len(entries)))[::-1]
    base_row = next((r for r in rows if r.is_baseline), None)
    metric = next((r.metric for r in rows if r.metric is not None), None)
    for y, (name, row) in zip(ys, entries, strict=True):
        if row is None:
            if y != ys[0]:  # a thin rule between two groups
                for ax in (ax_iqm, ax_poi):
                    ax.axhline(y + 0.5, color="0.6", linewidth=0.6)
            continue
        style = styles[name]
        s = _summary(row)
        if s is not None:
            ax_iqm.errorbar([s.iqm], [y], xerr=[[s.iqm - s.ci_low], [s.ci_high - s.iqm]], fmt="o", color=style.color,
                            markersize=4.5, capsize=2.5, linewidth=1.6)
        if row.poi is not None:
            p, low, high = row.poi
            ax_poi.errorbar([p], [y], xerr=[[p - low], [high - p]], fmt="o", color=style.color, markersize=4.5, capsize=2.5,
                            linewidth=1.6)
        elif row.is_baseline:
            ax_poi.text(0.5, y, "baseline", ha="center", va="center", fontsize=9, color="0.3")
    labels = [f"{name}:" if row is None else name for name, row in entries]
    ax_iqm.set_yticks(ys, labels, fontsize=9)
    for tick, (_, row) in zip(ax_iqm.get_yticklabels(), entries, strict=True):
        if row is None:
            tick.set_fontweight("bold")
            tick.set_fontstyle("italic")
    ax_iqm.set_ylim(-0.7, len(entries) - 0.3)
    if base_row is not None and (s := _summary(base_row)) is not None:
        ax_iqm.axvline(s.iqm, color="0.4", linewidth=0.8, linestyle=(0, (4, 2)))
    name = "metric" if metric is None else f"final {metric.name} {metric.arrow}"
    ax_iqm.set_xlabel(f"{name}: IQM, 95% CI (dashed: baseline)", fontsize=9)
    ax_poi.axvline(0.5, color="0.4", linewidth=0.8, linestyle=(0, (4, 2)))
    ax_poi.set_xlim(-0.02, 1.02)
    base = base_row.agent_label if base_row is not None else next((r.baseline for r in rows if r.baseline), None) or "baseline"
    ax_poi.set_xlabel(f"P(a run beats a run of {base}), 95% CI", fontsize=9)
    for ax in (ax_iqm, ax_poi):
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="y", length=0)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_forest(rows: Sequence[ReportRow], styles: dict[str, AgentStyle], title: str, path: Path | str) -> Path:
    """Write the forest plot of ``rows`` to ``path`` (PNG)."""
    from aees_gym.reporting.plots import _save

    return _save(forest_figure(rows, styles, title), Path(path))


def write_forest_plots(overall: Sequence[ReportRow], results: Sequence[RunResult], out_dir: Path | str) -> list[Path]:
    """One forest plot per suite from its all-tasks rows (``Report.overall``), styled like the suite's other plots."""
    from aees_gym.reporting.plots import _slug, run_styles

    written: list[Path] = []
    for suite in dict.fromkeys(r.suite for r in overall):
        rows = [r for r in overall if r.suite == suite and r.n_counted > 0]
        if not rows:
            continue
        in_suite = [r for r in results if r.suite == suite]
        styles = run_styles(in_suite, [r.agent_label for r in rows])
        n_tasks = len({r.task_label for r in in_suite})
        runs = sorted({r.n_counted for r in rows})
        per_agent = f"{runs[0]}" if len(runs) == 1 else f"{runs[0]}–{runs[-1]}"
        title = (f"{suite}: every agent over {n_tasks} task{'s' if n_tasks > 1 else ''} ({per_agent} runs each, stratified by task)")
        written.append(plot_forest(rows, styles, title, Path(out_dir) / f"{_slug(suite, 'forest')}.png"))
    return written
