"""The tuned-constant baseline: pick each task variant's base LR on tuning seeds, evaluate it on the others.

A practitioner's cheap alternative to a controller is a small base-LR sweep. With a ``[tuning]``
table (:mod:`aees_gym.suite.tuning_spec`) the suite

1. runs the tuning agent (default ``fixed`` ×1.0, the plain optimizer) at every
   ``base_lr_multipliers`` × base LR on the tuning seeds (:func:`sweep_runs`), writing those
   results under ``<suite>/tuning/`` where reports never read them;
2. picks, per task variant, the multiplier with the best mean of the task's metric
   (``TaskSpec.metric`` / ``higher_is_better``) over the tuning seeds; a candidate with a diverged or
   failed tuning run is never picked (:func:`choose_base_lrs`);
3. evaluates agent ``label`` (default ``tuned``) at the chosen base LR on the evaluation seeds
   (:func:`tuned_runs`); each such run records the choice in ``RunResult.training``.

The sweep table and the choices are written to ``<suite>/tuning/_tuning.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import atomic_write_text, dumps_json
from aees_gym.suite import agent_registry
from aees_gym.suite.results import RESERVED_PREFIX, RunResult
from aees_gym.suite.run_spec import RunSpec
from aees_gym.suite.suite_file import SuiteSpec, TaskVariant, task_variants
from aees_gym.tasks import get_task

TUNING_DIR = "tuning"
TUNING_RECORD = f"{RESERVED_PREFIX}tuning.json"
_SWEEP_KEY = "tuning_base_lr_multiplier"


@dataclass(frozen=True)
class TuningChoice:
    """The outcome of one task variant's sweep.

    Args:
        task_label: The task variant.
        metric: The metric that ranked the candidates; ``higher_is_better`` its direction.
        table: One row per multiplier: ``multiplier``, ``base_lr``, per-seed ``values`` (``None`` for
            a failed or diverged run), ``mean`` over the seeds (``None`` unless every run finished ok).
        multiplier: The chosen multiplier (``None`` when every candidate failed).
        base_lr: The chosen base LR.
    """

    task_label: str
    metric: str
    higher_is_better: bool
    table: tuple[dict[str, Any], ...]
    multiplier: float | None
    base_lr: float | None


def _variants(spec: SuiteSpec) -> list[TaskVariant]:
    return [variant for task in spec.tasks for variant in task_variants(spec, task)]


def _base_overrides(spec: SuiteSpec, variant: TaskVariant) -> tuple[dict[str, Any], float]:
    assert spec.tuning is not None
    cls = agent_registry.load_agent_class(spec.tuning.agent)
    overrides = {**variant.overrides, **agent_registry.agent_env_overrides(cls)}
    base_lr = float(overrides.get("base_lr", get_task(variant.task).default_config().base_lr))
    return overrides, base_lr


def sweep_runs(spec: SuiteSpec) -> list[RunSpec]:
    """Every tuning run: task variant × multiplier × tuning seed (empty without a ``[tuning]`` table)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    runs = []
    for variant in _variants(spec):
        overrides, base_lr = _base_overrides(spec, variant)
        for m in tuning.base_lr_multipliers:
            runs.extend(
                RunSpec(
                    suite=spec.name, task=variant.task, task_label=variant.label, agent=tuning.agent,
                    agent_label=f"{tuning.label} sweep", seed=seed, env_overrides={**overrides, "base_lr": base_lr * m},
                    agent_kwargs=tuning.kwargs, sweep={**variant.sweep, _SWEEP_KEY: m},
                )
                for seed in tuning.seeds
            )
    return runs


def _metric_value(result: RunResult | None, metric: str) -> float | None:
    if result is None or result.status != "ok":
        return None
    value = (result.final_metrics or {}).get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def choose_base_lrs(spec: SuiteSpec, runs: Sequence[RunSpec], results: Mapping[str, RunResult]) -> list[TuningChoice]:
    """The best multiplier of each task variant from the sweep's ``results`` (by run id)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    by_point: dict[tuple[str, float], list[RunSpec]] = {}
    for run in runs:
        by_point.setdefault((run.task_label, run.sweep[_SWEEP_KEY]), []).append(run)
    choices = []
    for variant in _variants(spec):
        task = get_task(variant.task)
        sign = 1.0 if task.higher_is_better else -1.0
        _, base_lr = _base_overrides(spec, variant)
        table, best = [], None
        for m in tuning.base_lr_multipliers:
            point = by_point[(variant.label, m)]
            values = [_metric_value(results.get(r.run_id), task.metric) for r in point]
            mean = None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]
            table.append({"multiplier": m, "base_lr": base_lr * m, "seeds": [r.seed for r in point], "values": values, "mean": mean})
            if mean is not None and (best is None or sign * mean > sign * best[1]):  # ties keep the earlier candidate
                best = (m, mean)
        choices.append(TuningChoice(
            variant.label, task.metric, task.higher_is_better, tuple(table),
            None if best is None else best[0], None if best is None else base_lr * best[0],
        ))
    return choices


def tuned_runs(spec: SuiteSpec, choices: Sequence[TuningChoice]) -> list[RunSpec]:
    """The tuned agent at each variant's chosen base LR, on the evaluation seeds (variants with no choice are left out)."""
    tuning = spec.tuning
    if tuning is None:
        return []
    chosen = {c.task_label: c for c in choices}
    runs = []
    for variant in _variants(spec):
        choice = chosen.get(variant.label)
        if choice is None or choice.base_lr is None:
            continue
        overrides, _ = _base_overrides(spec, variant)
        record = {
            "kind": "base_lr_tuning", "seeds": list(tuning.seeds), "metric": choice.metric,
            "base_lr_multiplier": choice.multiplier, "base_lr": choice.base_lr, "candidates": list(tuning.base_lr_multipliers),
        }
        for seed in spec.seeds:
            if seed in tuning.seeds:  # parse_tuning refuses this; never evaluate on a tuning seed
                raise ValueError(f"evaluation seed {seed} is a tuning seed {list(tuning.seeds)}.")
            runs.append(RunSpec(
                suite=spec.name, task=variant.task, task_label=variant.label, agent=tuning.agent, agent_label=tuning.label,
                seed=seed, env_overrides={**overrides, "base_lr": choice.base_lr}, agent_kwargs=tuning.kwargs,
                sweep=variant.sweep, training=record,
            ))
    return runs


def write_tuning_record(tuning_dir: Path, choices: Sequence[TuningChoice]) -> Path:
    """``_tuning.json``: every variant's sweep table and choice."""
    path = Path(tuning_dir) / TUNING_RECORD
    atomic_write_text(path, dumps_json({"choices": [asdict(c) for c in choices]}))
    return path
