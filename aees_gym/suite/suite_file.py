"""Suite specifications: a TOML file → frozen dataclasses, validated with errors that name the key.

A suite is tasks × agents × seeds (× optional sweeps). Minimal example::

    name = "smoke"
    seeds = [0, 1]
    executor = "serial"          # serial | local | batched | ray
    workers = 1
    env = { total_steps = 40 }   # overrides applied to every task

    [[tasks]]
    name = "Synthetic"           # a task name or an env id "aees_gym/Synthetic-v0"
    overrides = { window_length = 10 }

    [[agents]]
    name = "fixed"               # entry point in the "aees_gym.agents" group
    label = "fixed ×1.0"
    kwargs = { lr_multiplier = 1.0, noise_std = 0.0 }

    [[agents]]
    name = "sb3"                 # an offline learner: trained once per task variant
    label = "PPO"
    kwargs = { algo = "ppo" }
    training = { total_timesteps = 1000, seed = 1000, n_envs = 1 }

    [sweeps]                     # optional: task variants
    base_lr_multipliers = [0.1, 0.3, 1, 3, 10]
    label_noise = [0.0, 0.2]     # any env setting: a list of values
    tasks = ["Synthetic"]        # optional: which tasks the sweeps apply to

    [tuning]                     # optional: the tuned-constant baseline (aees_gym.suite.tuning_spec)
    base_lr_multipliers = [0.3, 1, 3]
    seeds = [100, 101]           # disjoint from the evaluation seeds

The full reference is in ``docs/suites.md``. The TOML reader and the field checks this parser shares
with the leaderboard file live in :mod:`aees_gym.suite.toml_fields` (re-exported here).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees_gym.envs.instances import format_value
from aees_gym.suite import agent_registry
from aees_gym.suite.toml_fields import (  # noqa: F401 (re-exported: their home before the split)
    MAX_BOOT,
    MAX_SUITE_FILE_BYTES,
    MAX_SUITE_NAME_BYTES,
    MAX_WORKERS,
    SuiteConfigError,
    _check_keys,
    _folder,
    _int,
    _list,
    _positive_numbers,
    _str,
    _suite_name,
    _table,
    default_agent_label,
    ray_address,
    read_toml_file,
    resolve_task_name,
)
from aees_gym.suite.tuning_spec import TuningSpec, parse_tuning
from aees_gym.tasks import get_task, make_config

EXECUTORS = ("serial", "local", "batched", "ray")
_SUITE_KEYS = ("name", "description", "seeds", "executor", "workers", "results_dir", "ray_address", "env", "tasks", "agents", "sweeps",
               "tuning")
_TASK_KEYS = ("name", "label", "overrides")
_AGENT_KEYS = ("name", "label", "kwargs", "training", "env")
_TRAINING_KEYS = ("total_timesteps", "seed", "n_envs", "kwargs", "vec_env")
VEC_ENVS = ("batched", "subproc", "dummy")
_SWEEP_SPECIAL = ("base_lr_multipliers", "tasks")



@dataclass(frozen=True)
class TaskEntry:
    """One task of a suite: a registered task name, a label and env overrides."""

    name: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSpec:
    """How an offline learner is trained before it is evaluated.

    Args:
        total_timesteps: Env steps (training windows) of training.
        seed: First training seed; the ``n_envs`` training envs use ``seed … seed + n_envs - 1``.
        n_envs: Parallel training envs.
        kwargs: Extra keyword arguments of the agent's ``learn``.
        vec_env: How the ``n_envs`` envs run (``batched``, ``subproc``, ``dummy``); ``None``: the agent's default.
    """

    total_timesteps: int
    seed: int
    n_envs: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)
    vec_env: str | None = None

    def settings(self) -> dict[str, Any]:
        """The fields that decide the model; an unset ``vec_env`` is left out, so older models keep their hash."""
        data = {"total_timesteps": self.total_timesteps, "seed": self.seed, "n_envs": self.n_envs, "kwargs": dict(self.kwargs)}
        if self.vec_env is not None:
            data["vec_env"] = self.vec_env
        return data

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.n_envs))


@dataclass(frozen=True)
class AgentEntry:
    """One agent configuration: entry-point name, unique label, kwargs, optional training.

    ``env`` holds env settings of this agent's runs only (its reward, optimizer, base LR …),
    applied after the task's overrides and the agent class's own ``env_overrides``.
    """

    name: str
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    training: TrainingSpec | None = None
    env: dict[str, Any] = field(default_factory=dict)

    def env_overrides(self) -> dict[str, Any]:
        """The agent class's ``env_overrides`` and then this entry's ``env``."""
        return {**agent_registry.agent_env_overrides(agent_registry.load_agent_class(self.name), self.kwargs), **self.env}


@dataclass(frozen=True)
class SweepSpec:
    """Task variants: base-LR multipliers and lists of values of env settings, crossed."""

    base_lr_multipliers: tuple[float, ...] = ()
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    tasks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SuiteSpec:
    """A whole suite; see the module docstring for the TOML layout."""

    name: str
    tasks: tuple[TaskEntry, ...]
    agents: tuple[AgentEntry, ...]
    seeds: tuple[int, ...]
    executor: str = "serial"
    workers: int = 1
    results_dir: str = "runs"
    env: dict[str, Any] = field(default_factory=dict)
    sweeps: SweepSpec | None = None
    description: str = ""
    tuning: TuningSpec | None = None
    ray_address: str | None = None


# --------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class TaskVariant:
    """One concrete task of a suite: the task, its readable label, env overrides and sweep coordinates."""

    task: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)


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
                parts.append(f"lr×{format_value(value)}")
            else:
                overrides[key] = value
                parts.append(f"{key}={format_value(value)}")
        variants.append(TaskVariant(task.name, f"{task.label} {' '.join(parts)}", overrides, sweep))
    return variants



# --------------------------------------------------------------------------- parsing
def _parse_task(where: str, raw: Any) -> TaskEntry:
    table = _check_keys(where, raw, _TASK_KEYS, ("name",))
    task = resolve_task_name(f"{where}.name", _str(f"{where}.name", table["name"]))
    label = _str(f"{where}.label", table.get("label", task))
    return TaskEntry(task, label, _table(f"{where}.overrides", table.get("overrides", {})))


def _parse_training(where: str, raw: Any) -> TrainingSpec:
    table = _check_keys(where, raw, _TRAINING_KEYS, ("total_timesteps",))
    return TrainingSpec(
        total_timesteps=_int(f"{where}.total_timesteps", table["total_timesteps"], 1),
        seed=_int(f"{where}.seed", table.get("seed", 1000), 0),
        n_envs=_int(f"{where}.n_envs", table.get("n_envs", 1), 1),
        kwargs=_table(f"{where}.kwargs", table.get("kwargs", {})),
        vec_env=_vec_env(f"{where}.vec_env", table.get("vec_env")),
    )


def _vec_env(where: str, value: Any) -> str | None:
    if value is not None and value not in VEC_ENVS:
        raise SuiteConfigError(f"{where}={value!r} is not valid; choose one of {list(VEC_ENVS)} or leave it out.")
    return value


def _parse_agent(where: str, raw: Any, *, missing_ok: bool = False) -> AgentEntry:
    """One agent table; ``missing_ok``: an agent whose input does not exist yet (a policy file still training) is
    accepted unconstructed (a leaderboard lists it as pending), else that is an error naming the missing input."""
    table = _check_keys(where, raw, _AGENT_KEYS, ("name",))
    name = _str(f"{where}.name", table["name"])
    kwargs = _table(f"{where}.kwargs", table.get("kwargs", {}))
    try:
        cls = agent_registry.load_agent_class(name)
    except KeyError as exc:
        raise SuiteConfigError(f"{where}.name: {exc.args[0]}") from None
    training = None if table.get("training") is None else _parse_training(f"{where}.training", table["training"])
    if agent_registry.requires_training(cls) and training is None:
        raise SuiteConfigError(
            f"{where}: agent {name!r} is an offline learner; add a 'training' table with keys {list(_TRAINING_KEYS)} "
            "(e.g. training = { total_timesteps = 1000, seed = 1000 })."
        )
    if training is not None and not agent_registry.requires_training(cls):
        raise SuiteConfigError(f"{where}.training: agent {name!r} learns online and takes no 'training' table; remove it.")
    try:
        missing = agent_registry.agent_missing_input(cls, kwargs)
    except TypeError as exc:
        raise SuiteConfigError(f"{where}.kwargs: {exc}; {name} accepts {inspect.signature(cls)}.") from None
    if missing is not None and not missing_ok:
        raise SuiteConfigError(f"{where}.kwargs: {missing}")
    try:  # constructing once is the only check of kwargs that works for every agent
        if missing is None:
            cls(**kwargs)
    except TypeError as exc:
        raise SuiteConfigError(f"{where}.kwargs: {exc}; {name} accepts {inspect.signature(cls)}.") from None
    except (ValueError, KeyError, ImportError) as exc:
        raise SuiteConfigError(f"{where}.kwargs: {exc}") from None
    label = _str(f"{where}.label", table.get("label", default_agent_label(name, kwargs)))
    return AgentEntry(name, label, kwargs, training, _table(f"{where}.env", table.get("env", {})))


def _parse_sweeps(where: str, raw: Any, task_names: list[str]) -> SweepSpec:
    table = _table(where, raw)
    tasks = None
    if "tasks" in table:
        tasks = tuple(_str(f"{where}.tasks", t) for t in _list(f"{where}.tasks", table["tasks"]))
        unknown = sorted(set(tasks) - set(task_names))
        if unknown:
            raise SuiteConfigError(f"{where}.tasks: {unknown[0]!r} is not a task label of this suite; labels: {task_names}.")
    multipliers: tuple[float, ...] = ()
    if "base_lr_multipliers" in table:
        values = _list(f"{where}.base_lr_multipliers", table["base_lr_multipliers"])
        multipliers = _positive_numbers(f"{where}.base_lr_multipliers", values)
    others = {k: tuple(_list(f"{where}.{k}", v)) for k, v in table.items() if k not in _SWEEP_SPECIAL}
    return SweepSpec(multipliers, others, tasks)


def parse_suite(data: Mapping[str, Any], source: str = "<suite>") -> SuiteSpec:
    """Validate parsed TOML (or JSON) data and build the :class:`SuiteSpec`.

    Raises:
        SuiteConfigError: Naming the offending key and the valid ones.
    """
    table = _check_keys(source, data, _SUITE_KEYS, ("name", "tasks", "agents", "seeds"))
    name = _suite_name(source, table["name"])
    seeds = tuple(_int(f"{source}: seeds[{i}]", s, 0) for i, s in enumerate(_list(f"{source}: seeds", table["seeds"])))
    if len(set(seeds)) != len(seeds):
        raise SuiteConfigError(f"{source}: seeds contains duplicates: {list(seeds)}.")
    executor = table.get("executor", "serial")
    if executor not in EXECUTORS:
        raise SuiteConfigError(f"{source}: executor={executor!r} is not valid; choose one of {list(EXECUTORS)}.")
    tasks = tuple(_parse_task(f"{source}: tasks[{i}]", t) for i, t in enumerate(_list(f"{source}: tasks", table["tasks"])))
    agents = tuple(_parse_agent(f"{source}: agents[{i}]", a) for i, a in enumerate(_list(f"{source}: agents", table["agents"])))
    for kind, labels in (("task", [t.label for t in tasks]), ("agent", [a.label for a in agents])):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise SuiteConfigError(f"{source}: {kind} label {dupes[0]!r} is used twice; give each {kind} a unique 'label'.")
    sweeps = None if "sweeps" not in table else _parse_sweeps(f"{source}: sweeps", table["sweeps"], [t.label for t in tasks])
    spec = SuiteSpec(
        name=name,
        tasks=tasks,
        agents=agents,
        seeds=seeds,
        executor=executor,
        workers=_int(f"{source}: workers", table.get("workers", 1), 1, MAX_WORKERS),
        results_dir=_folder(f"{source}: results_dir", table.get("results_dir", "runs")),
        env=_table(f"{source}: env", table.get("env", {})),
        sweeps=sweeps,
        description=str(table.get("description", "")),
        tuning=None if "tuning" not in table else _parse_tuning(source, table["tuning"], seeds, agents),
        ray_address=None if "ray_address" not in table else ray_address(f"{source}: ray_address", table["ray_address"]),
    )
    _check_training_seeds(source, spec)
    _check_env_overrides(source, spec)
    return spec


def _parse_tuning(source: str, raw: Any, seeds: tuple[int, ...], agents: tuple[AgentEntry, ...]) -> TuningSpec:
    try:
        return parse_tuning(f"{source}: tuning", raw, seeds, [a.label for a in agents])
    except ValueError as exc:
        raise SuiteConfigError(str(exc)) from None


def _check_training_seeds(source: str, spec: SuiteSpec) -> None:
    for i, agent in enumerate(spec.agents):
        if agent.training is None:
            continue
        overlap = sorted(set(agent.training.seeds) & set(spec.seeds))
        if overlap:
            raise SuiteConfigError(
                f"{source}: agents[{i}].training: training seeds {list(agent.training.seeds)} overlap the evaluation "
                f"seeds {list(spec.seeds)} at {overlap}; an agent must never be evaluated on seeds it trained on "
                "(choose e.g. training.seed = 1000)."
            )


def _check_env_overrides(source: str, spec: SuiteSpec) -> None:
    for i, task in enumerate(spec.tasks):
        for variant in task_variants(spec, task):
            for j, agent in enumerate(spec.agents):
                cls = agent_registry.load_agent_class(agent.name)
                agent_overrides = agent.env_overrides()
                try:
                    config = make_config(task.name, **{**variant.overrides, **agent_overrides})
                except (KeyError, ValueError, TypeError) as exc:
                    message = exc.args[0] if exc.args else str(exc)
                    raise SuiteConfigError(f"{source}: tasks[{i}] ({variant.label}, env/overrides/sweeps): {message}") from None
                if callable(getattr(cls, "check_config", None)):  # e.g. `fixed`: its cell must be in this grid
                    try:
                        cls(**agent.kwargs).check_config(config)
                    except (KeyError, ValueError, TypeError) as exc:
                        message = exc.args[0] if exc.args else str(exc)
                        raise SuiteConfigError(f"{source}: agents[{j}].kwargs ({agent.label}) on {variant.label}: {message}") from None


def load_suite(path: Path | str) -> SuiteSpec:
    """Read and validate a suite TOML file.

    Raises:
        SuiteConfigError: If the file is missing, is not valid TOML, or breaks the specification.
    """
    return parse_suite(read_toml_file(path, "suite file"), str(path))
