"""Score a leaderboard's results on instance-set test splits, normalised per test configuration.

A *configuration* is a test instance without its seed (task + settings). For each configuration
the random agent's mean metric maps to 0 and the best fixed grid cell in hindsight (the cell whose
mean is best there, in the task metric's direction) maps to 1; an agent's row is the IQM of its
runs' normalised scores with a 95% stratified-bootstrap CI (strata = configurations), beside the
raw mean of the metric. A run without the metric (it diverged before evaluating) scores as the
worst value any run of its configuration reached. Rows of agents with runs or training still
missing say what is pending instead of a score.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, json_field, json_object, read_json_checked
from aees_gym.reporting.markdown import md_cell
from aees_gym.reporting.rows import TaskMetric, task_metric
from aees_gym.reporting.stats import iqm, normalized_score, stratified_bootstrap_ci
from aees_gym.suite.leaderboard import RANDOM, SetPlan
from aees_gym.suite.results import RunResult
from aees_gym.suite.training import checkpoint_path, read_progress

BEST_FIXED = "best fixed cell (hindsight)"
#: A model sidecar is a few kB of settings and host facts.
MAX_SIDECAR_BYTES = 1 << 20


def configuration(task_label: str) -> str:
    """The instance name without its ``#seed``."""
    return task_label.rsplit("#", 1)[0]


def set_metric(tasks: Sequence[str]) -> TaskMetric:
    """The metric shared by ``tasks``.

    Raises:
        ValueError: If the tasks rank runs by different metrics or directions.
    """
    metrics = {task_metric(t) for t in tasks}
    if len({(m.name, m.higher_is_better) for m in metrics}) != 1:
        raise ValueError(f"the tasks {sorted(set(tasks))} rank runs by different metrics {sorted(m.name for m in metrics)}; "
                         "a leaderboard set needs one metric and direction.")
    return next(iter(metrics))


@dataclass(frozen=True)
class Score:
    """One agent's normalised IQM with its CI, the raw mean of the metric and its run counts."""

    iqm: float
    low: float
    high: float
    raw_mean: float
    runs: int
    diverged: int


def normalised_scores(results: Sequence[RunResult], metric: TaskMetric, fixed_labels: Sequence[str],
                      n_boot: int = 2000) -> tuple[dict[str, Score], list[str]]:
    """Score every agent label of ``results`` (plus :data:`BEST_FIXED`).

    Returns the scores and the configurations left out because random ties the best fixed cell
    there (no scale to normalise by).

    Raises:
        ValueError: If ``random`` or a fixed cell has no run of some configuration.
    """
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        v = (r.final_metrics or {}).get(metric.name)
        values[r.agent_label][configuration(r.task_label)].append(np.nan if v is None else float(v))
    sign = 1.0 if metric.higher_is_better else -1.0
    configs = sorted({c for per in values.values() for c in per})
    for label in (RANDOM, *fixed_labels):
        missing = [c for c in configs if not values[label].get(c)]
        if missing:
            raise ValueError(f"{label!r} has no run of configuration {missing[0]!r}; it is needed to normalise the scores.")

    def mean(xs: list[float]) -> float:
        finite = [x for x in xs if np.isfinite(x)]
        return float(np.mean(finite)) if finite else -np.inf * sign

    for c in configs:
        best = max(fixed_labels, key=lambda label: sign * mean(values[label][c]))
        values[BEST_FIXED][c] = values[best][c]
    scaled = [c for c in configs if np.isfinite(mean(values[BEST_FIXED][c])) and mean(values[BEST_FIXED][c]) != mean(values[RANDOM][c])]
    scores = {}
    for label, per in values.items():
        normalised = {}
        for c in scaled:
            finite = [x for xs in values.values() for x in xs.get(c, []) if np.isfinite(x)]
            worst = min(finite) if metric.higher_is_better else max(finite)
            runs = np.nan_to_num(np.asarray(per[c], dtype=float), nan=worst)
            normalised[c] = normalized_score(runs, mean(values[RANDOM][c]), mean(values[BEST_FIXED][c]))
        flat = [x for c in configs for x in per[c]]
        point, low, high = stratified_bootstrap_ci(normalised, iqm, n_boot=n_boot) if normalised else (np.nan,) * 3
        scores[label] = Score(point, low, high, float(np.nanmean(flat)) if np.isfinite(flat).any() else np.nan,
                              len(flat), int(np.isnan(flat).sum()))
    return scores, [c for c in configs if c not in scaled]


@dataclass(frozen=True)
class BoardRow:
    """One row of a set's table: a score, or what is still pending."""

    label: str
    reward: str
    training: str
    score: Score | None
    pending: str | None


def _sidecar_timing(sidecar: Path, total: int) -> tuple[float, int]:
    """``wall_clock_s`` and ``resumed_at_windows`` of a model sidecar, checked (``0`` where absent)."""
    fix = "; delete the sidecar and the model beside it to train again"
    record = json_object(read_json_checked(sidecar, max_bytes=MAX_SIDECAR_BYTES, what="a model sidecar"), sidecar, fix=fix)
    wall = resumed = 0
    if record.get("wall_clock_s") is not None:
        wall = json_field(record, "wall_clock_s", checks.non_negative, sidecar, fix=fix)
    if record.get("resumed_at_windows") is not None:
        resumed = json_field(record, "resumed_at_windows", checks.integer, sidecar, fix=fix, minimum=0, maximum=total)
    return wall, resumed


def _training_note(plan: SetPlan, label: str) -> str:
    job = plan.job_of(label)
    if job is None:
        return "—"
    note = f"{job.training.total_timesteps:,} windows"
    sidecar = Path(job.model_path).with_suffix(".json")
    if os.path.lexists(sidecar):
        wall, resumed = _sidecar_timing(sidecar, job.training.total_timesteps)
        if wall > 0:  # the last process's wall clock covers the windows after the resume point
            note += f" ({(job.training.total_timesteps - resumed) / wall:.0f}/s" + (f", resumed at {resumed:,})" if resumed else ")")
    return note


def _training_pending(model_path: str, total: int) -> str:
    try:
        progress, unreadable = read_progress(model_path), ""
    except FileCheckError as exc:  # one bad report must not hide the whole table: the row says what is wrong
        progress, unreadable = None, f"; progress report ignored: {exc.reason}"
    resumable = checkpoint_path(model_path).is_file()
    if progress is None:
        return f"pending: trained 0 of {total:,} windows" + ("; a checkpoint is kept" if resumable else "") + unreadable
    # A report that stopped moving is a killed training; the next start resumes from the checkpoint, if one is kept.
    restart = "a restart begins again from 0"
    if resumable:
        at = progress["checkpoint_windows"]
        restart = "a restart resumes from its last checkpoint" + (f", at window {at:,}" if at is not None else "")
    return (f"pending: {progress['windows_trained']:,} of {progress['total_timesteps']:,} windows trained "
            f"(report of {progress['updated_utc']}; {restart})")


def set_rows(plan: SetPlan, finished: Mapping[str, RunResult], unavailable: Mapping[str, str], n_boot: int = 2000) -> tuple[list[BoardRow], list[str]]:
    """The rows of one set (scored ones best first, then pending ones) and the configurations left unscored."""
    by_label: dict[str, list[RunResult]] = defaultdict(list)
    complete = []
    pending: dict[str, str] = {label: f"pending: reward {name!r} is not registered in this build" for label, name in unavailable.items()}
    for entry in plan.entries:
        runs = plan.runs_of(entry.label)
        done = [finished[r.run_id] for r in runs if r.run_id in finished]
        job = plan.job_of(entry.label)
        if job is not None and not Path(job.model_path).exists():
            pending[entry.label] = _training_pending(job.model_path, job.training.total_timesteps)
        elif len(done) < len(runs):
            pending[entry.label] = f"pending: {len(done)} of {len(runs)} test runs finished"
        else:
            complete.append(entry.label)
            by_label[entry.label] = done
    fixed = [e.label for e in plan.entries if e.agent.name == "fixed" and e.label.startswith("fixed ")]
    # Only agents that learn from the reward have one; random and fixed cells ignore it.
    rewards = {e.label: e.reward for e in plan.entries if e.agent.name not in ("fixed", RANDOM)}
    baselines_done = RANDOM in complete and all(f in complete for f in fixed)
    scores, unscored = ({}, [])
    if baselines_done:
        metric = set_metric([i.task for i in plan.instance_set.test])
        scores, unscored = normalised_scores([r for label in complete for r in by_label[label]], metric, fixed, n_boot)
    rows = [BoardRow(label, rewards.get(label, "—"), _training_note(plan, label), scores[label], None) for label in scores]
    rows.sort(key=lambda r: -r.score.iqm if r.score and np.isfinite(r.score.iqm) else np.inf)
    for entry in plan.entries:
        if entry.label not in scores:
            why = pending.get(entry.label) or "pending: waiting for random and every fixed cell (the score's scale)"
            rows.append(BoardRow(entry.label, rewards.get(entry.label, "—"), _training_note(plan, entry.label), None, why))
    for label, name in unavailable.items():
        if label not in {r.label for r in rows}:
            rows.append(BoardRow(label, name, "—", None, pending[label]))
    return rows, unscored


def set_markdown(plan: SetPlan, rows: Sequence[BoardRow], unscored: Sequence[str]) -> list[str]:
    """The markdown section of one set."""
    s = plan.instance_set
    metric = set_metric([i.task for i in s.test])
    arrow = "higher" if metric.higher_is_better else "lower"
    lines = [f"## `{s.name}` — test split ({len(s.test)} runs)", "", f"{s.description}. Metric: final `{metric.name}` ({arrow} is better); "
             f"learners trained on the {len(s.train)} train-split runs only.", "",
             f"| agent | reward | training | normalised IQM | 95% CI | mean {metric.name} | runs (diverged) | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label, reward, training = md_cell(r.label), md_cell(r.reward), md_cell(r.training)
        if r.score is None:
            lines.append(f"| {label} | {reward} | {training} | — | — | — | — | {md_cell(r.pending)} |")
        else:
            sc = r.score
            lines.append(f"| {label} | {reward} | {training} | {sc.iqm:.2f} | [{sc.low:.2f}, {sc.high:.2f}] | {sc.raw_mean:.4f} | "
                         f"{sc.runs} ({sc.diverged}) | done |")
    if unscored:
        lines += ["", f"Not normalised (random ties the best fixed cell): {', '.join(map(md_cell, unscored))}."]
    return [*lines, ""]


def leaderboard_markdown(sections: Sequence[list[str]], source: str) -> str:
    """The whole leaderboard page."""
    head = ["# Leaderboard", "", f"<!-- Generated by `python -m experiments.leaderboard` (config: {source}). -->", "",
            "Score: each test run's final metric, normalised per test configuration (task + settings, all its seeds) so that",
            "random = 0 and the best fixed grid cell in hindsight = 1; IQM over the test runs with a 95% stratified-bootstrap",
            "CI (strata = configurations). A run without the metric scores as the worst run of its configuration. Offline",
            "learners trained on the train split only: no test configuration or seed is seen in training.", ""]
    return "\n".join(head + [line for section in sections for line in section])


def leaderboard_table(plans: Sequence[SetPlan], finished: Mapping[str, Mapping[str, RunResult]], unavailable: Mapping[str, str],
                      source: str, n_boot: int = 2000) -> str:
    """The page for ``plans``; ``finished`` maps each set to its finished results by run id."""
    sections = []
    for p in plans:
        rows, unscored = set_rows(p, finished[p.instance_set.name], unavailable, n_boot)
        sections.append(set_markdown(p, rows, unscored))
    return leaderboard_markdown(sections, source)


__all__ = ["BEST_FIXED", "BoardRow", "Score", "leaderboard_table", "normalised_scores", "set_rows"]
