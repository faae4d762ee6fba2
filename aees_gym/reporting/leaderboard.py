"""Leaderboard rows and tables: each agent's scored row (or what is still pending) per instance set,
rendered as markdown with CIs and the timing and training notes of learned agents.

How the scores are computed (IQM of the raw metric with stratified-bootstrap CIs, P(better than the
reference), the floored normalised IQM, one :class:`Grouping` rule for enumerated sets and sampled
families) is documented with the code in :mod:`aees_gym.reporting.leaderboard_scores`; its names are
re-exported here. Rows of agents with runs or training still missing say what is pending.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, json_field, json_object, read_json_checked
from aees_gym.reporting.leaderboard_scores import (  # noqa: F401 (re-exported: their home before the split)
    BEST_FIXED,
    ENUMERATED,
    MIN_SCALE,
    NORMALISER_FLOOR,
    SAMPLED,
    Grouping,
    Score,
    competition_ranks,
    configuration,
    grouping_of,
    metric_scale,
    rank_key,
    raw_scores,
    set_metric,
)
from aees_gym.reporting.markdown import md_cell, metric_cell
from aees_gym.reporting.seed_groups import seed_group_markdown, seed_group_stats
from aees_gym.suite.leaderboard import RANDOM, SetPlan
from aees_gym.suite.results import RunResult
from aees_gym.suite.training import checkpoint_path, read_progress

#: A model sidecar is a few kB of settings and host facts.
MAX_SIDECAR_BYTES = 1 << 20


@dataclass(frozen=True)
class BoardRow:
    """One row of a set's table: a score, or what is still pending."""

    label: str
    reward: str
    training: str
    score: Score | None
    pending: str | None
    rank: int | None = None


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


def policy_record(plan: SetPlan, label: str) -> Mapping[str, Any] | None:
    """The policy record of a row trained outside the leaderboard (a ``learned`` policy file's hash and provenance), or ``None``."""
    runs = plan.runs_of(label)
    record = runs[0].training if runs and plan.job_of(label) is None else None
    return record if record is not None and "sha256" in record else None


def _policy_note(plan: SetPlan, record: Mapping[str, Any]) -> str:
    trained_on = record.get("instance_set")
    where = "in distribution" if trained_on == plan.instance_set.name else f"transfer: trained on {trained_on}"
    windows = record.get("windows_trained")
    return (f"policy: {record.get('algo')} {record.get('track')}, seed {record.get('training_seed')}, "
            f"{windows:,} windows on {trained_on}'s train split ({where})" if isinstance(windows, int) else f"policy ({where})")


def _training_note(plan: SetPlan, label: str) -> str:
    if label in plan.waiting:
        return "policy not written yet"
    record = policy_record(plan, label)
    if record is not None:
        return _policy_note(plan, record)
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


def set_rows(plan: SetPlan, finished: Mapping[str, RunResult], unavailable: Mapping[str, str], n_boot: int = 2000) -> list[BoardRow]:
    """The rows of one set: scored ones by raw IQM (best first, ties share a rank), then pending ones."""
    by_label: dict[str, list[RunResult]] = defaultdict(list)
    complete = []
    pending: dict[str, str] = {label: f"pending: reward {name!r} is not registered in this build" for label, name in unavailable.items()}
    untuned = set(plan.untuned())
    for entry in plan.entries:
        runs = plan.runs_of(entry.label)
        done = [finished[r.run_id] for r in runs if r.run_id in finished]
        job = plan.job_of(entry.label)
        if entry.label in plan.waiting:  # nothing planned: its input (a policy file) does not exist yet
            pending[entry.label] = f"pending: {plan.waiting[entry.label]}"
        elif job is not None and not Path(job.model_path).exists():
            pending[entry.label] = _training_pending(job.model_path, job.training.total_timesteps)
        elif entry.label in untuned:
            pending[entry.label] = "pending: no setting chosen on the tuning split yet (or every point failed there; see its tuning record)"
        elif len(done) < len(runs):
            pending[entry.label] = f"pending: {len(done)} of {len(runs)} test runs finished"
        else:
            complete.append(entry.label)
            by_label[entry.label] = done
    fixed = [e.label for e in plan.entries if e.agent.name == "fixed" and e.label.startswith("fixed ")]
    # Only agents that learn from the reward have one; random and fixed cells ignore it.
    rewards = {e.label: e.reward for e in plan.entries if e.agent.name not in ("fixed", RANDOM)}
    for label in rewards:  # a policy trained outside the leaderboard: the reward it was trained with
        record = policy_record(plan, label)
        if label in plan.waiting or record is not None:
            rewards[label] = str((record or {}).get("reward") or "—")
    reference = plan.reference
    baselines_done = all(label in complete for label in (RANDOM, *fixed, reference))
    metric = set_metric([i.task for i in plan.instance_set.test])
    scores: dict[str, Score] = {}
    if baselines_done:
        scores = raw_scores([r for label in complete for r in by_label[label]], metric, fixed, reference, n_boot,
                            grouping_of(plan.instance_set))
    ranks = competition_ranks(scores, metric.higher_is_better)
    rows = [BoardRow(label, rewards.get(label, "—"), _training_note(plan, label), scores[label], None, ranks[label])
            for label in sorted(scores, key=lambda label: rank_key(scores[label], metric.higher_is_better))]
    for entry in plan.entries:
        if entry.label not in scores:
            why = pending.get(entry.label) or f"pending: waiting for random, every fixed cell and the reference {reference!r}"
            rows.append(BoardRow(entry.label, rewards.get(entry.label, "—"), _training_note(plan, entry.label), None, why))
    for label, name in unavailable.items():
        if label not in {r.label for r in rows}:
            rows.append(BoardRow(label, name, "—", None, pending[label]))
    return rows


def set_summary(plan: SetPlan, rows: Sequence[BoardRow]) -> list[str]:
    """How well the set separates controllers: the fixed cells' spread of raw IQM against their CI widths."""
    cells = [r for r in rows if r.score is not None and np.isfinite(r.score.iqm) and r.label.startswith("fixed ")]
    if not cells:
        return [f"Test split: {len(plan.instance_set.test)} runs; the fixed cells' scores are pending."]
    best, worst = max(c.score.iqm for c in cells), min(c.score.iqm for c in cells)
    cell_width = float(np.median([c.score.high - c.score.low for c in cells]))
    power = (best - worst) / cell_width if cell_width > 0 else math.inf
    return [f"Discriminative power of the fixed cells: best − worst cell IQM = {best - worst:.4f}, {power:.1f}× their median 95% CI "
            f"width ({cell_width:.4f}). Test split: {len(plan.instance_set.test)} runs."]


def _ci(triple: tuple[float, float, float] | None, digits: int) -> tuple[str, str]:
    if triple is None or not np.isfinite(triple[0]):
        return "—", "—"
    point, low, high = (round(x, digits) + 0.0 for x in triple)  # + 0.0: never print "-0.00"
    if max(abs(point), abs(low), abs(high)) >= 1e5:  # a blown-up run's normalised score: short, not 200 digits
        return f"{point:.2e}", f"[{low:.2e}, {high:.2e}]"
    return f"{point:.{digits}f}", f"[{low:.{digits}f}, {high:.{digits}f}]"


def set_markdown(plan: SetPlan, rows: Sequence[BoardRow]) -> list[str]:
    """The markdown section of one set."""
    s = plan.instance_set
    metric = set_metric([i.task for i in s.test])
    arrow = "higher" if metric.higher_is_better else "lower"
    train = getattr(s, "train", None)
    elsewhere = sorted({str(rec.get("instance_set")) for e in plan.entries if (rec := policy_record(plan, e.label)) is not None
                        and rec.get("instance_set") != s.name})
    lines = [f"## `{s.name}` — test split ({grouping_of(s).header([i.name for i in s.test])})", "",
             f"{s.description}. Metric: final `{metric.name}` ({arrow} is better); {_training_sentence(train, elsewhere)} "
             f"Reference of P(better): `{plan.reference}`.", "", *set_summary(plan, rows), "",
             f"| rank | agent | reward | training | IQM {metric.name} | 95% CI | P(better than ref.) | 95% CI | "
             f"normalised IQM | 95% CI | mean {metric.name} | runs (diverged) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label, reward, training = md_cell(r.label), md_cell(r.reward), md_cell(r.training)
        if r.score is None:
            lines.append(f"| — | {label} | {reward} | {training} | — | — | — | — | — | — | — | — | {md_cell(r.pending)} |")
            continue
        sc = r.score
        poi = ("ref.", "—") if r.label == plan.reference else _ci(sc.poi, 2)
        lines.append(f"| {r.rank} | {label} | {reward} | {training} | {metric_cell(sc.iqm)} | [{metric_cell(sc.low)}, {metric_cell(sc.high)}] | "
                     f"{poi[0]} | {poi[1]} | {' | '.join(_ci(sc.normalised, 2))} | {metric_cell(sc.raw_mean)} | {sc.runs} ({sc.diverged}) | done |")
    widths = ci_widths([r.score for r in rows if r.score is not None])
    if widths:
        lines += ["", f"95% CI widths over the scored rows (median / widest): IQM {metric_cell(widths['iqm'][0])} / {metric_cell(widths['iqm'][1])}; "
                  f"P(better than ref.) {widths['poi'][0]:.2f} / {widths['poi'][1]:.2f}."]
    groups = {e.label: e.seed_group for e in plan.entries if e.seed_group is not None}
    lines += seed_group_markdown(seed_group_stats(groups, rows), metric.name)
    return [*lines, ""]


def _training_sentence(train: Sequence[Any] | None, elsewhere: Sequence[str]) -> str:
    """Where this set's learners were trained: its train split, its family's distribution, or another set (transfer)."""
    if train is None:
        sentence = "learners trained on runs drawn afresh from the family's training distribution only"
    elif train:
        sentence = f"learners trained on the {len(train)} train-split runs only"
    else:
        sentence = "this set has no train split: no learner trains on it"
    if elsewhere:
        sentence += (f"; learned policies trained on {', '.join(f'`{n}`' for n in elsewhere)}'s train split are scored here out of "
                     "their training distribution (transfer)")
    return sentence + "."


def ci_widths(scores: Sequence[Score]) -> dict[str, tuple[float, float]]:
    """Median and widest 95% CI width of the raw IQM and of P(better than the reference) over ``scores``."""
    iqm_w = [s.high - s.low for s in scores if np.isfinite(s.high - s.low)]
    poi_w = [s.poi[2] - s.poi[1] for s in scores if s.poi is not None]
    if not iqm_w or not poi_w:
        return {}
    return {"iqm": (float(np.median(iqm_w)), max(iqm_w)), "poi": (float(np.median(poi_w)), max(poi_w))}


def leaderboard_markdown(sections: Sequence[list[str]], source: str, sampled: bool = False) -> str:
    """The whole leaderboard page; ``sampled``: some set is an instance family (its grouping is explained)."""
    floor = f"{NORMALISER_FLOOR:g}"
    head = ["# Leaderboard", "", f"<!-- Generated by `python -m experiments.leaderboard` (config: {source}). -->", "",
            "Rows are sorted by the interquartile mean (IQM) of the final metric over the test runs, in the metric's own units,",
            "with a 95% stratified-bootstrap CI (strata = configurations: a test instance without its seed). P(better than ref.):",
            "the fraction of test instances on which the agent's run ends better than the reference's run on the same instance",
            "(ties count half), averaged over configurations, with a 95% CI that resamples instance pairs within configurations.",
            "Normalised IQM (secondary): per configuration random = 0 and the best fixed grid cell in hindsight = 1, with the",
            f"random-to-best range floored at {floor} of the metric's scale (1 for an accuracy; else the larger of |best|, |random|), so",
            "it never reverses the raw order. A run without the metric counts as the worst run of its configuration. Offline",
            "learners trained on the train split only: no test configuration or seed is seen in training.", ""]
    if sampled:
        head[-1:-1] = ["", "In an instance family (`<family>#test017`) every test instance is its own sampled configuration, run once: the",
                       "normaliser, the best fixed cell in hindsight and a missing metric's worst value are taken per instance, and both",
                       "CIs resample the instances as i.i.d. draws from the family (one stratum; P(better) is the fraction of instances won)."]
    return "\n".join(head + [line for section in sections for line in section])


def leaderboard_table(plans: Sequence[SetPlan], finished: Mapping[str, Mapping[str, RunResult]], unavailable: Mapping[str, str],
                      source: str, n_boot: int = 2000) -> str:
    """The page for ``plans``; ``finished`` maps each set to its finished results by run id."""
    sections = [set_markdown(p, set_rows(p, finished[p.instance_set.name], unavailable, n_boot)) for p in plans]
    return leaderboard_markdown(sections, source, any(grouping_of(p.instance_set).sampled for p in plans))


__all__ = [
    "BEST_FIXED", "ENUMERATED", "NORMALISER_FLOOR", "SAMPLED", "BoardRow", "Grouping", "Score", "ci_widths", "competition_ranks",
    "grouping_of", "leaderboard_table", "metric_scale", "rank_key", "raw_scores", "set_rows",
]
