"""Expand a :class:`SuiteSpec` into task variants, training jobs and :class:`RunSpec` s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aees_gym.suite.run_spec import RunSpec, stable_hash
from aees_gym.suite.suite_file import (
    AgentEntry,
    SuiteConfigError,
    SuiteSpec,
    TrainingSpec,
    task_variants,
)

MODELS_DIR = "models"


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
        return {**self.training.settings(), "seeds": list(self.training.seeds), "model": Path(self.model_path).name}


@dataclass(frozen=True)
class SuitePlan:
    """Every run of a suite (in a fixed order) and the training jobs they depend on."""

    runs: tuple[RunSpec, ...]
    trainings: tuple[TrainJob, ...]


def model_key(task: str, agent: AgentEntry, env_overrides: dict[str, Any]) -> str:
    """Hash of everything that decides a trained model (the agent's label is not part of it)."""
    assert agent.training is not None
    return stable_hash(
        {"task": task, "env_overrides": env_overrides, "agent": agent.name, "agent_kwargs": agent.kwargs, "training": agent.training.settings()}
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
                overrides = {**variant.overrides, **agent.env_overrides()}
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
