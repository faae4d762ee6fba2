"""The leaderboard file: its schema (:class:`LeaderboardSpec`, :class:`BoardEntry`) and the parser that
validates it at load time, every set's and agent's ``env`` settings included.

The file's format is shown in :mod:`aees_gym.suite.leaderboard` (planning, resuming and running a
leaderboard), which re-exports every name here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees_gym.core.grid import candidate_name
from aees_gym.core.reward import registered_rewards
from aees_gym.envs.families import InstanceFamily, get_instances
from aees_gym.suite.leaderboard_tuning import BoardTuning, parse_board_tuning
from aees_gym.suite.suite_file import EXECUTORS, AgentEntry, _parse_agent
from aees_gym.suite.toml_fields import (
    MAX_BOOT,
    MAX_WORKERS,
    SuiteConfigError,
    _check_keys,
    _folder,
    _int,
    _list,
    _table,
    read_toml_file,
)
from aees_gym.tasks import make_config

_KEYS = ("results_dir", "executor", "workers", "n_boot", "reference", "sets", "agents")
_SET_KEYS = ("name", "env")
LEADERBOARD_DIR = "leaderboard"
RANDOM = "random"
#: Label of the plain optimizer's cell (×1.0, σ 0): the default reference.
PLAIN_CELL = f"fixed {candidate_name(1.0, 0.0)}"


@dataclass(frozen=True)
class BoardEntry:
    """One agent of a leaderboard: the suite's :class:`AgentEntry` and its own env settings."""

    agent: AgentEntry
    env: dict[str, Any] = field(default_factory=dict)
    #: Settings chosen on the set's tuning split before the test runs (:mod:`aees_gym.suite.leaderboard_tuning`).
    tuning: BoardTuning | None = None
    #: Rows with the same ``seed_group`` are one learner trained with different seeds (the table sets the spread
    #: across training seeds beside the test-run CI widths).
    seed_group: str | None = None

    @property
    def label(self) -> str:
        return self.agent.label

    @property
    def reward(self) -> str:
        """Name of the reward the agent sees (and, for a learner, trained with)."""
        return str(dict(self.env.get("reward") or {}).get("name", "aees"))


@dataclass(frozen=True)
class LeaderboardSpec:
    """A parsed leaderboard file; ``sets`` maps each instance set to the settings added to its runs."""

    sets: dict[str, dict[str, Any]]
    entries: tuple[BoardEntry, ...]
    results_dir: str = "runs"
    executor: str = "batched"
    workers: int = 1
    n_boot: int = 2000
    #: Label P(better than the reference) compares with; ``None``: the plain ``fixed`` ×1.0, σ 0 cell.
    reference: str | None = None

    def quick(self, results_dir: str | Path) -> LeaderboardSpec:
        """A seconds-long version for smoke tests: ``synthetic-mix-v0`` only, learners trained 64 windows on 4 envs."""
        entries = []
        for e in self.entries:
            t = e.agent.training
            if t is not None:
                t = dataclasses.replace(t, total_timesteps=64, n_envs=min(t.n_envs, 4))
            entries.append(dataclasses.replace(e, agent=dataclasses.replace(e.agent, training=t)))
        return dataclasses.replace(self, sets={"synthetic-mix-v0": {}}, entries=tuple(entries), results_dir=str(results_dir), n_boot=200)


def parse_leaderboard(data: Mapping[str, Any], source: str = "<leaderboard>") -> LeaderboardSpec:
    """Validate a parsed leaderboard file.

    Raises:
        SuiteConfigError: Naming the offending key, or an unknown instance set or reward.
    """
    table = _check_keys(source, data, _KEYS, ("sets", "agents"))
    sets: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(_list(f"{source}: sets", table["sets"])):
        s = _check_keys(f"{source}: sets[{i}]", raw, _SET_KEYS, ("name",))
        try:
            get_instances(s["name"])
        except KeyError as exc:
            raise SuiteConfigError(f"{source}: sets[{i}].name: {exc.args[0]}") from None
        sets[s["name"]] = _table(f"{source}: sets[{i}].env", s.get("env", {}))
    entries = []
    for i, raw in enumerate(_list(f"{source}: agents", table["agents"])):
        raw = dict(_table(f"{source}: agents[{i}]", raw))
        env = _table(f"{source}: agents[{i}].env", raw.pop("env", {}))
        tuning = raw.pop("tuning", None)
        tuning = None if tuning is None else parse_board_tuning(f"{source}: agents[{i}].tuning", tuning)
        group = raw.pop("seed_group", None)
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise SuiteConfigError(f"{source}: agents[{i}].seed_group={group!r} must be a non-empty name shared by the rows of "
                                   "one learner trained with different seeds (e.g. 'PPO (heldout)').")
        # A learned policy still training is accepted: its row is pending until the file exists (plan_set).
        entries.append(BoardEntry(_parse_agent(f"{source}: agents[{i}]", raw, missing_ok=True), env, tuning, group))
    _check_board_env(source, sets, entries)
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels) or RANDOM not in labels:
        raise SuiteConfigError(f"{source}: agent labels must be unique and include {RANDOM!r} (the score's zero); got {labels}.")
    executor = table.get("executor", "batched")
    if executor not in EXECUTORS:
        raise SuiteConfigError(f"{source}: executor={executor!r} is not valid; choose one of {list(EXECUTORS)}.")
    reference = table.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise SuiteConfigError(f"{source}: reference={reference!r} must be an agent label (or a fixed cell's, e.g. 'fixed lr1_n0').")
    return LeaderboardSpec(sets, tuple(entries), _folder(f"{source}: results_dir", table.get("results_dir", "runs")), executor,
                           _int(f"{source}: workers", table.get("workers", 1), 1, MAX_WORKERS),
                           _int(f"{source}: n_boot", table.get("n_boot", 2000), 1, MAX_BOOT), reference)


def _check_board_env(source: str, sets: Mapping[str, dict[str, Any]], entries: list[BoardEntry]) -> None:
    """Every set's and agent's ``env`` settings resolved on one instance of each task of each set, at load time."""
    known = set(registered_rewards())

    def checked_env(e: BoardEntry) -> dict[str, Any]:  # an unregistered reward is allowed: its rows stay pending
        return e.env if e.reward in known else {**e.env, "reward": {**dict(e.env["reward"]), "name": "aees"}}

    for i, (name, settings) in enumerate(sets.items()):
        instances = get_instances(name)
        # A family's training split is a sampler, not a list: its test and tuning splits cover its tasks.
        others = instances.tuning if isinstance(instances, InstanceFamily) else instances.train
        firsts = {inst.task: inst for inst in (*others, *instances.test)}.values()
        # A set's env may not redefine its instances; an agent's env may replace an instance's settings (e.g. an
        # optimizer that sets its own step size), resolved as plan_set runs it: {**instance, **settings, **agent}.
        for where, own, replaces in ((f"sets[{i}].env", settings, False),
                                     *((f"agents[{j}].env ({e.label})", {**settings, **checked_env(e)}, True)
                                       for j, e in enumerate(entries) if e.env)):
            for inst in firsts:
                try:
                    make_config(inst.task, None, **{**inst.env_overrides, **own}) if replaces else inst.config(**own)
                except (KeyError, ValueError, TypeError) as exc:
                    message = exc.args[0] if exc.args else str(exc)
                    raise SuiteConfigError(f"{source}: {where} on set {name!r} ({inst.task}): {message}") from None


def load_leaderboard(path: Path | str) -> LeaderboardSpec:
    """Read and validate a leaderboard TOML file (through the suite file's checked reader).

    Raises:
        SuiteConfigError: If the file is missing, not a regular file, not TOML, or breaks the specification.
    """
    return parse_leaderboard(read_toml_file(path, "leaderboard file"), str(path))


def unavailable_rewards(spec: LeaderboardSpec) -> dict[str, str]:
    """Agent label → reward name, for every agent whose reward is not registered in this build."""
    known = set(registered_rewards())
    return {e.label: e.reward for e in spec.entries if e.reward not in known}
