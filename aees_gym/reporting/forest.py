"""The headline figure of a suite: a forest plot of every agent over all its tasks (rliable style).

One row per agent, grouped as in :mod:`aees_gym.reporting.styles`. Left: the interquartile mean of
the task metric with its 95% stratified bootstrap CI (the all-tasks row of the report), with the
baseline's IQM as a vertical line. Right: the probability that a run of the agent ends better than
a run of the baseline (the plain optimizer, ``fixed`` ×1.0) on the same task, with its 95% CI and
the line of no difference at 0.5. These are the report's all-tasks table. A suite with a tuned-constant
reference (a ``[tuning]`` table) gets a third panel: the same probability against the tuned constant,
computed the same way. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aees_gym.reporting.rows import ALL_TASKS, TASK_METRIC, ReportRow, Summary, make_row
from aees_gym.reporting.settings import is_tuned
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


Poi = tuple[float, float, float]


def _poi_panel(ax: Any, ys: list[int], entries: list[tuple[str, ReportRow | None]], styles: dict[str, AgentStyle],
               poi: dict[str, Poi], versus: str) -> None:
    """P(better than ``versus``) per agent, with the line of no difference at 0.5."""
    for y, (name, row) in zip(ys, entries, strict=True):
        if row is None:
            continue
        if name in poi:
            p, low, high = poi[name]
            ax.errorbar([p], [y], xerr=[[p - low], [high - p]], fmt="o", color=styles[name].color, markersize=4.5, capsize=2.5,
                        linewidth=1.6)
        elif name == versus:
            ax.text(0.5, y, "itself", ha="center", va="center", fontsize=9, color="0.3")
    ax.axvline(0.5, color="0.4", linewidth=0.8, linestyle=(0, (4, 2)))
    ax.set_xlim(-0.02, 1.02)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", ".25", ".5", ".75", "1"])
    ax.set_xlabel(f"P(a run beats a run of\n{versus}), 95% CI", fontsize=9)


def forest_figure(rows: Sequence[ReportRow], styles: dict[str, AgentStyle], title: str,
                  versus: tuple[str, dict[str, Poi]] | None = None) -> Any:
    """The forest-plot figure of ``rows`` (one suite's all-tasks rows, or one task's rows).

    ``versus`` adds a third panel: ``(label, {agent label: P(better than label) with CI})``, e.g. the
    tuned constant (:func:`versus_reference`).
    """
    from aees_gym.reporting.plots import _figure

    entries = forest_layout(rows, styles)
    n_panels = 2 if versus is None else 3
    fig = _figure(9.0 if versus is None else 10.5, 1.4 + 0.28 * len(entries))
    axes = fig.subplots(1, n_panels, sharey=True, width_ratios=[1.2, *[1.0] * (n_panels - 1)])
    ax_iqm = axes[0]
    ys = list(range(len(entries)))[::-1]
    base_row = next((r for r in rows if r.is_baseline), None)
    metric = next((r.metric for r in rows if r.metric is not None), None)
    for y, (name, row) in zip(ys, entries, strict=True):
        if row is None:
            if y != ys[0]:  # a thin rule between two groups
                for ax in axes:
                    ax.axhline(y + 0.5, color="0.6", linewidth=0.6)
            continue
        if (s := _summary(row)) is not None:
            ax_iqm.errorbar([s.iqm], [y], xerr=[[s.iqm - s.ci_low], [s.ci_high - s.iqm]], fmt="o", color=styles[name].color,
                            markersize=4.5, capsize=2.5, linewidth=1.6)
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
    ax_iqm.set_xlabel(f"{name}\nIQM, 95% CI (dashed: baseline)", fontsize=9)
    base = base_row.agent_label if base_row is not None else next((r.baseline for r in rows if r.baseline), None) or "baseline"
    _poi_panel(axes[1], ys, entries, styles, {r.agent_label: r.poi for r in rows if r.poi is not None}, base)
    if versus is not None:
        _poi_panel(axes[2], ys, entries, styles, versus[1], versus[0])
    for ax in axes:
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="y", length=0)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_forest(rows: Sequence[ReportRow], styles: dict[str, AgentStyle], title: str, path: Path | str,
                versus: tuple[str, dict[str, Poi]] | None = None) -> Path:
    """Write the forest plot of ``rows`` to ``path`` (PNG)."""
    from aees_gym.reporting.plots import _save

    return _save(forest_figure(rows, styles, title, versus), Path(path))


def tuned_label(results: Sequence[RunResult]) -> str | None:
    """The label of a suite's tuned-constant reference (the ``[tuning]`` table's agent), if it has one."""
    return next((r.agent_label for r in results if is_tuned(r)), None)


def versus_reference(results: Sequence[RunResult], reference: str, labels: Sequence[str], n_boot: int = 2000,
                     seed: int = 0) -> dict[str, Poi]:
    """P(a run of each agent beats a run of ``reference`` on the same task), stratified by task, with 95% CIs.

    The same computation as the report's P(better than baseline) (:func:`aees_gym.reporting.rows.make_row`),
    with ``reference`` in the baseline's place.
    """
    ref_runs = [r for r in results if r.agent_label == reference]
    out: dict[str, Poi] = {}
    for label in labels:
        runs = [r for r in results if r.agent_label == label]
        if label == reference or not runs:
            continue
        row = make_row(runs[0].suite, ALL_TASKS, label, runs, ref_runs, reference, n_boot, seed)
        if row.poi is not None:
            out[label] = row.poi
    return out


def write_forest_plots(overall: Sequence[ReportRow], results: Sequence[RunResult], out_dir: Path | str,
                       n_boot: int = 2000) -> list[Path]:
    """One forest plot per suite from its all-tasks rows (``Report.overall``), styled like the suite's other plots.

    A suite with a tuned-constant reference gets a third panel: P(better than the tuned constant).
    """
    from aees_gym.reporting.plots import _slug, run_styles

    written: list[Path] = []
    for suite in dict.fromkeys(r.suite for r in overall):
        rows = [r for r in overall if r.suite == suite and r.n_counted > 0]
        if not rows:
            continue
        in_suite = [r for r in results if r.suite == suite]
        labels = [r.agent_label for r in rows]
        styles = run_styles(in_suite, labels)
        tuned = tuned_label(in_suite)
        counted = [r for r in in_suite if r.status != "error"]
        versus = None if tuned is None else (tuned, versus_reference(counted, tuned, labels, n_boot))
        n_tasks = len({r.task_label for r in in_suite})
        runs = sorted({r.n_counted for r in rows})
        per_agent = f"{runs[0]}" if len(runs) == 1 else f"{runs[0]}–{runs[-1]}"
        title = (f"{suite}: every agent over {n_tasks} task{'s' if n_tasks > 1 else ''} ({per_agent} runs each, stratified by task)")
        written.append(plot_forest(rows, styles, title, Path(out_dir) / f"{_slug(suite, 'forest')}.png", versus))
    return written
