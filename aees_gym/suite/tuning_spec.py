"""The ``[tuning]`` table of a suite: the cheap search a practitioner would do instead of a controller.

::

    [tuning]
    base_lr_multipliers = [0.3, 1, 3]   # × each task variant's base LR (default [1] when a grid below is given)
    seeds = [100, 101]                  # tuning seeds: must not be evaluation seeds
    agent = "fixed"                     # optional; the agent run at each candidate (default fixed ×1.0)
    kwargs = {}                         # optional; its constructor arguments
    label = "tuned"                     # optional; the agent label of the evaluated choice
    env = { schedule = "cosine" }       # optional; settings of every candidate (e.g. a tuned cosine schedule)
    env_grid = { label_smoothing = [] } # optional; env settings tried, crossed with the base LRs
    agent_grid = { c = [0.1, 1.0] }     # optional; agent constructor arguments tried (e.g. a bandit's c)

:mod:`aees_gym.suite.tuning` runs the sweep, picks the best point per task variant by the
reward-validation part and adds the ``tuned`` runs on the evaluation seeds. This module only
parses and validates the table, and defines the candidate grid (:class:`TuningProblem`,
:class:`TuningPoint`) that :mod:`aees_gym.suite.tuning` runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aees_gym.suite import agent_registry
from aees_gym.tasks.config import EnvConfig

_TUNING_KEYS = ("base_lr_multipliers", "seeds", "agent", "kwargs", "label", "env", "env_grid", "agent_grid")


@dataclass(frozen=True)
class TuningPoint:
    """One candidate: a base-LR multiplier, env settings and agent arguments."""

    base_lr_multiplier: float = 1.0
    env: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        parts = [] if self.base_lr_multiplier == 1.0 and (self.env or self.agent) else [f"base_lr×{self.base_lr_multiplier:g}"]
        parts += [f"{k}={v}" for k, v in {**self.env, **self.agent}.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class TuningProblem:
    """An agent and its candidate grid (see the module docstring)."""

    agent: str = "fixed"
    kwargs: dict[str, Any] = field(default_factory=dict)
    base_lr_multipliers: tuple[float, ...] = (1.0,)
    env: dict[str, Any] = field(default_factory=dict)
    env_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    agent_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def points(self) -> list[TuningPoint]:
        """Every candidate, in grid order (base LR multipliers outermost)."""
        env_keys, agent_keys = list(self.env_grid), list(self.agent_grid)
        out = []
        for m, env_values, agent_values in itertools.product(
            self.base_lr_multipliers, itertools.product(*self.env_grid.values()), itertools.product(*self.agent_grid.values())
        ):
            out.append(TuningPoint(float(m), dict(zip(env_keys, env_values, strict=True)), dict(zip(agent_keys, agent_values, strict=True))))
        return out

    def describe(self) -> dict[str, Any]:
        """The grid, for records."""
        return {"agent": self.agent, "kwargs": dict(self.kwargs), "base_lr_multipliers": list(self.base_lr_multipliers),
                "env": dict(self.env), "env_grid": {k: list(v) for k, v in self.env_grid.items()},
                "agent_grid": {k: list(v) for k, v in self.agent_grid.items()}}


@dataclass(frozen=True)
class TuningSpec:
    """A grid search on tuning seeds whose best point is evaluated as agent ``label``.

    Args:
        base_lr_multipliers: Candidate multipliers of each task variant's base LR.
        seeds: Tuning seeds (disjoint from the suite's evaluation seeds).
        agent: Agent run at every candidate (an online agent; ``fixed`` is the plain optimizer).
        kwargs: The agent's constructor arguments.
        label: Agent label of the tuned runs in results and reports.
        env: Env settings of every candidate.
        env_grid: Env settings tried (each a tuple of values), crossed with the multipliers.
        agent_grid: Agent constructor arguments tried (each a tuple of values), crossed too.
    """

    base_lr_multipliers: tuple[float, ...]
    seeds: tuple[int, ...]
    agent: str = "fixed"
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = "tuned"
    env: dict[str, Any] = field(default_factory=dict)
    env_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    agent_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def problem(self) -> TuningProblem:
        """The table as a :class:`TuningProblem`."""
        return TuningProblem(self.agent, dict(self.kwargs), self.base_lr_multipliers, dict(self.env),
                             dict(self.env_grid), dict(self.agent_grid))


def _grid(where: str, raw: Any) -> dict[str, tuple[Any, ...]]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table of lists, e.g. {{ c = [0.1, 1.0] }}, got {raw!r}.")
    out = {}
    for key, values in raw.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.{key} must be a non-empty list of candidate values, got {values!r}.")
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"{where}.{key} contains duplicates: {values}.")
        out[str(key)] = tuple(values)
    return out


def _check_env_keys(where: str, keys: Sequence[str]) -> None:
    valid = [f.name for f in dataclasses.fields(EnvConfig)]
    for key in keys:
        if key not in valid:
            raise ValueError(f"{where}: {key!r} is not an env setting; valid ones: {valid}.")


def parse_tuning(where: str, raw: Any, eval_seeds: Sequence[int], agent_labels: Sequence[str]) -> TuningSpec:
    """Validate the ``[tuning]`` table; raises ``ValueError`` naming the key and the fix."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(_TUNING_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; valid keys: {list(_TUNING_KEYS)}.")
    env_grid = _grid(f"{where}.env_grid", raw.get("env_grid", {}))
    agent_grid = _grid(f"{where}.agent_grid", raw.get("agent_grid", {}))
    required = ("seeds",) if env_grid or agent_grid else ("base_lr_multipliers", "seeds")
    for key in required:
        if key not in raw:
            raise ValueError(f"{where}: missing required key {key!r}.")
    multipliers = raw.get("base_lr_multipliers", [1.0])
    if not isinstance(multipliers, list) or not multipliers or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in multipliers
    ):
        raise ValueError(f"{where}.base_lr_multipliers must be a non-empty list of positive numbers, got {multipliers!r}.")
    if len(set(multipliers)) != len(multipliers):
        raise ValueError(f"{where}.base_lr_multipliers contains duplicates: {multipliers}.")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"{where}.seeds must be a non-empty list of non-negative integers, got {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}.seeds contains duplicates: {seeds}.")
    overlap = sorted(set(seeds) & set(eval_seeds))
    if overlap:
        raise ValueError(
            f"{where}.seeds {seeds} overlap the evaluation seeds {list(eval_seeds)} at {overlap}; the choice must be "
            "made on seeds it is never evaluated on (choose e.g. seeds = [100, 101])."
        )
    agent = raw.get("agent", "fixed")
    kwargs = raw.get("kwargs", {})
    label = raw.get("label", "tuned")
    env = raw.get("env", {})
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}.label must be a non-empty string, got {label!r}.")
    if label in agent_labels:
        raise ValueError(f"{where}.label {label!r} is already an agent label of this suite; choose another.")
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{where}.kwargs must be a table, got {kwargs!r}.")
    if not isinstance(env, Mapping):
        raise ValueError(f"{where}.env must be a table of env settings, got {env!r}.")
    _check_env_keys(f"{where}.env", list(env))
    _check_env_keys(f"{where}.env_grid", list(env_grid))
    try:
        cls = agent_registry.load_agent_class(str(agent))
    except KeyError as exc:
        raise ValueError(f"{where}.agent: {exc.args[0]}") from None
    if agent_registry.requires_training(cls):
        raise ValueError(f"{where}.agent: {agent!r} is an offline learner; tune with an online agent such as 'fixed'.")
    for values in [dict(zip(agent_grid, combo, strict=True)) for combo in itertools.product(*agent_grid.values())]:
        try:
            cls(**{**kwargs, **values})
        except TypeError as exc:
            key = f"{where}.agent_grid" if values else f"{where}.kwargs"
            raise ValueError(f"{key}: {exc}; {agent} accepts {inspect.signature(cls)}.") from None
        except (ValueError, KeyError, ImportError) as exc:
            raise ValueError(f"{where}.{'agent_grid' if values else 'kwargs'}: {exc}") from None
    return TuningSpec(tuple(float(m) for m in multipliers), tuple(seeds), str(agent), dict(kwargs), label,
                      dict(env), env_grid, agent_grid)
