"""PNG plots of a result set: learning curves, reward per window, arm choices, LR sensitivity, performance profiles.

Every agent keeps one colour and line style across a suite's plots (:mod:`aees_gym.reporting.styles`);
legends sit outside the axes, and an axis with more than :data:`CROWDED` agents becomes one panel
per agent group (fixed cells, schedules, bandits, learners, references), sharing both axes.

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
from aees_gym.reporting.rows import baseline_label
from aees_gym.reporting.styles import AgentStyle, agent_groups, assign_styles, grouped
from aees_gym.suite.results import RunResult

BAND_BOOT = 500
#: More agents than this on one axis are drawn as one panel per agent group.
CROWDED = 8


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


def _curve(ax: Any, points: dict[float, list[float]], label: str, style: AgentStyle, *, linewidth: float = 1.6) -> None:
    xs = sorted(x for x, v in points.items() if v)
    if not xs:
        return
    bands = np.array([mean_band(points[x]) for x in xs])
    ax.plot(xs, bands[:, 0], color=style.color, linestyle=style.linestyle, label=label, linewidth=linewidth)
    ax.fill_between(xs, bands[:, 1], bands[:, 2], color=style.color, alpha=0.12, linewidth=0)


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


def run_styles(runs: Sequence[RunResult], order: Sequence[str] = ()) -> dict[str, AgentStyle]:
    """The style of every agent label of ``runs`` as every plot of a report draws it.

    Colours follow ``order`` (a suite's agent order), then the labels' first-seen order in ``runs``.
    """
    labels = [x for x in order if any(r.agent_label == x for r in runs)]
    return assign_styles(list(dict.fromkeys([*labels, *(r.agent_label for r in runs)])), agent_groups(runs))


def legend_outside(ax: Any) -> None:
    """The legend to the right of the axes, never over the curves."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
                  handlelength=3.2)


def panels(labels: Sequence[str], styles: dict[str, AgentStyle], title: str, *, width: float = 10.0, height: float = 4.5,
           panel_height: float = 2.1, sharey: bool = True) -> tuple[Any, list[tuple[Any, str, list[str]]]]:
    """A figure with one axis, or one row per agent group when more than :data:`CROWDED` agents share it.

    Returns the figure and ``(axis, group, labels)`` per panel; panels share the x axis (and y with ``sharey``).
    """
    parts = grouped(labels, styles) if len(labels) > CROWDED else [("", list(labels))]
    fig = _figure(width, height if len(parts) == 1 else 0.8 + panel_height * len(parts))
    axes = fig.subplots(len(parts), 1, sharex=True, sharey=sharey, squeeze=False)[:, 0]
    for ax, (group, _) in zip(axes, parts, strict=True):
        ax.grid(alpha=0.3, which="both")
        if group:
            ax.set_title(group, loc="left", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig, [(ax, group, members) for ax, (group, members) in zip(axes, parts, strict=True)]


Points = Callable[[RunResult], Iterable[tuple[float, Any]]]


def _agent_curves(runs: list[RunResult], points_of: Points, title: str, xlabel: str, ylabel: str,
                  styles: dict[str, AgentStyle] | None = None) -> Any | None:
    """One mean ± 95% CI curve per agent of ``points_of(run)`` (x, y) pairs, in group panels when crowded; None if empty.

    In a panel without the baseline (the plain optimizer), the baseline is drawn too, thinner, for reference.
    """
    styles = styles or run_styles(runs)
    points: dict[str, dict[float, list[float]]] = {}
    for label, group in _by(runs, lambda r: r.agent_label).items():
        for r in group:
            for x, y in points_of(r):
                if _finite(y):
                    points.setdefault(label, {}).setdefault(float(x), []).append(float(y))
    labels = [x for x in dict.fromkeys(r.agent_label for r in runs) if points.get(x)]
    if not labels:
        return None
    # Each panel its own y range: one collapsing agent would otherwise flatten every other panel;
    # the baseline drawn in each panel keeps them comparable.
    fig, parts = panels(labels, styles, title, sharey=False)
    base = baseline_label(runs, None)
    for ax, _, members in parts:
        if base in points and base not in members:
            _curve(ax, points[base], f"{base} (baseline)", styles[base], linewidth=0.9)
        for label in members:
            _curve(ax, points[label], label, styles[label])
        ax.set_ylabel(ylabel)
        legend_outside(ax)
    parts[-1][0].set_xlabel(xlabel)
    return fig, [ax for ax, _, _ in parts]


def plot_learning_curves(runs: list[RunResult], title: str, path: Path, styles: dict[str, AgentStyle] | None = None) -> Path | None:
    """Validation accuracy over optimizer steps, mean and 95% CI band per agent."""
    drawn = _agent_curves(runs, lambda r: ((p["step"], p.get("val_accuracy")) for p in r.eval_curve),
                          f"{title}: validation accuracy (mean, 95% CI)", "optimizer step", "val accuracy", styles)
    return None if drawn is None else _save(drawn[0], path)


def plot_rewards(runs: list[RunResult], title: str, path: Path, styles: dict[str, AgentStyle] | None = None) -> Path | None:
    """Reward of each window, mean and 95% CI band per agent."""
    drawn = _agent_curves(runs, lambda r: ((w["window"], w.get("reward")) for w in r.windows),
                          f"{title}: reward per window (mean, 95% CI)", "window", "reward", styles)
    if drawn is None:
        return None
    fig, axes = drawn
    for ax in axes:
        ax.axhline(0.0, color="black", linewidth=0.6)
    _integer_ticks(axes[-1])
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


def plot_lr_sensitivity(runs: list[RunResult], title: str, path: Path, styles: dict[str, AgentStyle] | None = None) -> Path | None:
    """Final validation accuracy against the base-LR multiplier of a sweep, per agent (mean, 95% CI)."""
    swept = [r for r in runs if "base_lr_multiplier" in r.sweep and r.status != "error"]
    if len({r.sweep["base_lr_multiplier"] for r in swept}) < 2:
        return None
    styles = styles or run_styles(swept)
    points: dict[str, dict[float, list[float]]] = {}
    for label, group in _by(swept, lambda r: r.agent_label).items():
        for r in group:
            acc = (r.final_metrics or {}).get("val_accuracy")
            if _finite(acc):
                points.setdefault(label, {}).setdefault(float(r.sweep["base_lr_multiplier"]), []).append(float(acc))
    fig, parts = panels(list(points), styles, f"{title}: sensitivity to the base learning rate")
    multipliers = sorted({float(r.sweep["base_lr_multiplier"]) for r in swept})
    for ax, _, members in parts:
        for label in members:
            _curve(ax, points[label], label, styles[label])
            xs = sorted(points[label])
            ax.scatter(xs, [np.mean(points[label][x]) for x in xs], color=styles[label].color, s=12)
        ax.set_xscale("log")
        ax.set_xticks(multipliers, [f"×{m:g}" for m in multipliers])
        ax.xaxis.set_minor_locator(_null_locator())
        ax.set_ylabel("final val accuracy")
        legend_outside(ax)
    parts[-1][0].set_xlabel("base LR multiplier")
    return _save(fig, path)


def profile_figure(agents: Sequence[str], taus: np.ndarray, rho: np.ndarray, rho_inf: np.ndarray, suite: str, n_tasks: int,
                   styles: dict[str, AgentStyle] | None = None) -> Any:
    """The performance-profile figure (see :func:`plot_performance_profile`); ρ is drawn as computed, never offset."""
    rho, rho_inf = np.asarray(rho, dtype=float), np.asarray(rho_inf, dtype=float)
    if rho.size and (rho.min() < 0 or rho.max() > 1 or rho_inf.min() < 0 or rho_inf.max() > 1):
        raise ValueError("performance profiles are shares of tasks and must lie in [0, 1]")
    styles = styles or assign_styles(list(agents), {})
    fig, parts = panels(list(agents), styles, f"{suite}: performance profile over {n_tasks} tasks (steps to target)",
                        panel_height=2.2)
    index = {label: i for i, label in enumerate(agents)}
    ticks = [t for t in (1, 1.25, 1.5, 2, 3, 4, 5, 10, 20, 50, 100, 1000) if t <= taus[-1]]
    for ax, _, members in parts:
        for k, label in enumerate(members):
            i, style = index[label], styles[label]
            # Identical profiles overlap exactly: earlier lines are wider, so each stays visible under the next.
            width = 1.3 + 1.8 * (1 - k / max(len(members) - 1, 1))
            ax.step(taus, rho[i], where="post", color=style.color, linestyle=style.linestyle, label=label, linewidth=width)
            ax.plot([taus[-1]], [rho_inf[i]], marker="o", color=style.color, markersize=4, clip_on=False)
        ax.set_xscale("log")
        ax.set_xlim(1.0, float(taus[-1]))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(_null_locator())
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("ρ(τ)")
        legend_outside(ax)
    parts[-1][0].set_xlabel("τ (steps ÷ fastest agent's steps on the task); ρ(τ): share of tasks within τ× of the fastest; "
                            "dot: ρ(∞)")
    return fig


def plot_performance_profile(agents: Sequence[str], taus: np.ndarray, rho: np.ndarray, rho_inf: np.ndarray, suite: str,
                             n_tasks: int, out_dir: Path | str, styles: dict[str, AgentStyle] | None = None) -> Path:
    """Performance profiles ρ(τ) of a suite (:mod:`aees_gym.reporting.profiles`) as step curves on a log τ axis.

    Each agent's ρ(∞) (share of tasks it reaches at all) is marked at the right edge. Agents with the
    same profile overlap; their line styles differ, and with many agents each group gets its own panel.
    """
    fig = profile_figure(agents, taus, rho, rho_inf, suite, n_tasks, styles)
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
        styles = run_styles([r for r in runs if r.suite == suite])  # one style per agent across the suite's plots
        for kind, fn in (("learning_curves", plot_learning_curves), ("reward", plot_rewards)):
            path = fn(group, f"{suite} / {task}", out / f"{_slug(suite, task, kind)}.png", styles)
            written += [path] if path else []
        path = plot_arm_heatmaps(group, f"{suite} / {task}", out / f"{_slug(suite, task, 'arms')}.png")
        written += [path] if path else []
    # LR sensitivity: one plot per base task and per value of the other sweep coordinates.
    def sweep_key(r: RunResult) -> tuple[str, str, str]:
        rest = ", ".join(f"{k}={v}" for k, v in sorted(r.sweep.items()) if k != "base_lr_multiplier")
        return r.suite, r.task, rest

    for (suite, task, rest), group in sorted(_by(runs, sweep_key).items()):
        title = f"{suite} / {task}" + (f" ({rest})" if rest else "")
        styles = run_styles([r for r in runs if r.suite == suite])
        path = plot_lr_sensitivity(group, title, out / f"{_slug(suite, task, rest, 'lr_sensitivity')}.png", styles)
        written += [path] if path else []
    return written
