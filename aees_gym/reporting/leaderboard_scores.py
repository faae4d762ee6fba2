"""Scores of a leaderboard's results on instance-set test splits: the raw metric first.

Each agent's row leads with what a reader asks for, in the task metric's own units:

* **IQM of the final metric** over all test runs, with a 95% stratified-bootstrap CI (strata =
  configurations, a configuration being a test instance without its seed). The table is sorted by
  it (in the metric's direction), so the order always agrees with the raw metric.

How runs group is one rule, :class:`Grouping` (:func:`grouping_of` a set): in an enumerated set
(``-v0``: ``Digits[base_lr=0.001,...]#3``) a configuration is run with several seeds and is both
the bootstrap stratum and the normaliser's group. In an instance *family* (``digits-mlp-v1#test017``)
every test instance is its own sampled configuration, run once: the normaliser is per instance,
and the bootstraps resample the instances as i.i.d. draws from the family (one stratum).
* **P(better than the reference)**: the fraction of test instances on which the agent's run ends
  better than the reference's run on the *same* instance (ties count half), averaged over
  configurations, with a CI that resamples instance pairs within configurations
  (:func:`~aees_gym.reporting.stats.paired_probability_of_improvement_ci`). The reference is the
  leaderboard file's ``reference`` label (a tuned constant where the set has one; the plain
  ``fixed`` ×1.0 cell otherwise).
* A **normalised IQM**, kept as a secondary column: per configuration the random agent's mean maps
  to 0 and the best fixed grid cell in hindsight to 1, but the range is never taken smaller than
  :data:`NORMALISER_FLOOR` of the metric's scale (:func:`metric_scale`). Without that floor a
  configuration where random nearly ties the best cell magnifies tiny differences without bound,
  and one where random beats every fixed cell flips the sign, so a worse agent could outrank a
  better one. With it, normalisation is an increasing map per configuration: an agent whose raw
  metric is no better than another's on every test run never ranks above it.

A run without the metric (it diverged before evaluating) counts as the worst value any run of its
configuration reached. The rows, pending notes and markdown tables built from these scores are in
:mod:`aees_gym.reporting.leaderboard`, which re-exports every name here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aees_gym.envs.families import InstanceFamily
from aees_gym.reporting.rows import TaskMetric, task_metric
from aees_gym.reporting.stats import iqm, paired_probability_of_improvement_ci, stratified_bootstrap_ci
from aees_gym.suite.leaderboard import RANDOM
from aees_gym.suite.results import RunResult

BEST_FIXED = "best fixed cell (hindsight)"
#: The random-to-best range of a configuration's normaliser is at least this fraction of the metric's scale.
NORMALISER_FLOOR = 0.05
#: The smallest scale of a metric without a fixed range (a loss that every agent drives to ~0).
MIN_SCALE = 1e-6


def configuration(task_label: str) -> str:
    """The instance name without its ``#seed``."""
    return task_label.rsplit("#", 1)[0]


@dataclass(frozen=True)
class Grouping:
    """How a set's test runs group for the normaliser and for the bootstraps.

    Args:
        sampled: The set is an instance family: each test instance is an independent draw of a
            configuration, run once. Otherwise (an enumerated set) a configuration is an instance
            name without its ``#seed``, run with several seeds.
    """

    sampled: bool = False

    def normaliser_group(self, task_label: str) -> str:
        """The runs that share a normaliser (random = 0, best fixed cell = 1), a best fixed cell and a worst value."""
        return task_label if self.sampled else configuration(task_label)

    def stratum(self, task_label: str) -> str:
        """The bootstrap stratum: the family (one stratum of i.i.d. instances), or the configuration."""
        return "" if self.sampled else configuration(task_label)

    def header(self, names: Sequence[str]) -> str:
        """What a section's title says about its test runs."""
        if self.sampled:
            return f"{len(names)} runs = {len(names)} sampled configurations, bootstrap over instances"
        return f"{len(names)} runs, {len({configuration(n) for n in names})} configurations"


#: An enumerated (``-v0``) set's grouping.
ENUMERATED = Grouping(sampled=False)
#: An instance family's grouping.
SAMPLED = Grouping(sampled=True)


def grouping_of(instances: object) -> Grouping:
    """:data:`SAMPLED` for an instance family, :data:`ENUMERATED` for an enumerated set."""
    return SAMPLED if isinstance(instances, InstanceFamily) else ENUMERATED


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


def metric_scale(metric: TaskMetric, best_mean: float, random_mean: float) -> float:
    """The scale the normaliser's floor is a fraction of.

    An accuracy lives in [0, 1], so its scale is 1 (the floor is 0.05 accuracy); any other metric
    (losses, perplexities) has no fixed range, so its scale is the larger magnitude of the best fixed
    cell's and random's means (the floor is 5% of it), and never below :data:`MIN_SCALE`.
    """
    if "accuracy" in metric.name:
        return 1.0
    return max(abs(best_mean), abs(random_mean), MIN_SCALE)


@dataclass(frozen=True)
class Score:
    """One agent's row: raw IQM of the metric with its CI, P(better than the reference) with its CI,
    the floored normalised IQM with its CI, the raw mean (a run without the metric counted as its
    configuration's worst, as in the IQM) and the run counts."""

    iqm: float
    low: float
    high: float
    raw_mean: float
    runs: int
    diverged: int
    poi: tuple[float, float, float] | None = None
    normalised: tuple[float, float, float] = (math.nan, math.nan, math.nan)


def _mean(xs: Sequence[float]) -> float:
    finite = [x for x in xs if np.isfinite(x)]
    return float(np.mean(finite)) if finite else math.nan


def rank_key(score: Score, higher_is_better: bool) -> tuple[float, float]:
    """Sort key (smaller ranks first): raw IQM, then raw mean, in the metric's direction."""
    sign = -1.0 if higher_is_better else 1.0
    return (sign * score.iqm if np.isfinite(score.iqm) else math.inf,
            sign * score.raw_mean if np.isfinite(score.raw_mean) else math.inf)


def competition_ranks(scores: Mapping[str, Score], higher_is_better: bool) -> dict[str, int]:
    """Rank 1 is best; agents with the same key share a rank (1, 2, 2, 4)."""
    keys = {label: rank_key(s, higher_is_better) for label, s in scores.items()}
    return {label: 1 + sum(1 for other in keys.values() if other < k) for label, k in keys.items()}


def raw_scores(results: Sequence[RunResult], metric: TaskMetric, fixed_labels: Sequence[str], reference: str | None = None,
               n_boot: int = 2000, grouping: Grouping = ENUMERATED) -> dict[str, Score]:
    """Score every agent label of ``results`` (plus :data:`BEST_FIXED`) on the raw metric.

    Args:
        results: Finished test runs of every agent (``random`` and each fixed cell included).
        metric: The set's metric and its direction.
        fixed_labels: Labels of the fixed grid cells (the best one in hindsight is :data:`BEST_FIXED`,
            chosen per normaliser group).
        reference: Label whose runs P(improvement) compares against, instance by instance (``None``: no such column).
        n_boot: Bootstrap replicates of every CI.
        grouping: Normaliser groups and bootstrap strata (:func:`grouping_of` the set).

    Raises:
        ValueError: If ``random``, a fixed cell or the reference has no run of some normaliser group.
    """
    # label -> normaliser group -> instance (task label) -> value (NaN: no metric)
    values: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        v = (r.final_metrics or {}).get(metric.name)
        finite = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        values[r.agent_label][grouping.normaliser_group(r.task_label)][r.task_label] = float(v) if finite else math.nan
    sign = 1.0 if metric.higher_is_better else -1.0
    configs = sorted({c for per in values.values() for c in per})
    for label in (RANDOM, *fixed_labels, *([reference] if reference else [])):
        missing = [c for c in configs if not values[label].get(c)]
        if missing:
            what = "test instance" if grouping.sampled else "configuration"
            raise ValueError(f"{label!r} has no run of {what} {missing[0]!r}; it is needed to score the set.")
    for c in configs:
        best = max(fixed_labels, key=lambda label: sign * np.nan_to_num(_mean(list(values[label][c].values())), nan=-np.inf))
        values[BEST_FIXED][c] = dict(values[best][c])
    # A run without the metric counts as the worst run of its normaliser group.
    worst: dict[str, float] = {}
    for c in configs:
        finite = [x for per in values.values() for x in per.get(c, {}).values() if np.isfinite(x)]
        worst[c] = (min(finite) if metric.higher_is_better else max(finite)) if finite else 0.0
    filled = {label: {c: {k: (x if np.isfinite(x) else worst[c]) for k, x in per[c].items()} for c in per} for label, per in values.items()}
    zero = {c: _mean(list(filled[RANDOM][c].values())) for c in configs}
    one = {c: _mean(list(filled[BEST_FIXED][c].values())) for c in configs}
    spread = {c: max(sign * (one[c] - zero[c]), NORMALISER_FLOOR * metric_scale(metric, one[c], zero[c])) for c in configs}

    def strata(per: Mapping[str, Mapping[str, float]], keep: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, list[tuple[str, str]]]:
        """stratum -> (group, instance) keys of ``per`` (only instances also in ``keep``'s group, when given)."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for c in configs:
            for k in per.get(c, {}):
                if keep is None or k in keep.get(c, {}):
                    out[grouping.stratum(k)].append((c, k))
        return dict(out)

    scores = {}
    for label, per in filled.items():
        keys = strata(per)
        raw = {s: [per[c][k] for c, k in ks] for s, ks in keys.items()}
        flat = [x for c in configs for x in values[label].get(c, {}).values()]
        counted = [x for xs in raw.values() for x in xs]
        point, low, high = stratified_bootstrap_ci(raw, iqm, n_boot=n_boot)
        normalised = {s: [sign * (per[c][k] - zero[c]) / spread[c] for c, k in ks] for s, ks in keys.items()}
        poi = None
        if reference is not None and label != reference:
            ref = filled[reference]
            pairs = strata(per, keep=ref)
            if pairs:
                poi = paired_probability_of_improvement_ci(
                    {s: [sign * per[c][k] for c, k in ks] for s, ks in pairs.items()},
                    {s: [sign * ref[c][k] for c, k in ks] for s, ks in pairs.items()}, n_boot=n_boot)
        scores[label] = Score(point, low, high, float(np.mean(counted)), len(flat), int(np.isnan(flat).sum()), poi,
                              stratified_bootstrap_ci(normalised, iqm, n_boot=n_boot))
    return scores
