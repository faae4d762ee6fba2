"""Training-seed variance beside test-run variance, for rows that are one learner trained with several seeds.

A leaderboard row's 95% CI covers the test runs only: it says how much its IQM would move on
another sample of test instances, for *this* trained policy. A learner trained again with another
seed is another policy. When several rows are one learner trained with different seeds (the
leaderboard file's ``seed_group``), :func:`seed_group_stats` sets the spread of their IQMs across
training seeds beside the mean width of one seed's test-run CI, so a reader sees which dominates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aees_gym.reporting.markdown import md_cell, metric_cell


@dataclass(frozen=True)
class SeedGroupStat:
    """One seed group of one set: its rows, the ones scored, and the statistics over the scored ones.

    ``mean_iqm``: the mean of the per-seed IQMs; ``low``/``high``: their min and max; ``sd``: their
    sample standard deviation (NaN with fewer than two seeds); ``mean_ci_width``: the mean width of
    the per-seed 95% CIs of the IQM (test-run variance).
    """

    group: str
    labels: tuple[str, ...]
    scored: tuple[str, ...]
    mean_iqm: float = math.nan
    low: float = math.nan
    high: float = math.nan
    sd: float = math.nan
    mean_ci_width: float = math.nan


def seed_group_stats(groups: Mapping[str, str], rows: Sequence[Any]) -> list[SeedGroupStat]:
    """One :class:`SeedGroupStat` per group of ``groups`` (label → group name), in first-appearance order.

    Args:
        groups: Each grouped row's label and its group's name.
        rows: The set's rows (``label`` and ``score``: ``None`` while pending, else ``iqm``, ``low``, ``high``).
    """
    scores = {r.label: r.score for r in rows if r.score is not None and np.isfinite(r.score.iqm)}
    members: dict[str, list[str]] = {}
    for label, group in groups.items():
        members.setdefault(group, []).append(label)
    out = []
    for group, labels in members.items():
        scored = [label for label in labels if label in scores]
        if not scored:
            out.append(SeedGroupStat(group, tuple(labels), ()))
            continue
        iqms = np.array([scores[label].iqm for label in scored], dtype=float)
        widths = [scores[label].high - scores[label].low for label in scored]
        out.append(SeedGroupStat(group, tuple(labels), tuple(scored), float(iqms.mean()), float(iqms.min()), float(iqms.max()),
                                 float(iqms.std(ddof=1)) if len(iqms) > 1 else math.nan, float(np.mean(widths))))
    return out


def seed_group_markdown(stats: Sequence[SeedGroupStat], metric: str) -> list[str]:
    """The section's lines for ``stats`` (none without groups)."""
    if not stats:
        return []
    lines = ["", f"Training seeds: rows of one learner trained with different seeds. The spread of their IQM {metric} across "
             "training seeds beside the mean width of one seed's 95% CI over the test runs: a spread wider than that CI "
             "means the training seed moves the score more than the sample of test runs does.", "",
             "| learner | seeds scored | mean of per-seed IQMs | min – max over seeds | sd over seeds | mean test-run 95% CI width |",
             "|---|---|---|---|---|---|"]
    for s in stats:
        if not s.scored:
            lines.append(f"| {md_cell(s.group)} | 0 of {len(s.labels)} | — | — | — | — |")
            continue
        sd = metric_cell(s.sd) if np.isfinite(s.sd) else "— (one seed)"
        lines.append(f"| {md_cell(s.group)} | {len(s.scored)} of {len(s.labels)} | {metric_cell(s.mean_iqm)} | {metric_cell(s.low)} – {metric_cell(s.high)} | {sd} | "
                     f"{metric_cell(s.mean_ci_width)} |")
    return lines


__all__ = ["SeedGroupStat", "seed_group_markdown", "seed_group_stats"]
