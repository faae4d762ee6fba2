"""A family's test instances are each their own sampled configuration; an enumerated set pools seeds per configuration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aees_gym.envs.families import InstanceFamily, architecture_menu, register_family
from aees_gym.envs.instances import get_instance_set
from aees_gym.reporting.leaderboard import BEST_FIXED, ENUMERATED, SAMPLED, grouping_of, raw_scores
from aees_gym.reporting.rows import TaskMetric
from aees_gym.reporting.stats import iqm

FAMILY = register_family(InstanceFamily(
    "tiny-grouping-v1", "tests only", "MLP",
    architecture_menu(dataset=[{"dataset": "synthetic", "separation": 1.0}], width=[8], depth=[1], batch_size=[16], optimizer=["adamw"]),
    windows=(2, 3), window_length=5, n_tuning=2, n_test=3, seed=4,
), overwrite=True)

# One run per test instance. Per instance the best fixed cell differs (a, b, a) and every
# random-to-best range (0.30, 0.20, 0.20) is above the floor (0.05 accuracy), so random maps to 0,
# the best cell to 1 and the agent, halfway on each instance, to 0.5 exactly.
TABLE = {
    "random":  [0.50, 0.70, 0.20],
    "fixed a": [0.80, 0.60, 0.40],
    "fixed b": [0.60, 0.90, 0.33],
    "agent":   [0.65, 0.80, 0.30],
}


def _runs(names: list[str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(agent_label=label, task_label=name, final_metrics={"val_accuracy": v})
            for label, values in TABLE.items() for name, v in zip(names, values, strict=True)]


def test_a_family_is_normalised_per_instance_and_bootstrapped_over_instances():
    names = [i.name for i in FAMILY.test]
    assert grouping_of(FAMILY) is SAMPLED and grouping_of(get_instance_set("digits-budget-v0")) is ENUMERATED
    scores = raw_scores(_runs(names), TaskMetric("val_accuracy", True), ["fixed a", "fixed b"], "fixed a", n_boot=200,
                        grouping=grouping_of(FAMILY))
    assert scores["random"].normalised == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    assert scores[BEST_FIXED].normalised == pytest.approx((1.0, 1.0, 1.0))
    assert scores["agent"].normalised == pytest.approx((0.5, 0.5, 0.5))
    # The best fixed cell in hindsight is chosen per instance: 0.80, 0.90, 0.40.
    assert scores[BEST_FIXED].raw_mean == pytest.approx(0.7)
    # P(better than fixed a), paired by instance: the agent wins only the second instance.
    assert scores["agent"].poi[0] == pytest.approx(1 / 3)
    # One stratum of three instances: the bootstrap resamples them, so the CI has width (one stratum per
    # instance would hold each instance's single run fixed and collapse it to the point).
    assert scores["agent"].low < scores["agent"].high and scores["agent"].poi[1] < scores["agent"].poi[2]


def test_the_same_runs_in_an_enumerated_set_share_one_normaliser_per_configuration():
    names = [f"C[x=1]#{seed}" for seed in range(3)]  # one configuration, three seeds
    scores = raw_scores(_runs(names), TaskMetric("val_accuracy", True), ["fixed a", "fixed b"], "fixed a", n_boot=200)
    # Random's mean is 0 and the best cell by mean over the seeds (b: 0.61 against a's 0.60) is 1.
    zero, one = sum(TABLE["random"]) / 3, sum(TABLE["fixed b"]) / 3
    assert scores[BEST_FIXED].raw_mean == pytest.approx(one)
    assert scores["agent"].normalised[0] == pytest.approx(iqm([(v - zero) / (one - zero) for v in TABLE["agent"]]))


def test_section_headers_say_how_runs_group():
    names = [i.name for i in FAMILY.test]
    assert SAMPLED.header(names) == "3 runs = 3 sampled configurations, bootstrap over instances"
    assert ENUMERATED.header(["A#0", "A#1", "B#0"]) == "3 runs, 2 configurations"
    assert SAMPLED.normaliser_group(names[0]) == names[0] and SAMPLED.stratum(names[0]) == SAMPLED.stratum(names[1])
    assert ENUMERATED.normaliser_group("A[x=1]#3") == ENUMERATED.stratum("A[x=1]#3") == "A[x=1]"
