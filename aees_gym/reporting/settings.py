"""The settings a report states for every agent: the reward it was scored by, the optimizer, the base LR.

A controller's numbers only mean something next to what its reward could see (``aees``: training
loss; ``heldout``: the reward-validation split) and what it controlled; a ``tuned`` agent's base LR
came from a sweep on tuning seeds, recorded in its runs' ``training`` field (``kind = "tuning"``; results
written before tuning chose by the reward-validation part say ``base_lr_tuning``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aees_gym.reporting.markdown import md_cell
from aees_gym.suite.results import RunResult

#: ``training.kind`` of a run whose settings a tuning sweep chose (``base_lr_tuning``: results written before
#: tuning chose by the reward-validation part).
TUNED_KINDS = ("tuning", "base_lr_tuning")


def is_tuned(result: RunResult) -> bool:
    """Whether a tuning sweep chose this run's settings (a tuned reference)."""
    return isinstance(result.training, dict) and result.training.get("kind") in TUNED_KINDS


def _fmt_values(values: Iterable[Any]) -> str:
    unique = sorted({str(v) for v in values if v is not None})
    return ", ".join(unique) if unique else "—"


def _tuning_note(record: dict[str, Any]) -> str:
    note = f"sweep ×{', '.join(str(c) for c in record['candidates'])} on seeds {record['seeds']} by {record['metric']}"
    grid = {**(record.get("grid") or {}).get("env_grid", {}), **(record.get("grid") or {}).get("agent_grid", {})}
    if grid:
        note += " × " + ", ".join(f"{k} ∈ {v}" for k, v in grid.items())
    budget = record.get("budget") or {}
    if budget:
        note += f" ({budget.get('runs')} runs, {budget.get('optimizer_steps'):,} optimizer steps)"
    return note


def settings_table(results: Iterable[RunResult]) -> list[str]:
    """Markdown lines: one row per suite × agent with its reward(s), optimizer(s), base LR(s) and how the LR was chosen."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.suite, r.agent_label), []).append(r)
    if not groups:
        return []
    lines = [
        "| suite | agent | reward | optimizer | base LR | base LR chosen by |",
        "|---|---|---|---|---|---|",
    ]
    for (suite, label), runs in sorted(groups.items()):
        configs = [r.config or {} for r in runs]
        rewards = _fmt_values((c.get("reward") or {}).get("name") for c in configs)
        optimizers = _fmt_values(c.get("optimizer") for c in configs)
        lrs = _fmt_values(f"{c['base_lr']:.3g}" for c in configs if isinstance(c.get("base_lr"), int | float))
        tuned = [r.training for r in runs if is_tuned(r)]
        chosen = _tuning_note(tuned[0]) if tuned else "the task / suite settings"
        lines.append("| " + " | ".join(map(md_cell, (suite, label, rewards, optimizers, lrs, chosen))) + " |")
    return lines
