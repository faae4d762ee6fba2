"""The ``[tuning]`` table of a suite: the cheap base-LR search a practitioner would do instead.

::

    [tuning]
    base_lr_multipliers = [0.3, 1, 3]   # × each task variant's base LR
    seeds = [100, 101]                  # tuning seeds: must not be evaluation seeds
    agent = "fixed"                     # optional; the agent run at each candidate LR (default fixed ×1.0)
    kwargs = {}                         # optional; its constructor arguments
    label = "tuned"                     # optional; the agent label of the evaluated choice

:mod:`aees_gym.suite.tuning` runs the sweep, picks the best base LR per task variant and adds the
``tuned`` runs on the evaluation seeds. This module only parses and validates the table.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aees_gym.suite import agent_registry

_TUNING_KEYS = ("base_lr_multipliers", "seeds", "agent", "kwargs", "label")


@dataclass(frozen=True)
class TuningSpec:
    """A base-LR sweep on tuning seeds whose best point is evaluated as agent ``label``.

    Args:
        base_lr_multipliers: Candidate multipliers of each task variant's base LR.
        seeds: Tuning seeds (disjoint from the suite's evaluation seeds).
        agent: Agent run at every candidate (an online agent; ``fixed`` is the plain optimizer).
        kwargs: The agent's constructor arguments.
        label: Agent label of the tuned runs in results and reports.
    """

    base_lr_multipliers: tuple[float, ...]
    seeds: tuple[int, ...]
    agent: str = "fixed"
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = "tuned"


def parse_tuning(where: str, raw: Any, eval_seeds: Sequence[int], agent_labels: Sequence[str]) -> TuningSpec:
    """Validate the ``[tuning]`` table; raises ``ValueError`` naming the key and the fix."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(_TUNING_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; valid keys: {list(_TUNING_KEYS)}.")
    for key in ("base_lr_multipliers", "seeds"):
        if key not in raw:
            raise ValueError(f"{where}: missing required key {key!r}.")
    multipliers = raw["base_lr_multipliers"]
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
            f"{where}.seeds {seeds} overlap the evaluation seeds {list(eval_seeds)} at {overlap}; the base LR must be "
            "chosen on seeds it is never evaluated on (choose e.g. seeds = [100, 101])."
        )
    agent = raw.get("agent", "fixed")
    kwargs = raw.get("kwargs", {})
    label = raw.get("label", "tuned")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}.label must be a non-empty string, got {label!r}.")
    if label in agent_labels:
        raise ValueError(f"{where}.label {label!r} is already an agent label of this suite; choose another.")
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{where}.kwargs must be a table, got {kwargs!r}.")
    try:
        cls = agent_registry.load_agent_class(str(agent))
    except KeyError as exc:
        raise ValueError(f"{where}.agent: {exc.args[0]}") from None
    if agent_registry.requires_training(cls):
        raise ValueError(f"{where}.agent: {agent!r} is an offline learner; tune with an online agent such as 'fixed'.")
    try:
        cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}.kwargs: {exc}; {agent} accepts {inspect.signature(cls)}.") from None
    except (ValueError, KeyError, ImportError) as exc:
        raise ValueError(f"{where}.kwargs: {exc}") from None
    return TuningSpec(tuple(float(m) for m in multipliers), tuple(seeds), str(agent), dict(kwargs), label)
