"""Train offline learners (``requires_training = True``, e.g. the SB3 agent) once, before evaluation.

``train_one(job)`` is a top-level function like ``run_one``, so every executor can run it. The model
is saved atomically (temporary name, then ``os.replace``) as ``<suite>/models/<hash>.zip`` beside a
``<hash>.json`` that records the training settings, wall time and machine. An existing model file
is never retrained. While a learner whose ``learn`` takes ``progress_file`` (the SB3 agent does) trains,
``<hash>.progress.json`` (:func:`progress_path`) says how far it got; it is removed once the model is saved.
A learner whose ``learn`` takes ``checkpoint`` keeps ``<hash>.checkpoint.zip`` (:func:`checkpoint_path`)
and resumes from it when the training is started again after a kill; the sidecar records
``resumed_at_windows``. With the Ray executor on several machines the results folder must be on a
shared file system, because evaluation workers load the model from that path.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aees_gym.core import checks
from aees_gym.core.fileio import (
    FileCheckError,
    atomic_write_text,
    atomic_write_with,
    dumps_json,
    json_field,
    json_object,
    read_json_checked,
)
from aees_gym.core.hostinfo import host_metadata
from aees_gym.envs.registration import env_id
from aees_gym.suite import agent_registry
from aees_gym.suite.one_run import error_info
from aees_gym.suite.plan import TrainJob


@dataclass(frozen=True)
class TrainOutcome:
    """Result of one training job: where the model is, or why there is none."""

    model_path: str
    ok: bool
    wall_clock_s: float
    error: dict[str, str] | None = None
    skipped: bool = False


def progress_path(model_path: Path | str) -> Path:
    """Where the training of ``model_path`` reports its progress while it runs."""
    return Path(model_path).with_suffix(".progress.json")


def checkpoint_path(model_path: Path | str) -> Path:
    """Where a resumable learner keeps the checkpoint of the training of ``model_path``."""
    return Path(model_path).with_suffix(".checkpoint.zip")


#: A progress report is a handful of numbers; anything larger is not one.
MAX_PROGRESS_BYTES = 64 * 1024
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)?")


def read_progress(model_path: Path | str) -> dict[str, Any] | None:
    """The last progress report of the training of ``model_path``, or None (none written).

    ``checkpoint_windows`` is the window of the learner's checkpoint at that report (``None``: the
    learner did not say), where a restart after a kill resumes.

    Raises:
        FileCheckError: If the report is not a regular file, too large, not JSON, or a field has the
            wrong type or range (the message names the field and says to delete the file).
    """
    path = progress_path(model_path)
    if not os.path.lexists(path):
        return None
    fix = "; delete the file (a running training writes a new one within a minute)"
    data = json_object(read_json_checked(path, max_bytes=MAX_PROGRESS_BYTES, what="a progress report"), path, fix=fix)
    report = {
        "windows_trained": json_field(data, "windows_trained", checks.non_negative_int, path, fix=fix),
        "total_timesteps": json_field(data, "total_timesteps", checks.positive_int, path, fix=fix),
        "updated_utc": json_field(data, "updated_utc", checks.text, path, fix=fix),
        "checkpoint_windows": None,
    }
    if not _UTC_STAMP.fullmatch(report["updated_utc"]):
        raise FileCheckError(path, "updated_utc", f"is {report['updated_utc'][:40]!r}, not an ISO-8601 time stamp such as "
                                                  f"'2026-01-31T12:00:00+00:00'{fix}")
    if data.get("checkpoint_windows") is not None:
        report["checkpoint_windows"] = json_field(data, "checkpoint_windows", checks.non_negative_int, path, fix=fix)
    return report


def train_agent(
    agent: str,
    task: str,
    path: Path | str,
    *,
    total_timesteps: int,
    seed: int,
    n_envs: int = 1,
    agent_kwargs: dict[str, Any] | None = None,
    env_overrides: dict[str, Any] | None = None,
    learn_kwargs: dict[str, Any] | None = None,
    vec_env: str | None = None,
    on_trained: Callable[[Any], Any] | None = None,
) -> Path:
    """Construct ``agent``, ``learn`` on ``aees_gym/<task>-v0`` and save it atomically to ``path``.

    ``vec_env`` (``batched``, ``subproc``, ``dummy``) is passed to ``learn`` when given. A learner
    whose ``learn`` takes ``progress_file`` / ``checkpoint`` gets :func:`progress_path` /
    :func:`checkpoint_path` of ``path``, so a killed training is watched and resumed.
    ``on_trained(agent)`` is called with the trained agent once its model is saved.

    Raises:
        TypeError: If the agent is not an offline learner (no ``learn``/``save``), or a count is not an integer.
        ValueError: If ``total_timesteps`` or ``n_envs`` is below 1 or ``seed`` below 0 (nothing is trained).
    """
    total_timesteps, n_envs = checks.positive_int("total_timesteps", total_timesteps), checks.positive_int("n_envs", n_envs)
    seed = checks.non_negative_int("seed", seed)
    cls = agent_registry.load_agent_class(agent)
    if not agent_registry.requires_training(cls) or not callable(getattr(cls, "learn", None)):
        raise TypeError(f"agent {agent!r} is not an offline learner (requires_training = True with learn/save); nothing to train.")
    instance = cls(**(agent_kwargs or {}))
    extra = dict(learn_kwargs or {})
    if vec_env is not None:
        extra["vec_env"] = vec_env
    accepted = inspect.signature(instance.learn).parameters
    for name, where in (("progress_file", progress_path(path)), ("checkpoint", checkpoint_path(path))):
        if name in accepted:
            extra.setdefault(name, str(where))
    instance.learn(env_id(task), total_timesteps, seed=seed, n_envs=n_envs, env_kwargs=dict(env_overrides or {}), **extra)
    saved = atomic_write_with(path, lambda tmp: instance.save(str(tmp)))
    progress_path(path).unlink(missing_ok=True)
    if on_trained is not None:
        on_trained(instance)
    return saved


def train_one(job: TrainJob) -> TrainOutcome:
    """Train ``job`` unless its model exists; never raises (a failure is returned as ``ok=False``)."""
    started = time.perf_counter()
    path = Path(job.model_path)
    if path.exists():
        return TrainOutcome(job.model_path, True, 0.0, skipped=True)
    learner: list[Any] = []
    try:
        train_agent(
            job.agent, job.task, path, total_timesteps=job.training.total_timesteps, seed=job.training.seed,
            n_envs=job.training.n_envs, agent_kwargs=job.agent_kwargs, env_overrides=job.env_overrides,
            learn_kwargs=job.training.kwargs, vec_env=job.training.vec_env, on_trained=learner.append,
        )
    except Exception as exc:  # reported on the dependent runs, which the next suite run retries
        return TrainOutcome(job.model_path, False, time.perf_counter() - started, error_info(exc))
    wall = time.perf_counter() - started
    sidecar = {
        "task": job.task, "task_label": job.task_label, "agent": job.agent, "agent_label": job.agent_label,
        "agent_kwargs": job.agent_kwargs, "env_overrides": job.env_overrides, "training": asdict(job.training),
        "training_seeds": list(job.training.seeds), "wall_clock_s": wall, "host": host_metadata(),
        # A resumed training's wall clock covers only the windows after this one.
        "resumed_at_windows": getattr(learner[0], "resumed_at", None),
    }
    atomic_write_text(path.with_suffix(".json"), dumps_json(sidecar))
    return TrainOutcome(job.model_path, True, wall)
