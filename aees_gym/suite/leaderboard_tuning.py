"""Tuned leaderboard entries: an agent's settings chosen on a family's ``tuning`` split, then run on ``test``.

A leaderboard agent with a ``tuning`` table is a reference whose hyperparameters are chosen the way
a practitioner would, on instances that never score anything::

    [[agents]]
    name = "fixed"
    label = "tuned constant"
    tuning = { lr_factors = [0.1, 0.3, 1, 3, 10], by = "optimizer" }

    [[agents]]
    name = "ducb"
    label = "ducb (tuned c)"
    tuning = { agent_grid = { c = [0.01, 0.03, 0.1, 0.3, 1.0] } }

Keys: ``lr_factors`` (absolute base LRs: the optimizer's usual LR, :data:`~aees_gym.envs.families.CENTRE_LR`,
times each factor; the chosen one replaces every instance's own base LR, mis-set or not),
``base_lr_multipliers`` (multiples of each instance's own base LR), ``env_grid`` and ``agent_grid``
(lists of env settings / agent arguments), and ``by`` (a setting that splits the instances into
groups tuned separately, e.g. ``optimizer``: AdamW and SGD need LRs a factor 30 apart). Every point
runs every tuning instance of its group (:func:`~aees_gym.suite.tuning.sweep_specs`, results under
``<set>/tuning/``, which reports never read); the winner is chosen by the reward-validation metric
(:func:`~aees_gym.suite.tuning.choose_point`) and recorded with its search budget in
``<set>/tuning/<label>.json``. Only sets with a ``tuning`` split (the instance families) can hold
tuned entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import atomic_write_text, dumps_json
from aees_gym.envs.families import CENTRE_LR
from aees_gym.suite.run_spec import RunSpec
from aees_gym.suite.suite_file import SuiteConfigError
from aees_gym.suite.tuning import TuningChoice, TuningProblem, apply_choice, choice_point, choose_point, sweep_specs

TUNING_DIR = "tuning"
_KEYS = ("lr_factors", "base_lr_multipliers", "env_grid", "agent_grid", "by")


@dataclass(frozen=True)
class BoardTuning:
    """A leaderboard entry's tuning table (see the module docstring)."""

    lr_factors: tuple[float, ...] = ()
    base_lr_multipliers: tuple[float, ...] = (1.0,)
    env_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    agent_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    by: str | None = None

    def problem(self, agent: str, kwargs: Mapping[str, Any], env: Mapping[str, Any], group: Sequence[Any]) -> TuningProblem:
        """The tuning problem of one group (``group``: its instances, whose optimizer fixes the ``lr_factors`` LRs)."""
        env_grid = dict(self.env_grid)
        if self.lr_factors:
            optimizers = {i.env_overrides.get("optimizer", env.get("optimizer")) for i in group}
            if len(optimizers) != 1 or next(iter(optimizers)) not in CENTRE_LR:
                raise SuiteConfigError(f"tuning.lr_factors needs one optimizer of {sorted(CENTRE_LR)} per group, got {sorted(map(str, optimizers))}; "
                                       "add by = \"optimizer\".")
            centre = CENTRE_LR[next(iter(optimizers))]
            env_grid["base_lr"] = tuple(float(f"{centre * f:.4g}") for f in self.lr_factors)
        return TuningProblem(agent, dict(kwargs), tuple(self.base_lr_multipliers), dict(env), env_grid, dict(self.agent_grid))


def parse_board_tuning(source: str, raw: Any) -> BoardTuning:
    """Validate an entry's ``tuning`` table.

    Raises:
        SuiteConfigError: Naming the key and the fix.
    """
    if not isinstance(raw, Mapping):
        raise SuiteConfigError(f"{source}: must be a table with keys {list(_KEYS)}, got {raw!r}.")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise SuiteConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {list(_KEYS)}.")

    def numbers(key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        values = raw.get(key, default)
        if not isinstance(values, list | tuple) or not values or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values):
            raise SuiteConfigError(f"{source}.{key}: must be a non-empty list of positive numbers, got {values!r}.")
        return tuple(float(v) for v in values)

    def grid(key: str) -> dict[str, tuple[Any, ...]]:
        table = raw.get(key, {})
        if not isinstance(table, Mapping) or not all(isinstance(v, list) and v for v in table.values()):
            raise SuiteConfigError(f"{source}.{key}: must be a table of non-empty lists, e.g. {{ c = [0.1, 1.0] }}, got {table!r}.")
        return {k: tuple(v) for k, v in table.items()}

    tuning = BoardTuning(numbers("lr_factors", ()) if "lr_factors" in raw else (), numbers("base_lr_multipliers", (1.0,)),
                         grid("env_grid"), grid("agent_grid"), raw.get("by"))
    if tuning.by is not None and not isinstance(tuning.by, str):
        raise SuiteConfigError(f"{source}.by: must be a setting name such as 'optimizer', got {tuning.by!r}.")
    if tuning.lr_factors and "base_lr" in tuning.env_grid:
        raise SuiteConfigError(f"{source}: give base LRs either as lr_factors or as env_grid.base_lr, not both.")
    if not (tuning.lr_factors or tuning.env_grid or tuning.agent_grid or tuning.base_lr_multipliers != (1.0,)):
        raise SuiteConfigError(f"{source}: nothing to tune; give lr_factors, base_lr_multipliers, env_grid or agent_grid.")
    return tuning


def groups(instances: Sequence[Any], by: str | None) -> dict[str, list[Any]]:
    """``instances`` split by the value of setting ``by`` (one group ``all`` without it), in order of appearance."""
    out: dict[str, list[Any]] = {}
    for inst in instances:
        key = "all" if by is None else f"{by}={inst.env_overrides.get(by)}"
        out.setdefault(key, []).append(inst)
    return out


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "agent"


@dataclass(frozen=True)
class TunedEntry:
    """One tuned entry of one set: its per-group problems, sweep runs and (once chosen) choices."""

    label: str
    tuning: BoardTuning
    problems: dict[str, TuningProblem]
    instances: dict[str, list[Any]]
    sweeps: dict[str, list[RunSpec]]
    record: Path

    @property
    def sweep_runs(self) -> list[RunSpec]:
        return [r for runs in self.sweeps.values() for r in runs]

    def choose(self, results: Mapping[str, Any]) -> dict[str, TuningChoice]:
        return {g: choose_point(self.problems[g], self.instances[g], self.sweeps[g], results, f"{self.label} [{g}]") for g in self.problems}

    def write(self, choices: Mapping[str, TuningChoice]) -> None:
        budget = {k: sum(int(c.budget.get(k) or 0) for c in choices.values()) for k in ("points", "runs", "finished_runs", "optimizer_steps")}
        atomic_write_text(self.record, dumps_json({"label": self.label, "tuning": asdict(self.tuning), "budget": budget,
                                                   "choices": {g: asdict(c) for g, c in choices.items()}}))

    def read(self) -> dict[str, TuningChoice] | None:
        if not self.record.is_file():
            return None
        import json

        data = json.loads(self.record.read_text(encoding="utf-8"))
        if data.get("tuning") != json.loads(dumps_json(asdict(self.tuning))):
            return None  # a changed grid is a new tuning
        return {g: TuningChoice(**{**c, "table": tuple(c["table"])}) for g, c in data["choices"].items()}

    def test_runs(self, choices: Mapping[str, TuningChoice], test: Sequence[Any], suite: str, make: Any) -> list[RunSpec]:
        """The entry on every test instance at its group's chosen point (``make(inst, env, kwargs, record)`` builds a run)."""
        runs = []
        for group, members in groups(test, self.tuning.by).items():
            choice = choices.get(group)
            point = None if choice is None else choice_point(choice)
            if point is None:
                raise ValueError(f"{self.label}: no tuning choice for group {group!r} (every point failed, or the group has no tuning instance).")
            record = {"kind": "tuning", "group": group, "metric": choice.selection_metric, "point": choice.point,
                      "base_lr": choice.base_lr, "grid": choice.grid, "budget": choice.budget}
            for inst in members:
                env, kwargs = apply_choice(self.problems[group], point, inst)
                runs.append(make(inst, env, kwargs, record))
        return runs


def tuned_entry(label: str, tuning: BoardTuning, agent: str, kwargs: Mapping[str, Any], env: Mapping[str, Any],
                tuning_instances: Sequence[Any], suite: str, suite_dir: Path) -> TunedEntry:
    """Plan one tuned entry on a set's tuning instances."""
    by_group = groups(tuning_instances, tuning.by)
    problems = {g: tuning.problem(agent, kwargs, env, members) for g, members in by_group.items()}
    sweeps = {g: sweep_specs(problems[g], members, f"{suite}/{TUNING_DIR}", label, {"tuning_group": g}) for g, members in by_group.items()}
    return TunedEntry(label, tuning, problems, by_group, sweeps, suite_dir / TUNING_DIR / f"{slug(label)}.json")
