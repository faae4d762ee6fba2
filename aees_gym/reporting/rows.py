"""One table row per suite × task variant × agent: run counts, metric summaries, P(better than baseline).

**Task metric.** Each task names the metric that ranks its runs and its direction
(:class:`aees_gym.tasks.TaskSpec` ``metric``/``higher_is_better``: validation accuracy, higher is
better, for classification; validation perplexity, lower is better, for GPT2). Rows summarise it as
``task_metric``, rank agents by its IQM in the task's direction, and compute P(better than
baseline) on it. A result whose task is not registered here (a plugin that is not installed) falls
back to validation accuracy, higher is better.

**Baseline.** In each (suite, task variant) the baseline is the plain optimizer: agent ``fixed``
with ``lr_multiplier`` 1.0 and ``noise_std`` 0.0 (given or left at those defaults, no ``index``).
Schedule baselines such as ``fixed+cosine`` are other agent names and never the baseline. When
several labels qualify, the alphabetically first is used; an explicit label can be chosen.

**Runs counted.** ``ok`` and ``diverged`` runs enter the statistics (a diverged run keeps its final
accuracy, so divergence lowers the numbers instead of vanishing); ``error`` runs are only counted.
A metric a run does not have (a diverged run's train loss) is left out of that metric's ``n``.
Steps-to-target of a run that never reaches the task's target accuracy counts as the full budget
(``total_steps``) in these rows; the time-to-target section counts it as never (``inf``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from aees_gym.reporting import stats
from aees_gym.suite.results import RunResult

ALL_TASKS = "(all tasks)"
#: Cells with fewer counted runs (ok + diverged) than this are flagged: their CIs are unreliable.
FEW_RUNS = 5


@dataclass(frozen=True)
class TaskMetric:
    """The metric that ranks a task's runs; ``known`` is False for the fallback of an unregistered task."""

    name: str
    higher_is_better: bool
    known: bool = True

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


def task_metric(task: str) -> TaskMetric:
    """The registered task's metric and direction; validation accuracy (higher is better) otherwise."""
    from aees_gym.tasks import get_task

    try:
        spec = get_task(task)
    except KeyError:
        return TaskMetric("val_accuracy", True, known=False)
    return TaskMetric(spec.metric, spec.higher_is_better)


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
#: The task's own metric (``task_metric(run.task).name``), summarised next to ``METRICS``.
TASK_METRIC = Metric("task_metric", "task metric", True, lambda r: _final(task_metric(r.task).name)(r))


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
    """One agent on one task variant (or on all tasks of a suite, ``task_label == ALL_TASKS``).

    ``metric`` is the task's metric (``None`` over tasks with different metrics); ``rank`` orders
    the agents of one task by the IQM of ``task_metric`` in its direction (1 = best, ties share).
    """

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
    metric: TaskMetric | None = None
    rank: int | None = None
    reward: str = "—"

    @property
    def n_counted(self) -> int:
        return self.n_ok + self.n_diverged

    @property
    def few_runs(self) -> bool:
        return self.n_counted < FEW_RUNS


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _values(results: Iterable[RunResult], metric: Metric) -> list[float]:
    return [float(v) for r in results if r.status != "error" and finite(v := metric.extract(r))]


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


def _settings_key(result: RunResult) -> str:
    return json.dumps(result.env_overrides, sort_keys=True, default=str)


def grid_cells(runs: Sequence[RunResult]) -> list[RunResult]:
    """The ``fixed`` agent's runs under the task variant's own settings: its grid cells.

    References also run the ``fixed`` agent (another optimizer, a tuned base LR) but with env settings
    of their own, so they are not cells of the grid: a cell has the variant's settings — the most
    common env overrides among the variant's runs, which every agent without settings of its own
    shares — and no training record.
    """
    if not runs:
        return []
    plain, _ = Counter(_settings_key(r) for r in runs).most_common(1)[0]
    return [r for r in runs if r.agent == "fixed" and r.training is None and _settings_key(r) == plain]


def baseline_label(results: list[RunResult], explicit: str | None) -> str | None:
    """The baseline label among ``results`` of one task variant (explicit when given and present)."""
    labels = {r.agent_label for r in results}
    if explicit is not None:
        return explicit if explicit in labels else None
    return min((r.agent_label for r in grid_cells(results) if is_fixed_baseline(r)), default=None)


def reward_names(runs: Iterable[RunResult]) -> str:
    """The reward(s) the runs were scored with (``config.reward.name``), comma-separated; ``—`` if unknown."""
    names = {str(r.config["reward"]["name"]) for r in runs
             if isinstance(r.config, dict) and isinstance(r.config.get("reward"), dict) and "name" in r.config["reward"]}
    return ", ".join(sorted(names)) or "—"


def _group_values(runs: list[RunResult], metric: Metric) -> dict[str, list[float]]:
    groups: dict[str, list[RunResult]] = {}
    for r in runs:
        groups.setdefault(r.task_label, []).append(r)
    return {task: _values(rs, metric) for task, rs in groups.items()}


def _oriented(runs: list[RunResult]) -> dict[str, list[float]]:
    """Task-metric values per task, negated where lower is better, so larger is always better."""
    out = _group_values(runs, TASK_METRIC)
    signs = {r.task_label: 1.0 if task_metric(r.task).higher_is_better else -1.0 for r in runs}
    return {task: [signs[task] * v for v in values] for task, values in out.items()}


def _poi(agent: dict[str, list[float]], base: dict[str, list[float]], n_boot: int, seed: int) -> tuple[float, float, float] | None:
    tasks = sorted(t for t in agent if agent[t] and base.get(t))
    if not tasks:
        return None
    return stats.probability_of_improvement_ci({t: agent[t] for t in tasks}, {t: base[t] for t in tasks}, n_boot=n_boot, seed=seed)


def make_row(suite: str, task: str, label: str, runs: list[RunResult], base_runs: list[RunResult], baseline: str | None,
             n_boot: int, seed: int) -> ReportRow:
    """The row of ``runs`` (one agent) against ``base_runs`` (each task's baseline)."""
    metrics = {m.key: summarize(_group_values(runs, m), n_boot, seed) for m in METRICS}
    kinds = {task_metric(r.task) for r in runs}
    metric = next(iter(kinds)) if len(kinds) == 1 else None
    # One summary cannot mix metrics (accuracy and perplexity) across tasks.
    metrics[TASK_METRIC.key] = summarize(_group_values(runs, TASK_METRIC), n_boot, seed) if metric else None
    is_base = baseline == label
    poi = None if is_base else _poi(_oriented(runs), _oriented(base_runs), n_boot, seed)
    has_target = [r for r in runs if r.status != "error" and _steps_to_target(r) is not None]
    reached = sum(1 for r in has_target if (r.final_metrics or {}).get("steps_to_target") is not None)
    return ReportRow(
        suite=suite, task_label=task, agent_label=label, agent=runs[0].agent, n_runs=len(runs),
        n_ok=sum(r.status == "ok" for r in runs), n_diverged=sum(r.status == "diverged" for r in runs),
        n_error=sum(r.status == "error" for r in runs), metrics=metrics,
        reached_target=reached if has_target else None, poi=poi, baseline=baseline, is_baseline=is_base,
        metric=metric, reward=reward_names(r for r in runs if r.status != "error"),
    )


def ranks(rows: list[ReportRow]) -> list[int | None]:
    """Competition ranks (1, 2, 2, 4) of one task's rows by the task metric's IQM in its direction."""
    def score(row: ReportRow) -> float | None:
        s = row.metrics.get(TASK_METRIC.key)
        if s is None or row.metric is None:
            return None
        return s.iqm if row.metric.higher_is_better else -s.iqm

    scores = [score(r) for r in rows]
    return [None if s is None else 1 + sum(1 for o in scores if o is not None and o > s) for s in scores]
