"""The leaderboard score never contradicts the raw metric: a dominated agent never ranks above its dominator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aees_gym.reporting.leaderboard import ENUMERATED, SAMPLED, competition_ranks, raw_scores
from aees_gym.reporting.rows import TaskMetric

# A metric value, or None for a run that ended without one (it counts as its configuration's worst).
_value = st.one_of(st.none(), st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False), st.sampled_from([0.5, 0.9]))


@st.composite
def _boards(draw):  # noqa: ANN202
    n_configs = draw(st.integers(1, 3))
    n_seeds = draw(st.integers(1, 4))
    instances = [(f"C{c}", s) for c in range(n_configs) for s in range(n_seeds)]
    labels = ["random", "fixed a", "fixed b", "x", "y"]
    table = {label: [draw(_value) for _ in instances] for label in labels}
    # y is at least as good as x on every run: raise y where it is worse (None is the worst of all).
    gaps = [draw(st.floats(0.0, 0.2, allow_nan=False)) for _ in instances]
    table["y"] = [yv if xv is None else (min(1.0, xv + g) if yv is None or yv < xv else yv)
                  for xv, yv, g in zip(table["x"], table["y"], gaps, strict=True)]
    return instances, table


@settings(max_examples=60, deadline=None)
@given(_boards(), st.booleans(), st.booleans())
def test_a_dominated_agent_never_ranks_above(board, higher_is_better: bool, sampled: bool) -> None:
    instances, table = board
    sign = 1.0 if higher_is_better else -1.0
    runs = [SimpleNamespace(agent_label=label, task_label=f"{c}#{s}",
                            final_metrics={"m": None if v is None else sign * v})  # lower is better: mirror the values
            for label, values in table.items() for (c, s), v in zip(instances, values, strict=True)]
    # sampled: every instance is its own normaliser group (an instance family), all in one bootstrap stratum.
    scores = raw_scores(runs, TaskMetric("m", higher_is_better), ["fixed a", "fixed b"], "fixed a", n_boot=20,
                        grouping=SAMPLED if sampled else ENUMERATED)
    ranks = competition_ranks(scores, higher_is_better)
    assert ranks["y"] <= ranks["x"]
    # The secondary normalised score is an increasing map of the raw metric per normaliser group, so it agrees too.
    assert scores["y"].normalised[0] >= scores["x"].normalised[0] - 1e-12
    # And so does P(better than the reference), instance by instance.
    assert scores["y"].poi[0] >= scores["x"].poi[0]
    assert np.isfinite(scores["x"].iqm)
