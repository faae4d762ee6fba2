import dataclasses
import itertools
import math

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the ids and the built-in families)
from aees_gym.envs.families import (
    CENTRE_LR,
    SEED_RANGES,
    InstanceFamily,
    architecture_menu,
    get_family,
    register_family,
    registered_families,
)
from aees_gym.envs.family_vector import FamilyVectorEnv, share_rows

BUILT_IN = sorted(n for n, f in registered_families().items() if f.description != "tests only")
IN_DISTRIBUTION = [n for n in BUILT_IN if registered_families()[n].ood_of is None]
# A seconds-cheap family for real env runs: synthetic data, two architectures, 2-3 windows of 5 steps.
TINY = register_family(InstanceFamily(
    "tiny-test-v1", "tests only", "MLP",
    architecture_menu(dataset=[{"dataset": "synthetic", "separation": 1.0}], width=[8], depth=[1, 2], batch_size=[16], optimizer=["adamw", "sgd"]),
    windows=(2, 3), window_length=5, n_tuning=3, n_test=6, seed=5,
), overwrite=True)


def _within_ranges(family, inst):
    o = inst.env_overrides
    lo, hi = family.lr_range(o["optimizer"])
    windows = o["total_steps"] / family.window_length
    arch = family.architectures[family.architecture_index(o)]
    return (lo * (1 - 1e-3) <= o["base_lr"] <= hi * (1 + 1e-3) and family.label_noise[0] <= o["label_noise"] <= family.label_noise[1]
            and windows == int(windows) and family.windows[0] <= windows <= family.windows[1]
            and all(o[k] == v for k, v in arch))


@pytest.mark.parametrize("name", IN_DISTRIBUTION)
def test_ten_thousand_training_draws_are_distinct_reproducible_in_range_and_never_held_out(name):
    family = get_family(name)
    draws = list(itertools.islice(family.train_draws(seed=3), 10_000))
    configs = [i.configuration for i in draws]
    assert len(set(configs)) == len(configs)
    assert not set(configs) & family.held_out_configurations()
    assert all(SEED_RANGES["train"][0] <= i.seed < SEED_RANGES["train"][1] for i in draws)
    assert all(_within_ranges(family, i) for i in draws)
    assert [i.configuration for i in itertools.islice(family.train_draws(seed=3), 50)] == configs[:50]
    assert [i.configuration for i in itertools.islice(family.train_draws(seed=4), 50)] != configs[:50]
    # The draws cover the axes: every architecture, and base LRs far off the optimizer's usual one in both directions.
    assert {family.architecture_index(i.env_overrides) for i in draws} == set(range(len(family.architectures)))
    ratios = [i.env_overrides["base_lr"] / CENTRE_LR[i.env_overrides["optimizer"]] for i in draws]
    assert min(ratios) < 0.05 and max(ratios) > 20


@pytest.mark.parametrize("name", BUILT_IN)
def test_fixed_splits_are_large_disjoint_in_range_and_the_same_from_the_definition(name):
    family = get_family(name)
    test, tuning = family.test, family.tuning
    assert len(test) >= 60 and len(tuning) >= 30
    for split, instances in (("test", test), ("tuning", tuning)):
        lo, hi = SEED_RANGES[split]
        assert all(lo <= i.seed < hi for i in instances) and all(_within_ranges(family, i) for i in instances)
        assert len({i.configuration for i in instances}) == len(instances)
    assert not {i.configuration for i in test} & {i.configuration for i in tuning}
    assert not {i.seed for i in test} & {i.seed for i in tuning}
    rebuilt = dataclasses.replace(family)  # a fresh object: nothing cached, the definition alone decides
    assert rebuilt.test == test and rebuilt.tuning == tuning
    assert dataclasses.replace(family, seed=family.seed + 1).test != test


def test_seed_ranges_are_disjoint():
    spans = sorted(SEED_RANGES.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)) and spans[-1][1] <= 2**31 - 1


@pytest.mark.parametrize("name", [n for n in BUILT_IN if registered_families()[n].ood_of])
def test_ood_family_lies_outside_its_parent_on_the_axis_it_names(name):
    ood = get_family(name)
    parent = get_family(ood.ood_of)
    assert "train" not in ood.splits and ood.ood_axis
    parent_archs, ood_archs = set(parent.architectures), set(ood.architectures)
    assert not parent_archs & ood_archs
    # Every OOD architecture differs from every parent one on the same setting(s): the axis named.
    changed = {k for a in ood_archs for b in parent_archs for k, v in a if dict(b).get(k) != v}
    parent_values = {k: {dict(a).get(k) for a in parent_archs} for k in changed}
    outside = [k for k in changed if all(dict(a).get(k) not in parent_values[k] for a in ood_archs)]
    assert outside and all(k in ood.ood_axis.lower() or k == "dataset" and "data set" in ood.ood_axis for k in outside)
    # ... and the other axes keep the parent's ranges.
    assert (ood.lr_span, ood.label_noise, ood.windows, ood.window_length) == (parent.lr_span, parent.label_noise, parent.windows, parent.window_length)


def test_single_env_draws_a_fresh_instance_each_reset_reproducibly():
    def names_and_configs(seed, n=200):
        env = gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1", split="train")
        out = []
        for k in range(n):
            _, info = env.reset(seed=seed if k == 0 else None)
            out.append((info["instance"], info["run_seed"], env.unwrapped.config.base_lr, env.unwrapped.config.label_noise,
                        env.unwrapped.config.total_steps, env.unwrapped.config.options))
        return out

    first = names_and_configs(7)
    assert first == names_and_configs(7) and first[:10] != names_and_configs(8, 10)
    assert len({row[1:] for row in first}) == len(first)
    expected = list(itertools.islice(TINY.train_draws(seed=7), 3))
    assert [row[0] for row in first[:3]] == [i.name for i in expected]
    assert [row[2] for row in first[:3]] == [i.env_overrides["base_lr"] for i in expected]


def test_a_drawn_instance_replays_the_plain_env_run():
    env = gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1", split="train")
    obs, info = env.reset(seed=11)
    inst = next(TINY.train_draws(seed=11))
    plain = gym.make(inst.env_id, **inst.env_overrides)
    plain_obs, plain_info = plain.reset(seed=inst.seed)
    np.testing.assert_array_equal(obs, plain_obs)
    assert info["run_seed"] == plain_info["run_seed"] and env.step(4)[1] == plain.step(4)[1]


def test_fixed_split_instances_are_chosen_by_name():
    env = gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1", split="test")
    inst = TINY.test[2]
    _, info = env.reset(seed=0, options={"instance": inst.name})
    assert info["instance"] == inst.name and env.unwrapped.config.base_lr == inst.env_overrides["base_lr"]


def test_vector_env_runs_one_batched_env_per_architecture_and_rows_replay_single_runs():
    venv = gym.make_vec("aees_gym/MLP-v0", num_envs=6, vectorization_mode="vector_entry_point", instance_set="tiny-test-v1")
    assert isinstance(venv, FamilyVectorEnv) and len(venv.parts) == len(TINY.architectures) == 4
    _, infos = venv.reset(seed=20)
    _, rewards, _, _, step_infos = venv.step(np.full(6, 4))
    for i, (p, _row) in enumerate(venv.rows):
        single = gym.make("aees_gym/MLP-v0", instance_set=f"tiny-test-v1@arch{p}", split="train")
        _, info = single.reset(seed=20 + i)
        assert info["instance"] == infos["instance"][i]
        _, reward, *_ , single_info = single.step(4)
        np.testing.assert_allclose(step_infos["step_losses"][i], single_info["step_losses"], rtol=1e-5)
        assert math.isclose(rewards[i], reward, rel_tol=1e-4, abs_tol=1e-6)
    ended = 0
    for _ in range(8):  # runs of 2-3 windows end and restart on their own
        *_, terminated, _, _ = venv.step(np.full(6, 4))
        ended += int(terminated.sum())
    assert ended >= 6


def test_share_rows_covers_every_architecture():
    assert share_rows(6, [1, 1, 1, 1]) == [2, 2, 1, 1] and sum(share_rows(64, [5, 9, 2])) == 64
    with pytest.raises(ValueError, match="num_envs >= 4"):
        share_rows(3, [1, 1, 1, 1])


def test_errors_name_the_valid_choices():
    with pytest.raises(KeyError, match="registered families: .*digits-mlp-v1"):
        get_family("digits-mlp-v9")
    with pytest.raises(KeyError, match="registered families"):
        gym.make("aees_gym/MLP-v0", instance_set="no-such-family-v1")
    with pytest.raises(ValueError, match=r"choose one of \['train', 'tuning', 'test'\]"):
        gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1", split="validation")
    with pytest.raises(ValueError, match="no train split; train on 'digits-mlp-v1'"):
        get_family("digits-mlp-mnist-ood-v1").split("train")
    with pytest.raises(ValueError, match="drawn afresh"):
        TINY.split("train")
    with pytest.raises(ValueError, match="runs task 'MLP'; make it from aees_gym/MLP-v0"):
        gym.make("aees_gym/Digits-v0", instance_set="tiny-test-v1")
    env = gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1")
    with pytest.raises(ValueError, match="split='tuning' or 'test'"):
        env.reset(seed=0, options={"instance": 0})
    with pytest.raises(KeyError, match=r"arch<k>', k in 0..3"):
        get_family("tiny-test-v1@part2")
    with pytest.raises(ValueError, match="architectures 0..3, not 9"):
        get_family("tiny-test-v1@arch9")
    with pytest.raises(ValueError, match="cannot be overridden"):
        gym.make("aees_gym/MLP-v0", instance_set="tiny-test-v1", base_lr=0.1)
    with pytest.raises(ValueError, match="optimizer of"):
        InstanceFamily("bad-v1", "", "MLP", architecture_menu(dataset=["digits"], optimizer=["lion"]))
    with pytest.raises(ValueError, match="not registered"):
        register_family(InstanceFamily("orphan-v1", "", "MLP", TINY.architectures, ood_of="nothing-v1"))


def test_docs_example_runs_and_every_family_is_documented():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "environments.md").read_text()
    section = page.split("## Instance families", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/environments.md", "exec"), namespace)  # the page's own example, as a reader runs it
    assert namespace["obs"].shape == (32, 13) and namespace["info"]["instance"] == "digits-mlp-v1#train1"
    for name, family in registered_families().items():
        if family.description != "tests only":  # test modules register their own tiny families
            assert f"### `{name}`" in section and f"{len(family.test)} test instances" in section


def test_cli_list_names_every_family_with_its_splits(capsys):
    from aees_gym.cli import main

    assert main(["list", "--json"]) == 0
    import json

    listed = json.loads(capsys.readouterr().out)["families"]
    assert listed["digits-mlp-v1"]["splits"] == {"train": "drawn at every reset", "tuning": 32, "test": 64}
    assert listed["digits-mlp-mnist-ood-v1"]["ood_of"] == "digits-mlp-v1" and "train" not in listed["digits-mlp-mnist-ood-v1"]["splits"]


def test_a_registry_refuses_a_different_object_under_a_taken_name_and_accepts_the_same_one():
    from aees_gym.envs.families import get_family, register_family
    from aees_gym.envs.instances import get_instance_set, register_instance_set
    from aees_gym.envs.transfer import get_transfer_set, register_transfer_set

    for get, register, name, kind in ((get_family, register_family, "digits-mlp-v1", "family"),
                                      (get_instance_set, register_instance_set, "digits-budget-v0", "instance set"),
                                      (get_transfer_set, register_transfer_set, "mnist-5k-cnn-v1", "transfer set")):
        existing = get(name)
        assert register(existing) is existing  # registering the same object again (a module imported twice) is fine
        changed = dataclasses.replace(existing, description=existing.description + " (changed)")
        with pytest.raises(ValueError, match=f"A different {kind} named '{name}' exists"):
            register(changed)
        assert get(name) is existing
