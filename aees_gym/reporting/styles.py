"""Agent groups and one distinct (colour, line style) per agent, shared by every plot of a report.

A report of a suite can hold twenty agents or more; ten default colours then repeat and a single
legend covers the curves. Plots therefore group the agents (:data:`GROUPS`) and draw one panel per
group where one axis would be crowded. Each agent keeps its colour and line style in every plot:
colours come from a 20-colour palette in agent order, the line style from the agent's group, and no
two agents share both (past 20 agents, or when a group repeats a colour, another dash pattern is
taken). Pure functions; matplotlib is not imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aees_gym.reporting.settings import is_tuned
from aees_gym.suite.results import RunResult

#: Group names in plot order.
FIXED, SCHEDULES, BANDITS, LEARNERS, REFERENCES = (
    "random and fixed cells", "base-LR schedules", "bandits and adaptive laws", "learned policies", "references")
GROUPS = (FIXED, SCHEDULES, BANDITS, LEARNERS, REFERENCES)

#: Agents whose per-window choice is a rule or a bandit, not a trained policy.
BANDIT_AGENTS = frozenset({"ducb", "contextual", "heuristic", "heuristic_grid"})
#: The optimizers ``torch.optim`` ships; any other one (Schedule-Free, Prodigy) is a reference.
PLAIN_OPTIMIZERS = frozenset({"adamw", "adam", "sgd"})

#: Well-separated colours: matplotlib's tab10, then ten darker or more saturated ones.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#000000", "#1a1a80", "#006d2c", "#e7298a", "#b8860b", "#008080", "#800000", "#66a61e", "#4d5d8f", "#fb6a4a",
)
#: Line style of each group (matplotlib dash tuples), solid for the controllers a reader looks at first.
GROUP_DASHES: dict[str, tuple[int, tuple[float, ...] | None]] = {
    FIXED: (0, (1.0, 1.5)),          # dotted
    SCHEDULES: (0, (5.0, 2.0)),      # dashed
    BANDITS: (0, None),              # solid
    LEARNERS: (0, (6.0, 2.0, 1.5, 2.0)),  # dash-dot
    REFERENCES: (0, (10.0, 2.5)),    # long dash
}
#: Extra dash patterns used only when an agent's (colour, group style) pair is already taken.
EXTRA_DASHES: tuple[tuple[int, tuple[float, ...]], ...] = (
    (0, (3.0, 1.0, 1.0, 1.0, 1.0, 1.0)), (0, (8.0, 2.0, 2.0, 2.0)), (0, (2.0, 3.0)), (0, (12.0, 2.0, 2.0, 2.0, 2.0, 2.0)),
    (0, (4.0, 4.0)), (0, (1.0, 4.0)), (0, (7.0, 1.0, 1.0, 1.0)), (0, (15.0, 3.0)),
)


@dataclass(frozen=True)
class AgentStyle:
    """How one agent is drawn: ``dashes`` is a matplotlib line style (``(offset, pattern)``; pattern None = solid)."""

    label: str
    group: str
    color: str
    dashes: tuple[int, tuple[float, ...] | None]

    @property
    def linestyle(self) -> Any:
        return "solid" if self.dashes[1] is None else self.dashes


def agent_group(result: RunResult) -> str:
    """The plot group of a run's agent (see the module docstring)."""
    optimizer = str((result.config or {}).get("optimizer", result.env_overrides.get("optimizer", "adamw")))
    if is_tuned(result) or optimizer not in PLAIN_OPTIMIZERS:
        return REFERENCES
    if result.agent in ("fixed", "random"):
        return FIXED
    if result.agent.startswith("fixed+"):
        return SCHEDULES
    if result.agent in BANDIT_AGENTS:
        return BANDITS
    return LEARNERS


def agent_groups(results: Sequence[RunResult]) -> dict[str, str]:
    """Agent label → group, from the first run of each label."""
    groups: dict[str, str] = {}
    for r in results:
        groups.setdefault(r.agent_label, agent_group(r))
    return groups


def assign_styles(labels: Sequence[str], groups: dict[str, str]) -> dict[str, AgentStyle]:
    """One style per label (in ``labels`` order), unique as a (colour, line style) pair.

    Raises:
        ValueError: If there are more agents than (colour, line style) pairs (over 260).
    """
    dashes = [*GROUP_DASHES.values(), *EXTRA_DASHES]
    if len(labels) > len(PALETTE) * len(dashes):
        raise ValueError(f"{len(labels)} agents are more than the {len(PALETTE) * len(dashes)} distinct styles plots can draw; "
                         "report fewer agents per suite")
    taken: set[tuple[str, Any]] = set()
    styles: dict[str, AgentStyle] = {}
    for i, label in enumerate(dict.fromkeys(labels)):
        group = groups.get(label, LEARNERS)
        first = GROUP_DASHES.get(group, GROUP_DASHES[LEARNERS])
        candidates = [(PALETTE[(i + k) % len(PALETTE)], d) for k in range(len(PALETTE)) for d in (first, *dashes)]
        color, dash = next(c for c in candidates if c not in taken)
        taken.add((color, dash))
        styles[label] = AgentStyle(label, group, color, dash)
    return styles


def grouped(labels: Sequence[str], styles: dict[str, AgentStyle]) -> list[tuple[str, list[str]]]:
    """``(group, labels)`` in :data:`GROUPS` order, each keeping ``labels`` order; empty groups left out."""
    out = [(g, [x for x in labels if styles[x].group == g]) for g in GROUPS]
    rest = [x for x in labels if styles[x].group not in GROUPS]
    return [(g, xs) for g, xs in out if xs] + ([("other", rest)] if rest else [])
