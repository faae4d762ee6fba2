"""Expand a :class:`SuiteSpec` into task variants, training jobs and :class:`RunSpec` s."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aees_gym import plugins
from aees_gym.suite.runspec import RunSpec, stable_hash
from aees_gym.suite.spec import AgentEntry, SuiteConfigError, SuiteSpec, TaskEntry, TrainingSpec
from aees_gym.tasks import get_task

MODELS_DIR = "models"


@dataclass(frozen=True)
class TaskVariant:
    """One concrete task of a suite: the task, its readable label, env overrides and sweep coordinates."""

    task: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainJob:
    """Train one offline learner once for one task variant; evaluation runs load ``model_path``."""

    suite: str
    task: str
    task_label: str
    agent: str
    agent_label: str
    agent_kwargs: dict[str, Any]
    env_overrides: dict[str, Any]
    training: TrainingSpec
    model_path: str

    def describe(self) -> dict[str, Any]:
        """The training settings recorded in every evaluation run (``RunResult.training``)."""
        return {**asdict(self.training), "seeds": list(self.training.seeds), "model": Path(self.model_path).name}


@dataclass(frozen=True)
class SuitePlan:
    """Every run of a suite (in a fixed order) and the training jobs they depend on."""

    runs: tuple[RunSpec, ...]
    trainings: tuple[TrainJob, ...]


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def task_variants(spec: SuiteSpec, task: TaskEntry) -> list[TaskVariant]:
    """The task itself, or one variant per point of the sweep grid (base-LR multipliers × values)."""
    base = {**spec.env, **task.overrides}
    sweeps = spec.sweeps
    applies = sweeps is not None and (sweeps.tasks is None or task.label in sweeps.tasks)
    if not applies or sweeps is None or not (sweeps.base_lr_multipliers or sweeps.values):
        return [TaskVariant(task.name, task.label, base, {})]
    axes: list[list[tuple[str, Any]]] = []
    if sweeps.base_lr_multipliers:
        axes.append([("base_lr_multiplier", m) for m in sweeps.base_lr_multipliers])
    axes.extend([(key, v) for v in values] for key, values in sweeps.values.items())
    base_lr = float(base.get("base_lr", get_task(task.name).default_config().base_lr))
    variants = []
    for combo in itertools.product(*axes):
        overrides, sweep, parts = dict(base), {}, []
        for key, value in combo:
            sweep[key] = value
            if key == "base_lr_multiplier":
                overrides["base_lr"] = base_lr * value
                parts.append(f"lr×{_format_value(value)}")
            else:
                overrides[key] = value
                parts.append(f"{key}={_format_value(value)}")
        variants.append(TaskVariant(task.name, f"{task.label} {' '.join(parts)}", overrides, sweep))
    return variants


def model_key(task: str, agent: AgentEntry, env_overrides: dict[str, Any]) -> str:
    """Hash of everything that decides a trained model (the agent's label is not part of it)."""
    assert agent.training is not None
    return stable_hash(
        {"task": task, "env_overrides": env_overrides, "agent": agent.name, "agent_kwargs": agent.kwargs, "training": asdict(agent.training)}
    )


def plan_suite(spec: SuiteSpec, suite_dir: Path | str) -> SuitePlan:
    """All runs in task → variant → agent → seed order, with the training jobs they need.

    Raises:
        SuiteConfigError: If two runs would share a run id (identical configurations).
    """
    suite_dir = Path(suite_dir)
    runs: list[RunSpec] = []
    trainings: dict[str, TrainJob] = {}
    for task in spec.tasks:
        for variant in task_variants(spec, task):
            for agent in spec.agents:
                overrides = {**variant.overrides, **plugins.agent_env_overrides(plugins.load_agent_class(agent.name))}
                model_path, training = None, None
                if agent.training is not None:
                    path = suite_dir / MODELS_DIR / f"{model_key(variant.task, agent, overrides)}.zip"
                    job = TrainJob(spec.name, variant.task, variant.label, agent.name, agent.label, agent.kwargs, overrides, agent.training, str(path))
                    trainings.setdefault(job.model_path, job)
                    model_path, training = job.model_path, job.describe()
                runs.extend(
                    RunSpec(
                        suite=spec.name, task=variant.task, task_label=variant.label, agent=agent.name,
                        agent_label=agent.label, seed=seed, env_overrides=overrides, agent_kwargs=agent.kwargs,
                        model_path=model_path, sweep=variant.sweep, training=training,
                    )
                    for seed in spec.seeds
                )
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise SuiteConfigError(f"suite {spec.name!r} plans identical runs twice; make task and agent entries distinct.")
    return SuitePlan(tuple(runs), tuple(trainings.values()))
