"""PNG plots of a result set: learning curves, reward per window, arm choices, LR sensitivity, performance profiles.

Needs matplotlib (the ``plot`` extra), imported only when a plot is drawn. Figures are built with
the object API (no pyplot state), so plotting works in any process and backend. Bands are 95%
bootstrap CIs of the mean over seeds (:func:`aees_gym.reporting.stats.stratified_bootstrap_ci`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core.fileio import atomic_write_with
from aees_gym.reporting import stats
from aees_gym.suite.results import RunResult

BAND_BOOT = 500
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plots need matplotlib; install the 'plot' extra: pip install 'aees-gym[plot]'") from exc
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _slug(*parts: str) -> str:
    text = "_".join(p for p in parts if p).replace("×", "x")
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")


def mean_band(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% bootstrap CI of the mean (a single value has a zero-width band)."""
    return stats.stratified_bootstrap_ci(np.asarray(values, dtype=float), np.mean, n_boot=BAND_BOOT, seed=0)


def _by(results: Iterable[RunResult], key: Callable[[RunResult], Any]) -> dict[Any, list[RunResult]]:
    groups: dict[Any, list[RunResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return groups


def _curve(ax: Any, points: dict[float, list[float]], label: str, color: str) -> None:
    xs = sorted(x for x, v in points.items() if v)
    if not xs:
        return
    bands = np.array([mean_band(points[x]) for x in xs])
    ax.plot(xs, bands[:, 0], color=color, label=label, linewidth=1.6)
    ax.fill_between(xs, bands[:, 1], bands[:, 2], color=color, alpha=0.18, linewidth=0)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _save(fig: Any, path: Path) -> Path:
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp))


Points = Callable[[RunResult], Iterable[tuple[float, Any]]]


def _agent_curves(runs: list[RunResult], points_of: Points) -> Any | None:
    """A figure with one mean ± 95% CI curve per agent of ``points_of(run)`` (x, y) pairs; None if empty."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    drawn = False
    for i, (label, group) in enumerate(_by(runs, lambda r: r.agent_label).items()):
        points: dict[float, list[float]] = {}
        for r in group:
            for x, y in points_of(r):
                if _finite(y):
                    points.setdefault(float(x), []).append(float(y))
        _curve(ax, points, label, _COLORS[i % len(_COLORS)])
        drawn |= bool(points)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return (fig, ax) if drawn else None


def plot_learning_curves(runs: list[RunResult], title: str, path: Path) -> Path | None:
    """Validation accuracy over optimizer steps, mean and 95% CI band per agent."""
    drawn = _agent_curves(runs, lambda r: ((p["step"], p.get("val_accuracy")) for p in r.eval_curve))
    if drawn is None:
        return None
    fig, ax = drawn
    ax.set(title=f"{title}: validation accuracy (mean, 95% CI)", xlabel="optimizer step", ylabel="validation accuracy")
    return _save(fig, path)


def plot_rewards(runs: list[RunResult], title: str, path: Path) -> Path | None:
    """Reward of each window, mean and 95% CI band per agent."""
    drawn = _agent_curves(runs, lambda r: ((w["window"], w.get("reward")) for w in r.windows))
    if drawn is None:
        return None
    fig, ax = drawn
    ax.axhline(0.0, color="black", linewidth=0.6)
    _integer_ticks(ax)
    ax.set(title=f"{title}: reward per window (mean, 95% CI)", xlabel="window", ylabel="reward")
    return _save(fig, path)


def arm_fractions(runs: list[RunResult]) -> tuple[list[str], np.ndarray]:
    """Candidate names and the fraction of runs choosing each candidate per window (candidates × windows)."""
    grid = next((r.config["grid"] for r in runs if r.config), None)
    if grid is None:
        return [], np.zeros((0, 0))
    from aees_gym.core.grid import CandidateGrid

    names = list(CandidateGrid.from_dict(grid).names)
    n_windows = max((len(r.windows) for r in runs), default=0)
    counts = np.zeros((len(names), n_windows))
    present = np.zeros(n_windows)
    for r in runs:
        for w in r.windows:
            if 0 <= w["action"] < len(names):
                counts[w["action"], w["window"]] += 1
                present[w["window"]] += 1
    return names, counts / np.maximum(present, 1)


def plot_arm_heatmaps(runs: list[RunResult], title: str, path: Path) -> Path | None:
    """One heatmap per agent: fraction of runs choosing each candidate (rows) in each window (columns)."""
    groups = [(label, g) for label, g in _by(runs, lambda r: r.agent_label).items() if any(r.windows for r in g)]
    if not groups:
        return None
    cols = min(4, len(groups))
    rows = -(-len(groups) // cols)
    fig = _figure(3.6 * cols + 0.8, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for ax, (label, group) in zip(axes.flat, groups, strict=False):
        names, fractions = arm_fractions(group)
        image = ax.imshow(fractions, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_xlabel("window", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        _integer_ticks(ax)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: fraction of runs choosing each candidate", fontsize=11)
    fig.colorbar(image, ax=axes, shrink=0.8, label="fraction of runs")
    return _save(fig, path)


def plot_lr_sensitivity(runs: list[RunResult], title: str, path: Path) -> Path | None:
    """Final validation accuracy against the base-LR multiplier of a sweep, per agent (mean, 95% CI)."""
    swept = [r for r in runs if "base_lr_multiplier" in r.sweep and r.status != "error"]
    if len({r.sweep["base_lr_multiplier"] for r in swept}) < 2:
        return None
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    for i, (label, group) in enumerate(_by(swept, lambda r: r.agent_label).items()):
        points: dict[float, list[float]] = {}
        for r in group:
            acc = (r.final_metrics or {}).get("val_accuracy")
            if _finite(acc):
                points.setdefault(float(r.sweep["base_lr_multiplier"]), []).append(float(acc))
        _curve(ax, points, label, _COLORS[i % len(_COLORS)])
        ax.scatter(sorted(points), [np.mean(points[x]) for x in sorted(points)], color=_COLORS[i % len(_COLORS)], s=12)
    ax.set_xscale("log")
    multipliers = sorted({float(r.sweep["base_lr_multiplier"]) for r in swept})
    ax.set_xticks(multipliers, [f"×{m:g}" for m in multipliers])
    ax.xaxis.set_minor_locator(_null_locator())
    ax.set(title=f"{title}: sensitivity to the base learning rate", xlabel="base LR multiplier", ylabel="final validation accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_performance_profile(agents: Sequence[str], taus: np.ndarray, rho: np.ndarray, rho_inf: np.ndarray, suite: str,
                             n_tasks: int, out_dir: Path | str) -> Path:
    """Performance profiles ρ(τ) of a suite (:mod:`aees_gym.reporting.profiles`) as step curves on a log τ axis.

    Each agent's ρ(∞) (share of tasks it reaches at all) is marked at the right edge.
    """
    fig = _figure(8.5, 4.5)
    ax = fig.add_subplot()
    for i, label in enumerate(agents):
        color = _COLORS[i % len(_COLORS)]
        # A small vertical offset keeps agents with identical profiles visible.
        offset = (i - (len(agents) - 1) / 2) * 0.004
        ax.step(taus, rho[i] + offset, where="post", color=color, label=label, linewidth=1.6)
        ax.plot([taus[-1]], [rho_inf[i] + offset], marker="o", color=color, markersize=4, clip_on=False)
    ax.set_xscale("log")
    ax.set_xlim(1.0, float(taus[-1]))
    ticks = [t for t in (1, 1.25, 1.5, 2, 3, 4, 5, 10, 20, 50, 100, 1000) if t <= taus[-1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(_null_locator())
    ax.set_ylim(-0.02, 1.04)
    ax.set(title=f"{suite}: performance profile over {n_tasks} tasks (steps to target)",
           xlabel="τ (steps ÷ fastest agent's steps on the task)", ylabel="ρ(τ): share of tasks within τ× of the fastest")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return _save(fig, Path(out_dir) / f"{_slug(suite, 'performance_profile')}.png")


def write_plots(results: Iterable[RunResult], out_dir: Path | str, agent_order: Sequence[str] = ()) -> list[Path]:
    """Every plot for every (suite, task variant), plus LR-sensitivity plots per swept task.

    Args:
        results: Runs to plot (``error`` runs are left out).
        out_dir: Folder of the PNG files.
        agent_order: Legend and panel order of agent labels (others follow alphabetically).

    Raises:
        ImportError: Without matplotlib (names the ``plot`` extra).
    """
    _figure(1, 1)  # fail early, before any file is written, when matplotlib is missing
    out = Path(out_dir)
    rank = {label: i for i, label in enumerate(agent_order)}
    # Grouping keeps first-seen order, so sorting the runs orders every legend and panel.
    runs = sorted((r for r in results if r.status != "error"), key=lambda r: (rank.get(r.agent_label, len(rank)), r.agent_label))
    written: list[Path] = []
    for (suite, task), group in sorted(_by(runs, lambda r: (r.suite, r.task_label)).items()):
        for kind, fn in (("learning_curves", plot_learning_curves), ("reward", plot_rewards), ("arms", plot_arm_heatmaps)):
            path = fn(group, f"{suite} / {task}", out / f"{_slug(suite, task, kind)}.png")
            written += [path] if path else []
    # LR sensitivity: one plot per base task and per value of the other sweep coordinates.
    def sweep_key(r: RunResult) -> tuple[str, str, str]:
        rest = ", ".join(f"{k}={v}" for k, v in sorted(r.sweep.items()) if k != "base_lr_multiplier")
        return r.suite, r.task, rest

    for (suite, task, rest), group in sorted(_by(runs, sweep_key).items()):
        title = f"{suite} / {task}" + (f" ({rest})" if rest else "")
        path = plot_lr_sensitivity(group, title, out / f"{_slug(suite, task, rest, 'lr_sensitivity')}.png")
        written += [path] if path else []
    return written
