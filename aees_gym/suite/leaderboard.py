"""Leaderboards over instance sets: agents trained on a set's train split, scored on its test split.

A leaderboard file (TOML, e.g. ``experiments/leaderboard.toml``) names instance sets and agents::

    results_dir = "runs"           # runs go to <results_dir>/leaderboard/<set>/ (the archive: --archive)
    executor = "batched"           # how test runs execute (serial, local, batched, ray)
    workers = 2
    [[sets]]
    name = "digits-budget-v0"
    env = { eval_every = 0 }       # settings added to every run of the set (never an instance's own)
    [[agents]]                     # the suite's agent table, plus `env` (this agent's own settings)
    name = "sb3"
    label = "PPO (heldout)"
    kwargs = { algo = "ppo" }
    env = { reward = { name = "heldout" } }
    training = { total_timesteps = 100000, seed = 7, n_envs = 64, vec_env = "batched" }
    [[agents]]                     # a policy trained outside the leaderboard (experiments/train_learned.py)
    name = "learned"
    label = "PPO (heldout) s0"
    kwargs = { policy = "results/learned/ppo-relative-heldout-digits-mlp-v1-s0/policy.npz" }
    seed_group = "PPO (heldout)"   # rows that are one learner trained with different seeds

A ``learned`` row runs with its policy's own control track (the agent's ``env_overrides_for``) and
records the policy file's hash in each run, so a retrained policy's runs are new runs; while its
policy file does not exist the row is pending with the reason (``agent_missing_input``).
Every grid cell of the set also runs as a ``fixed`` agent (the best cell in hindsight normalises
the scores). Offline learners train once on ``gym.make(..., instance_set=SET, split="train")``;
every agent then runs every test instance. Planning reuses :mod:`aees_gym.suite.plan`
(``model_key``, :class:`TrainJob`), training :func:`~aees_gym.suite.training.train_one`, and
resuming :func:`~aees_gym.suite.orchestrate.inspect_existing` plus one rule of its own: a finished
run whose recorded config is not what the current code resolves for it is *stale* and runs again.
The file's schema and parser live in :mod:`aees_gym.suite.leaderboard_file` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees_gym.core.grid import candidate_name
from aees_gym.envs.families import get_instances
from aees_gym.envs.instances import InstanceSet
from aees_gym.suite import agent_registry
from aees_gym.suite.leaderboard_file import (  # noqa: F401 (re-exported: their home before the split)
    LEADERBOARD_DIR,
    PLAIN_CELL,
    RANDOM,
    BoardEntry,
    LeaderboardSpec,
    load_leaderboard,
    parse_leaderboard,
    unavailable_rewards,
)
from aees_gym.suite.leaderboard_tuning import TunedEntry, tuned_entry
from aees_gym.suite.orchestrate import _evaluate, inspect_existing
from aees_gym.suite.plan import MODELS_DIR, SuitePlan, TrainJob, model_key
from aees_gym.suite.run_spec import RunSpec, canonical_json
from aees_gym.suite.suite_file import AgentEntry
from aees_gym.suite.toml_fields import SuiteConfigError
from aees_gym.suite.training import train_one
from aees_gym.tasks import make_config


# ---------------------------------------------------------------------- planning
def fixed_cells(instance_set: InstanceSet, settings: Mapping[str, Any]) -> list[BoardEntry]:
    """One ``fixed`` agent per cell of the set's candidate grid."""
    grid = instance_set.test[0].config(**settings).grid
    return [
        BoardEntry(AgentEntry("fixed", f"fixed {candidate_name(lr, noise)}", {"lr_multiplier": lr, "noise_std": noise}))
        for lr in grid.lr_multipliers for noise in grid.noise_stds
    ]


@dataclass(frozen=True)
class SetPlan:
    """Everything one instance set needs: its entries (fixed cells included), runs and trainings."""

    instance_set: InstanceSet
    suite_dir: Path
    entries: tuple[BoardEntry, ...]
    plan: SuitePlan
    #: The label P(better than the reference) compares with.
    reference: str = PLAIN_CELL
    #: Entries whose settings are chosen on the tuning split; their test runs exist once chosen.
    tuned: tuple[TunedEntry, ...] = ()
    #: Label → why the entry cannot run yet (its policy file is missing: which file, what writes it); no runs planned.
    waiting: Mapping[str, str] = field(default_factory=dict)

    def untuned(self) -> list[str]:
        """Labels of tuned entries whose choice is not made yet (their test runs are not planned)."""
        return [t.label for t in self.tuned if t.chosen() is None]

    def runs_of(self, label: str) -> list[RunSpec]:
        return [r for r in self.plan.runs if r.agent_label == label]

    def job_of(self, label: str) -> TrainJob | None:
        return next((j for j in self.plan.trainings if j.agent_label == label), None)


def plan_set(spec: LeaderboardSpec, name: str, results_dir: Path, skip: Mapping[str, str] = {}) -> SetPlan:
    """Runs (test instances × entries) and training jobs (train split) of one set; ``skip`` labels are left out."""
    instance_set = get_instances(name)
    settings = spec.sets[name]
    suite_dir = (results_dir / LEADERBOARD_DIR / name).resolve()
    entries = tuple(e for e in (*spec.entries, *fixed_cells(instance_set, settings)) if e.label not in skip)
    reference = spec.reference or PLAIN_CELL
    if reference not in {e.label for e in entries}:
        raise SuiteConfigError(f"reference {reference!r} is not an agent of set {name!r}; choose one of {[e.label for e in entries]}.")
    runs: list[RunSpec] = []
    trainings: list[TrainJob] = []
    tuned: list[TunedEntry] = []
    waiting: dict[str, str] = {}
    for entry in entries:
        cls = agent_registry.load_agent_class(entry.agent.name)
        missing = agent_registry.agent_missing_input(cls, entry.agent.kwargs)
        if missing is not None:
            waiting[entry.label] = missing
            continue
        # The class's settings (a learned policy's own track) win over the set's and the entry's.
        own = {**settings, **entry.env, **agent_registry.agent_env_overrides(cls, entry.agent.kwargs)}
        if entry.tuning is not None:
            tuned.append(_plan_tuned(instance_set, entry, own, suite_dir, runs))
            continue
        model_path, training = None, agent_registry.agent_run_record(cls, entry.agent.kwargs)
        if entry.agent.training is not None:
            overrides = {**own, "instance_set": name, "split": "train"}
            task = instance_set.tasks[0]
            path = suite_dir / MODELS_DIR / f"{model_key(task, entry.agent, overrides)}.zip"
            job = TrainJob(f"{LEADERBOARD_DIR}/{name}", task, f"{name}/train", entry.agent.name, entry.label,
                           entry.agent.kwargs, overrides, entry.agent.training, str(path))
            trainings.append(job)
            model_path, training = job.model_path, job.describe()
        runs.extend(
            RunSpec(suite=f"{LEADERBOARD_DIR}/{name}", task=inst.task, task_label=inst.name, agent=entry.agent.name,
                    agent_label=entry.label, seed=inst.seed, env_overrides={**inst.env_overrides, **own},
                    agent_kwargs=entry.agent.kwargs, model_path=model_path, training=training)
            for inst in instance_set.test
        )
    return SetPlan(instance_set, suite_dir, entries, SuitePlan(tuple(runs), tuple(trainings)), reference, tuple(tuned), waiting)


def _plan_tuned(instance_set: Any, entry: BoardEntry, own: Mapping[str, Any], suite_dir: Path, runs: list[RunSpec]) -> TunedEntry:
    """A tuned entry's sweep on the tuning split; its test runs join ``runs`` once the choice is on disk."""
    tuning_split = getattr(instance_set, "tuning", None)
    if not tuning_split:
        raise SuiteConfigError(f"agent {entry.label!r} has a tuning table, but {instance_set.name!r} has no tuning split; "
                               "tune on an instance family (aees_gym.envs.families) or drop the table.")
    name = instance_set.name
    tuned = tuned_entry(entry.label, entry.tuning, entry.agent.name, entry.agent.kwargs, own, tuning_split, f"{LEADERBOARD_DIR}/{name}", suite_dir)
    choices = tuned.chosen()
    if choices is not None:
        runs.extend(tuned.test_runs(choices, instance_set.test, name, lambda inst, env, kwargs, record: RunSpec(
            suite=f"{LEADERBOARD_DIR}/{name}", task=inst.task, task_label=inst.name, agent=entry.agent.name, agent_label=entry.label,
            seed=inst.seed, env_overrides=env, agent_kwargs=kwargs, training=record)))
    return tuned


def tune(set_plan: SetPlan, spec: LeaderboardSpec, log: Log, only: Callable[[str], bool] = lambda label: True) -> bool:
    """Run the missing sweeps of the set's tuned entries and record their choices; True when any choice was made."""
    made = False
    for t in set_plan.tuned:
        if not only(t.label) or t.read() is not None:
            continue
        tuning_dir = set_plan.suite_dir / "tuning"
        state = inspect_existing(SuitePlan(tuple(t.sweep_runs), ()), tuning_dir)
        budget = sum(len(p.points()) for p in t.problems.values())
        log(f"[{set_plan.instance_set.name}] tuning {t.label}: {budget} points × their group's tuning instances = {len(t.sweep_runs)} runs "
            f"({len(state.pending)} to run)")
        if state.pending:
            _evaluate(state.pending, tuning_dir, spec.executor, spec.workers, None, True, False)
            state = inspect_existing(SuitePlan(tuple(t.sweep_runs), ()), tuning_dir)
        choices = t.choose(state.finished)
        t.write(choices)
        log(f"[{set_plan.instance_set.name}] {t.label}: chose " + "; ".join(f"{g}: {c.point}" for g, c in choices.items()))
        made = True
    return made


# ---------------------------------------------------------------------- resume
def _current(spec: RunSpec, resolved: dict[str, str]) -> str:
    key = canonical_json([spec.task, spec.env_overrides])
    if key not in resolved:
        resolved[key] = canonical_json(make_config(spec.task, None, **spec.env_overrides).to_dict())
    return resolved[key]


def finished_runs(set_plan: SetPlan) -> tuple[dict[str, Any], list[RunSpec], list[RunSpec]]:
    """``(finished results by run id, pending runs, stale runs)`` under the suite's resume rule.

    A finished run is stale (and pending again) when its recorded config differs from what the
    current code resolves for its settings (a changed default or scoring split), so a leaderboard
    never mixes runs of two definitions of one instance.
    """
    state = inspect_existing(set_plan.plan, set_plan.suite_dir)
    resolved: dict[str, str] = {}
    finished, stale = {}, []
    by_id = {r.run_id: r for r in set_plan.plan.runs}
    for run_id, result in state.finished.items():
        if canonical_json(result.config) == _current(by_id[run_id], resolved):
            finished[run_id] = result
        else:
            stale.append(by_id[run_id])
    return finished, [*state.pending, *stale], stale


# ---------------------------------------------------------------------- execution
Log = Callable[[str], Any]


def evaluate(set_plan: SetPlan, runs: list[RunSpec], spec: LeaderboardSpec, log: Log) -> None:
    """Run ``runs`` with the configured executor, each result written as it arrives."""
    if runs:
        log(f"[{set_plan.instance_set.name}] running {len(runs)} test runs ({spec.executor}, {spec.workers} workers)")
        _evaluate(runs, set_plan.suite_dir, spec.executor, spec.workers, None, True, False)


def train(set_plan: SetPlan, job: TrainJob, log: Log) -> bool:
    """Train ``job`` unless its model exists; True when the model is there afterwards."""
    if Path(job.model_path).exists():
        return True
    t = job.training
    train_split = getattr(set_plan.instance_set, "train", None)
    drawn = f"{len(train_split)} instances" if train_split is not None else "a fresh draw at every reset"
    log(f"[{set_plan.instance_set.name}] training {job.agent_label} on the train split ({drawn}): "
        f"{t.total_timesteps:,} windows, {t.n_envs} envs ({t.vec_env or 'default'})")
    outcome = train_one(job)
    if not outcome.ok:
        log(f"[{set_plan.instance_set.name}] training {job.agent_label} FAILED: {(outcome.error or {}).get('message')}")
        return False
    log(f"[{set_plan.instance_set.name}] trained {job.agent_label} in {outcome.wall_clock_s:.0f} s "
        f"({t.total_timesteps / max(outcome.wall_clock_s, 1e-9):.1f} windows/s)")
    return True


def check_labels(spec: LeaderboardSpec, labels: Collection[str]) -> None:
    """Raise a :class:`SuiteConfigError` naming the valid labels when one of ``labels`` is not an agent's."""
    known = [e.label for e in spec.entries]
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise SuiteConfigError(f"--only {unknown}: no agent has that label; the file's labels are {known}.")


def run_leaderboard(spec: LeaderboardSpec, results_dir: Path, *, skip: Mapping[str, str] = {},
                    only: Collection[str] | None = None,
                    on_progress: Callable[[], Any] = lambda: None, log: Log = print, train_learners: bool = True) -> int:
    """Run everything missing: first every set's online agents, then each learner (train, then its runs).

    ``only`` restricts the work to those agent labels (fixed cells run only when ``only`` is None), so
    several processes can train different learners side by side into one results folder.
    ``on_progress()`` is called after each stage (e.g. to rewrite the table); ``train_learners=False`` trains
    nothing (learner rows stay pending). Tuned entries first run their sweeps on the set's tuning split
    and record their choices (:func:`tune`). Returns the number of failed trainings.
    """
    if only is not None:
        check_labels(spec, only)
    chosen = (lambda label: True) if only is None else (lambda label: label in only)
    plans = [plan_set(spec, name, results_dir, skip) for name in spec.sets]
    for i, p in enumerate(plans):
        if tune(p, spec, log, chosen):
            plans[i] = p = plan_set(spec, p.instance_set.name, results_dir, skip)  # the tuned entries' test runs exist now
            on_progress()
        _, pending, stale = finished_runs(p)
        if stale:
            log(f"[{p.instance_set.name}] {len(stale)} finished runs are stale (recorded config differs from the current one); rerunning them")
        learners = {j.agent_label for j in p.plan.trainings}
        log(f"[{p.instance_set.name}] {len(p.plan.runs) - len(pending)} of {len(p.plan.runs)} test runs finished")
        for label, why in p.waiting.items():
            if chosen(label):
                log(f"[{p.instance_set.name}] {label}: pending, {why}")
        evaluate(p, [r for r in pending if r.agent_label not in learners and chosen(r.agent_label)], spec, log)
        on_progress()
    failures = 0
    for p in plans if train_learners else []:
        for job in (j for j in p.plan.trainings if chosen(j.agent_label)):
            if not train(p, job, log):
                failures += 1
                continue
            on_progress()
            _, pending, _ = finished_runs(p)
            evaluate(p, [r for r in pending if r.agent_label == job.agent_label], spec, log)
            on_progress()
    return failures


__all__ = [
    "PLAIN_CELL", "BoardEntry", "LeaderboardSpec", "SetPlan", "check_labels", "finished_runs", "fixed_cells", "load_leaderboard",
    "parse_leaderboard", "plan_set", "run_leaderboard", "tune", "unavailable_rewards",
]
