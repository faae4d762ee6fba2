"""Plots stay readable with many agents: grouped styles unique per agent, legends outside, ρ(τ) ≤ 1, a forest plot."""

from __future__ import annotations

import numpy as np
import pytest
from suite_helpers import make_result

from aees_gym.reporting import styles as st
from aees_gym.reporting.forest import forest_figure, forest_layout, tuned_label, versus_reference, write_forest_plots
from aees_gym.reporting.plots import CROWDED, _agent_curves, legend_outside, profile_figure, run_styles
from aees_gym.reporting.report import build_report
from aees_gym.suite.results import write_result

# The demo's 20 agents (and their kinds), as the suite file declares them.
DEMO = [("random", "random", {}), ("fixed ×0.5", "fixed", {"lr_multiplier": 0.5}), ("fixed ×1.0", "fixed", {"lr_multiplier": 1.0}),
        ("fixed ×2.0", "fixed", {"lr_multiplier": 2.0}), *((f"fixed+{s}", f"fixed+{s}", {}) for s in
        ("cosine", "step", "exponential", "linear", "warmup_linear")), ("ducb (aees)", "ducb", {}), ("ducb (heldout)", "ducb", {}),
        ("ducb conditional (aees)", "ducb", {}), ("contextual (aees)", "contextual", {}), ("heuristic", "heuristic", {}),
        ("PPO", "sb3", {}), ("A2C", "sb3", {})]
REFERENCES = [("Schedule-Free AdamW", {"optimizer": "schedulefree_adamw"}), ("Prodigy", {"optimizer": "prodigy"})]


def demo_like(n_seeds: int = 3, extra: int = 0):
    runs = []
    for seed in range(n_seeds):
        for i, (label, agent, kwargs) in enumerate(DEMO):
            runs.append(make_result(label, seed, 0.8 + 0.005 * i + 0.01 * seed, agent=agent, agent_kwargs=kwargs))
        for j, (label, env) in enumerate(REFERENCES):
            r = make_result(label, seed, 0.9 + 0.01 * j)
            r.config["optimizer"] = env["optimizer"]
            runs.append(r)
        tuned = make_result("tuned constant", seed, 0.95)
        runs.append(type(tuned)(**{**tuned.__dict__, "training": {"kind": "base_lr_tuning", "base_lr": 0.003}}))
        for k in range(extra):  # plugin agents beyond the palette
            runs.append(make_result(f"plugin {k}", seed, 0.7, agent=f"plugin{k}"))
    return runs


def test_agents_are_grouped_by_kind():
    groups = st.agent_groups(demo_like(1))
    assert groups["random"] == groups["fixed ×1.0"] == st.FIXED
    assert groups["fixed+cosine"] == st.SCHEDULES and groups["ducb (aees)"] == groups["heuristic"] == st.BANDITS
    assert groups["PPO"] == st.LEARNERS
    assert groups["Prodigy"] == groups["Schedule-Free AdamW"] == groups["tuned constant"] == st.REFERENCES


@pytest.mark.parametrize("extra", [0, 30, 300])
def test_every_agent_has_its_own_colour_and_line_style(extra):
    runs = demo_like(1, extra)
    labels = list(dict.fromkeys(r.agent_label for r in runs))
    if len(labels) > len(st.PALETTE) * (len(st.GROUP_DASHES) + len(st.EXTRA_DASHES)):
        with pytest.raises(ValueError, match="fewer agents"):
            run_styles(runs)
        return
    styles = run_styles(runs)
    pairs = [(s.color, s.dashes) for s in styles.values()]
    assert len(styles) == len(labels) and len(set(pairs)) == len(pairs)
    if not extra:  # up to 20 agents, colours alone already differ
        assert len({s.color for s in styles.values()}) == len(styles)
        assert {s.dashes for s in styles.values() if s.group == st.SCHEDULES} == {st.GROUP_DASHES[st.SCHEDULES]}
    assert styles == run_styles(runs)  # same agents → same styles in every plot


def _legends_outside(fig, axes):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in axes:
        legend = ax.get_legend()
        assert legend is not None
        box, frame = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.x0 >= frame.x1 - 1  # left edge right of the axes: never over a curve


def test_crowded_curves_become_group_panels_with_legends_outside():
    runs = demo_like()
    assert len({r.agent_label for r in runs}) > CROWDED
    fig, axes = _agent_curves(runs, lambda r: ((p["step"], p["val_accuracy"]) for p in r.eval_curve), "t", "step", "acc")
    assert [ax.get_title(loc="left") for ax in axes] == list(st.GROUPS)
    _legends_outside(fig, axes)
    styles = run_styles(runs)
    for ax in axes:  # each agent drawn once, in its own style; the baseline added to the other panels
        for line in ax.get_lines():
            label = line.get_label().removesuffix(" (baseline)")
            assert line.get_color() == styles[label].color
    few = [r for r in runs if r.agent_label in ("random", "PPO", "fixed ×1.0")]
    fig, axes = _agent_curves(few, lambda r: ((p["step"], p["val_accuracy"]) for p in r.eval_curve), "t", "step", "acc")
    assert len(axes) == 1 and len(axes[0].get_lines()) == 3
    _legends_outside(fig, axes)


@pytest.mark.parametrize("n_agents", [3, 21])
def test_performance_profile_is_never_drawn_above_one(n_agents):
    agents = [f"a{i}" for i in range(n_agents)]
    taus = np.geomspace(1, 4, 50)
    rho = np.ones((n_agents, taus.size))  # identical profiles at 1: the old offset drew half of them above 1
    fig = profile_figure(agents, taus, rho, np.ones(n_agents), "s", 3)
    ys = np.concatenate([line.get_ydata() for ax in fig.axes for line in ax.get_lines()])
    assert ys.max() <= 1.0 and ys.min() >= 0.0
    _legends_outside(fig, [ax for ax in fig.axes if ax.get_lines()])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        profile_figure(agents, taus, rho + 0.01, np.ones(n_agents), "s", 3)


def test_forest_plot_shows_every_agent_with_its_numbers(tmp_path):
    suite = tmp_path / "hand"
    for r in demo_like(5):
        write_result(r, suite)
    report = build_report(tmp_path, n_boot=100)
    rows = [r for r in report.overall if r.suite == "hand"]
    styles = run_styles(list(report.results), [r.agent_label for r in rows])
    layout = forest_layout(rows, styles)
    assert [name for name, row in layout if row is None] == list(st.GROUPS)
    assert sorted(name for name, row in layout if row is not None) == sorted(r.agent_label for r in rows)
    fig = forest_figure(rows, styles, "title")
    ax_iqm, ax_poi = fig.axes[:2]
    ticks = [t.get_text() for t in ax_iqm.get_yticklabels()]
    assert len(ticks) == len(layout) and "tuned constant" in ticks
    # One marker per agent at its IQM (left) and per non-baseline agent at its P(better than baseline) (right).
    iqms = sorted(line.get_xdata()[0] for line in ax_iqm.get_lines() if line.get_marker() == "o")
    assert iqms == pytest.approx(sorted(r.metrics["final_val_accuracy"].iqm for r in rows))
    pois = [line.get_xdata()[0] for line in ax_poi.get_lines() if line.get_marker() == "o"]
    assert len(pois) == len(rows) - 1 and all(0 <= p <= 1 for p in pois)
    # Against the tuned constant (0.95, above every other run): every agent's P(better) is exactly 0.
    assert tuned_label(report.results) == "tuned constant"
    versus = versus_reference(report.results, "tuned constant", [r.agent_label for r in rows], n_boot=100)
    assert set(versus) == {r.agent_label for r in rows} - {"tuned constant"} and all(v == (0.0, 0.0, 0.0) for v in versus.values())
    fig = forest_figure(rows, styles, "title", ("tuned constant", versus))
    assert len(fig.axes) == 3 and "tuned constant" in fig.axes[2].get_xlabel()
    assert sorted(line.get_xdata()[0] for line in fig.axes[2].get_lines() if line.get_marker() == "o") == [0.0] * len(versus)
    written = write_forest_plots(report.overall, report.results, tmp_path / "plots", n_boot=100)
    assert [p.name for p in written] == ["hand_forest.png"] and written[0].read_bytes()[:4] == b"\x89PNG"


def test_legend_outside_needs_no_handles():
    from aees_gym.reporting.plots import _figure

    ax = _figure(2, 2).add_subplot()
    legend_outside(ax)
    assert ax.get_legend() is None
