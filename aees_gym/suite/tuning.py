"""Tuning: choose an agent's or env's hyperparameters on tuning instances, by the reward-validation part.

A :class:`TuningProblem` is an agent and a grid of candidate points, the cartesian product of

* ``base_lr_multipliers``: multiples of each instance's base LR (``[1]``: leave it as it is),
* ``env_grid``: env settings (e.g. ``{"base_lr": [1e-4, 1e-3, 1e-2]}`` for one absolute LR, or
  ``{"schedule": ["none", "cosine"]}``), on top of the fixed settings ``env``,
* ``agent_grid``: agent constructor arguments (e.g. ``{"c": [0.03, 0.1, 0.3, 1.0]}`` for the
  bandits' exploration constant), on top of the fixed ``kwargs``.

On a list of tuning instances (anything with ``task``, ``name``, ``seed`` and ``env_overrides``,
such as :class:`~aees_gym.envs.instances.Instance` or :class:`TuningInstance`), every point runs every
instance (:func:`sweep_specs`). The winner (:func:`choose_point`) has the best mean over the instances
of the task metric **measured on the reward-validation part** (``reward_val_accuracy`` /
``reward_val_loss`` of the run's final metrics), never the scoring part: the scoring part of the
validation data is the same examples whatever the seed, so choosing by it would let the choice see the
data every test run is scored on. A point with a failed or diverged run, or without the
reward-validation metric, is never chosen; ties keep the earlier point. Every choice records its search
budget (points, instances, runs, optimizer steps). :func:`apply_choice` gives an instance's settings
under the choice, and :func:`tuned_specs` the tuned agent's runs on a list of test instances (e.g. an
instance family's ``tuning`` and ``test`` splits).

A suite's ``[tuning]`` table (:mod:`aees_gym.suite.tuning_spec`) is one problem per task variant, whose
tuning instances are the variant on the tuning seeds: :func:`sweep_runs` (written under
``<suite>/tuning/``, where reports never read), :func:`choose_base_lrs`, :func:`tuned_runs` (agent
``label`` on the evaluation seeds, the choice recorded in ``RunResult.training``) and
:func:`write_tuning_record` (``<suite>/tuning/_tuning.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aees_gym.core.fileio import atomic_write_text, dumps_json
from aees_gym.envs.metrics import REWARD_PART_KEYS
from aees_gym.suite import agent_registry
from aees_gym.suite.results import RESERVED_PREFIX, RunResult
from aees_gym.suite.run_spec import RunSpec
from aees_gym.suite.suite_file import SuiteSpec, TaskVariant, task_variants
from aees_gym.suite.tuning_spec import TuningPoint, TuningProblem
from aees_gym.tasks import get_task, make_config

TUNING_DIR = "tuning"
TUNING_RECORD = f"{RESERVED_PREFIX}tuning.json"
_SWEEP_KEY = "tuning_base_lr_multiplier"
_POINT_KEY = "tuning_point"


class TuningInstanceLike(Protocol):
    task: str
    name: str
    seed: int

    @property
    def env_overrides(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TuningInstance:
    """One tuning run's instance: task, a name (its label in results), seed and env settings."""

    task: str
    name: str
    seed: int
    env_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TuningChoice:
    """The outcome of one tuning problem on its tuning instances.

    Args:
        task_label: What the choice is for (a suite's task variant, or a set or family name).
        metric: The task metric whose reward-validation counterpart ranked the points; ``higher_is_better`` its direction.
        table: One row per point: ``point``, ``multiplier``, ``base_lr`` (of the first instance), the
            ``instances`` and their ``values`` (``None``: failed, diverged or no reward-validation metric)
            and the ``mean`` (``None`` unless every run gave a value).
        multiplier: The chosen base-LR multiplier (``None`` when every point failed).
        base_lr: The chosen base LR of the first tuning instance.
        selection_metric: The final-metrics key the choice was made by (``reward_val_accuracy`` …).
        point: The chosen point (``None`` when every point failed).
        budget: The search budget: ``points``, ``instances``, ``runs``, ``finished_runs`` and ``optimizer_steps``.
        grid: The problem's grid.
    """

    task_label: str
    metric: str
    higher_is_better: bool
    table: tuple[dict[str, Any], ...]
    multiplier: float | None
    base_lr: float | None
    selection_metric: str = ""
    point: dict[str, Any] | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)


#: Metrics ranked by a monotone function's argument on the reward-validation part.
_RANKED_AS = {"val_perplexity": "val_loss"}


def selection_metric(task: str) -> str:
    """The final-metrics key a tuning of ``task`` chooses by: its metric on the reward-validation part.

    Raises:
        ValueError: If the task's metric has no reward-validation counterpart.
    """
    metric = get_task(task).metric
    # A perplexity is exp(loss): the reward part's mean loss ranks runs exactly as its perplexity would.
    key = f"reward_{_RANKED_AS.get(metric, metric)}"
    if key not in REWARD_PART_KEYS:
        raise ValueError(f"task {task!r} ranks runs by {metric!r}, which is not measured on a reward-validation part "
                         f"(tuning chooses only by {list(REWARD_PART_KEYS)}, never by the scoring part); tune a classification task.")
    return key


def apply_choice(problem: TuningProblem, point: TuningPoint, instance: TuningInstanceLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(env overrides, agent kwargs)`` of ``instance`` run at ``point``."""
    cls = agent_registry.load_agent_class(problem.agent)
    kwargs = {**problem.kwargs, **point.agent}
    env = {**instance.env_overrides, **agent_registry.agent_env_overrides(cls, kwargs), **problem.env, **point.env}
    env["base_lr"] = float(env.get("base_lr", get_task(instance.task).default_config().base_lr)) * point.base_lr_multiplier
    return env, kwargs


def sweep_specs(problem: TuningProblem, instances: Sequence[TuningInstanceLike], suite: str, label: str = "tuning",
                sweep: Mapping[str, Any] | None = None) -> list[RunSpec]:
    """Every point on every tuning instance (point-major order)."""
    for inst in instances:
        key = selection_metric(inst.task)
        kept = make_config(inst.task, **{**inst.env_overrides, **problem.env}).reward_fraction
        if not kept:
            raise ValueError(f"tuning instance {inst.name!r} ranks runs by {key!r}, which is not measured on a reward-validation part "
                             f"there: its reward_fraction is 0 (the {inst.task} default); set reward_fraction in (0, 1) in its settings.")
    runs = []
    for i, point in enumerate(problem.points()):
        for inst in instances:
            env, kwargs = apply_choice(problem, point, inst)
            runs.append(RunSpec(
                suite=suite, task=inst.task, task_label=inst.name, agent=problem.agent, agent_label=f"{label} sweep",
                seed=inst.seed, env_overrides=env, agent_kwargs=kwargs,
                sweep={**(sweep or {}), _SWEEP_KEY: point.base_lr_multiplier, _POINT_KEY: i},
            ))
    return runs


def _value(result: RunResult | None, key: str) -> float | None:
    if result is None or result.status != "ok":
        return None
    value = (result.final_metrics or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else None


def choose_point(problem: TuningProblem, instances: Sequence[TuningInstanceLike], runs: Sequence[RunSpec],
                 results: Mapping[str, RunResult], task_label: str) -> TuningChoice:
    """The best point of ``problem`` on ``instances`` from the sweep's ``results`` (by run id).

    Raises:
        ValueError: If the instances rank runs by different metrics or directions.
    """
    tasks = [get_task(i.task) for i in instances]
    if len({(t.metric, t.higher_is_better) for t in tasks}) != 1:
        raise ValueError(f"tuning instances of {task_label!r} rank runs by different metrics; tune each metric separately.")
    task = tasks[0]
    key = selection_metric(task.name)
    sign = 1.0 if task.higher_is_better else -1.0
    by_point: dict[int, dict[str, RunSpec]] = {}
    for run in runs:
        by_point.setdefault(run.sweep[_POINT_KEY], {})[(run.task_label, run.seed)] = run
    table, best, steps, finished = [], None, 0, 0
    points = problem.points()
    for i, point in enumerate(points):
        mine = [by_point.get(i, {}).get((inst.name, inst.seed)) for inst in instances]
        got = [results.get(r.run_id) if r is not None else None for r in mine]
        for g in got:
            if g is not None and g.status in ("ok", "diverged"):
                finished += 1
                steps += int((g.final_metrics or {}).get("steps_done") or 0)
        values = [_value(g, key) for g in got]
        mean = None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]
        env, _ = apply_choice(problem, point, instances[0])
        table.append({"point": asdict(point), "label": point.label, "multiplier": point.base_lr_multiplier,
                      "base_lr": env.get("base_lr"), "instances": [inst.name for inst in instances],
                      "seeds": [inst.seed for inst in instances], "values": values, "mean": mean})
        if mean is not None and (best is None or sign * mean > sign * best[1]):  # ties keep the earlier point
            best = (i, mean)
    budget = {"points": len(points), "instances": len(instances), "runs": len(points) * len(instances),
              "finished_runs": finished, "optimizer_steps": steps}
    chosen = None if best is None else points[best[0]]
    return TuningChoice(
        task_label, task.metric, task.higher_is_better, tuple(table),
        None if chosen is None else chosen.base_lr_multiplier, None if chosen is None else table[best[0]]["base_lr"],
        key, None if chosen is None else asdict(chosen), budget, problem.describe(),
    )


def choice_point(choice: TuningChoice) -> TuningPoint | None:
    """The chosen :class:`TuningPoint` of ``choice`` (``None`` when every point failed)."""
    return None if choice.point is None else TuningPoint(**choice.point)


def choice_record(choice: TuningChoice, tuning_instances: Sequence[TuningInstanceLike]) -> dict[str, Any]:
    """What a tuned run records in ``RunResult.training``: how its settings were chosen, and at what cost."""
    return {"kind": "tuning", "instances": [i.name for i in tuning_instances], "seeds": [i.seed for i in tuning_instances],
            "metric": choice.selection_metric, "point": choice.point, "base_lr_multiplier": choice.multiplier,
            "base_lr": choice.base_lr, "candidates": list(choice.grid.get("base_lr_multipliers", [])), "grid": choice.grid,
            "budget": choice.budget}


def tuned_specs(problem: TuningProblem, choice: TuningChoice, tuning_instances: Sequence[TuningInstanceLike],
                test_instances: Sequence[TuningInstanceLike], suite: str, label: str) -> list[RunSpec]:
    """Agent ``label`` at the chosen point on every test instance (empty when every point failed).

    Raises:
        ValueError: If a test instance is also a tuning instance (same name and seed).
    """
    point = choice_point(choice)
    if point is None:
        return []
    shared = {(i.name, i.seed) for i in tuning_instances} & {(i.name, i.seed) for i in test_instances}
    if shared:
        raise ValueError(f"test instances {sorted(shared)} are tuning instances too; choose on instances never scored.")
    record = choice_record(choice, tuning_instances)
    runs = []
    for inst in test_instances:
        env, kwargs = apply_choice(problem, point, inst)
        runs.append(RunSpec(suite=suite, task=inst.task, task_label=inst.name, agent=problem.agent, agent_label=label,
                            seed=inst.seed, env_overrides=env, agent_kwargs=kwargs, training=record))
    return runs


# ---------------------------------------------------------------------- a suite's [tuning] table
def _variants(spec: SuiteSpec) -> list[TaskVariant]:
    return [variant for task in spec.tasks for variant in task_variants(spec, task)]


def _instances(spec: SuiteSpec, variant: TaskVariant) -> list[TuningInstance]:
    assert spec.tuning is not None
    return [TuningInstance(variant.task, variant.label, seed, dict(variant.overrides)) for seed in spec.tuning.seeds]


def sweep_runs(spec: SuiteSpec) -> list[RunSpec]:
    """Every tuning run: task variant × point × tuning seed (empty without a ``[tuning]`` table)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    problem = tuning.problem()
    return [run for variant in _variants(spec)
            for run in sweep_specs(problem, _instances(spec, variant), spec.name, tuning.label, variant.sweep)]


def choose_base_lrs(spec: SuiteSpec, runs: Sequence[RunSpec], results: Mapping[str, RunResult]) -> list[TuningChoice]:
    """The best point of each task variant from the sweep's ``results`` (by run id)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    problem = tuning.problem()
    return [choose_point(problem, _instances(spec, v), [r for r in runs if r.task_label == v.label], results, v.label)
            for v in _variants(spec)]


def tuned_runs(spec: SuiteSpec, choices: Sequence[TuningChoice]) -> list[RunSpec]:
    """The tuned agent at each variant's chosen point, on the evaluation seeds (variants with no choice are left out)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    problem = tuning.problem()
    chosen = {c.task_label: c for c in choices}
    runs = []
    for variant in _variants(spec):
        choice = chosen.get(variant.label)
        point = None if choice is None else choice_point(choice)
        if choice is None or point is None:
            continue
        record = choice_record(choice, _instances(spec, variant))
        for seed in spec.seeds:
            if seed in tuning.seeds:  # parse_tuning refuses this; never evaluate on a tuning seed
                raise ValueError(f"evaluation seed {seed} is a tuning seed {list(tuning.seeds)}.")
            env, kwargs = apply_choice(problem, point, TuningInstance(variant.task, variant.label, seed, dict(variant.overrides)))
            runs.append(RunSpec(
                suite=spec.name, task=variant.task, task_label=variant.label, agent=tuning.agent, agent_label=tuning.label,
                seed=seed, env_overrides=env, agent_kwargs=kwargs, sweep=variant.sweep, training=record,
            ))
    return runs


def write_tuning_record(tuning_dir: Path, choices: Sequence[TuningChoice]) -> Path:
    """``_tuning.json``: every variant's sweep table, choice and search budget."""
    path = Path(tuning_dir) / TUNING_RECORD
    atomic_write_text(path, dumps_json({"choices": [asdict(c) for c in choices]}))
    return path
