"""Per-task report sections: discriminative power (spread of the fixed cells) and time to target.

**Discriminative power.** The *fixed cells* of a task are its agents named ``fixed`` (one learning
rate multiplier / noise level each, chosen by the suite). On the task's metric, the cell with the
best mean and the cell with the worst are compared as Hedges' g with the seed noise pooled over all
fixed cells (:func:`aees_gym.reporting.effect_size.standardized_spread`), with a 95% stratified
bootstrap CI and a permutation p-value against "all fixed cells are the same". A large g (p < 0.05)
means the setting matters on that task, so controllers can be told apart; a small one means every
controller must tie within seed noise.

**Time to target.** A task's target is its ``config.target_accuracy`` (validation accuracy; set by
the task or the suite). A run's time is the optimizer step of its first evaluation at or above the
target (``final_metrics.steps_to_target``), ``inf`` when it never gets there. An agent's time on
a task is the **median over its runs** (so it is finite only when more than half of its runs reach
the target; ``error`` runs are left out). The ratio to the fastest agent on the task feeds the
performance profiles of :mod:`aees_gym.reporting.profiles`; over a suite's tasks with a target, an
agent missing from a task counts as never reaching it. Tasks without an accuracy target (a
lower-is-better task such as GPT2 perplexity, unless a target is set) have no time to target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aees_gym.reporting import effect_size, profiles
from aees_gym.reporting.rows import TaskMetric, finite, grid_cells, task_metric
from aees_gym.suite.results import RunResult

#: Significance level of the permutation test behind the verdict.
ALPHA = 0.05


@dataclass(frozen=True)
class Discrimination:
    """Spread of the fixed cells of one task; ``reason`` says why it is missing when ``spread`` is None."""

    suite: str
    task_label: str
    metric: TaskMetric
    cells: dict[str, list[float]]
    spread: effect_size.Spread | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    reason: str = ""

    @property
    def best(self) -> str | None:
        if self.spread is None:
            return None
        return self.spread.high if self.metric.higher_is_better else self.spread.low

    @property
    def worst(self) -> str | None:
        if self.spread is None:
            return None
        return self.spread.low if self.metric.higher_is_better else self.spread.high

    @property
    def verdict(self) -> str:
        if self.spread is None or self.p_value is None:
            return "—"
        return "control matters" if self.p_value < ALPHA else "ties within seed noise"


def discriminative_power(suite: str, task_label: str, runs: Sequence[RunResult], n_boot: int = 2000, seed: int = 0) -> Discrimination:
    """The fixed cells' spread on the task metric (runs of one suite × task variant)."""
    metric = task_metric(runs[0].task) if runs else TaskMetric("val_accuracy", True, known=False)
    cells: dict[str, list[float]] = {}
    for r in grid_cells(runs):
        if r.status != "error" and finite(v := (r.final_metrics or {}).get(metric.name)):
            cells.setdefault(r.agent_label, []).append(float(v))
    base = Discrimination(suite, task_label, metric, cells)
    if len(cells) < 2:
        return Discrimination(**{**base.__dict__, "reason": f"needs ≥ 2 fixed cells with results, has {len(cells)}"})
    if sum(len(v) for v in cells.values()) - len(cells) < 2:
        return Discrimination(**{**base.__dict__, "reason": "needs ≥ 2 runs more than cells to estimate seed noise"})
    spread = effect_size.standardized_spread(cells)
    _, low, high = effect_size.standardized_spread_ci(cells, n_boot=n_boot, seed=seed)
    p = effect_size.spread_permutation_p(cells, n_perm=n_boot, seed=seed)
    return Discrimination(suite, task_label, metric, cells, spread, (low, high), p)


@dataclass(frozen=True)
class AgentTime:
    """One agent's time to target on one task; ``ratio`` is to the task's fastest agent."""

    agent_label: str
    n: int
    reached: int
    median_steps: float
    ratio: float


@dataclass(frozen=True)
class TimeToTarget:
    """Time to target of every agent on one task; ``targets`` empty means the task has none."""

    suite: str
    task_label: str
    metric: TaskMetric
    targets: tuple[float, ...]
    agents: tuple[AgentTime, ...] = ()

    @property
    def applies(self) -> bool:
        return bool(self.targets)


def run_steps(r: RunResult) -> float:
    """Steps a run needed to reach its target accuracy; ``inf`` when it never did."""
    steps = (r.final_metrics or {}).get("steps_to_target")
    return float(steps) if finite(steps) else float("inf")


def time_to_target(suite: str, task_label: str, runs: Sequence[RunResult], labels: Sequence[str]) -> TimeToTarget:
    """Median steps to target per agent (in ``labels`` order) and the ratio to the fastest."""
    counted = [r for r in runs if r.status != "error" and r.config is not None]
    metric = task_metric(runs[0].task) if runs else TaskMetric("val_accuracy", True, known=False)
    targets = tuple(sorted({float(r.config["target_accuracy"]) for r in counted if r.config.get("target_accuracy") is not None}))
    if not targets:
        return TimeToTarget(suite, task_label, metric, ())
    by_agent = {label: [r for r in counted if r.agent_label == label and r.config.get("target_accuracy") is not None] for label in labels}
    by_agent = {label: rs for label, rs in by_agent.items() if rs}
    medians = {label: float(np.median([run_steps(r) for r in rs])) for label, rs in by_agent.items()}
    ratios = profiles.performance_ratios(np.array([[m] for m in medians.values()]))[:, 0]
    agents = tuple(
        AgentTime(label, len(rs), sum(np.isfinite(run_steps(r)) for r in rs), medians[label], float(ratio))
        for (label, rs), ratio in zip(by_agent.items(), ratios, strict=True)
    )
    return TimeToTarget(suite, task_label, metric, targets, agents)


@dataclass(frozen=True)
class Profile:
    """Performance profiles of a suite: ``rho[agent, tau]`` over ``tasks`` (those with a target)."""

    suite: str
    agents: tuple[str, ...]
    tasks: tuple[str, ...]
    times: np.ndarray
    taus: np.ndarray
    rho: np.ndarray
    rho_1: np.ndarray
    rho_2: np.ndarray
    rho_inf: np.ndarray


def suite_profile(suite: str, times: Sequence[TimeToTarget], labels: Sequence[str]) -> Profile | None:
    """Profiles over the suite's tasks that have a target; ``None`` when none has one."""
    tasks = [t for t in times if t.applies and t.suite == suite]
    if not tasks:
        return None
    steps = np.full((len(labels), len(tasks)), np.inf)
    for j, task in enumerate(tasks):
        for agent in task.agents:
            steps[list(labels).index(agent.agent_label), j] = agent.median_steps
    taus = profiles.profile_taus(profiles.performance_ratios(steps))
    rho = profiles.performance_profile(steps, taus)
    ends = profiles.performance_profile(steps, [1.0, 2.0, np.inf])
    return Profile(suite, tuple(labels), tuple(t.task_label for t in tasks), steps, taus, rho, ends[:, 0], ends[:, 1], ends[:, 2])
