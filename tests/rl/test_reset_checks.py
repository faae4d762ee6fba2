"""Vector envs and instance sets check reset(seed=..., options=...) like the single env does."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the env ids)

SMALL = {"total_steps": 40, "window_length": 20}
ENV_ID = "aees_gym/Synthetic-v0"


@pytest.fixture(scope="module")
def vec() -> Any:
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    yield envs
    envs.close()


@pytest.mark.parametrize(("seed", "error", "match"), [
    ("3", TypeError, r"seed must be None, a non-negative integer or a list of 2 of them \(one per sub-env\), got the string '3'"),
    (2.0, TypeError, r"seed must be None, a non-negative integer or a list of 2 .*got 2\.0 of type float"),
    (True, TypeError, r"seed must be None, a non-negative integer or a list of 2 .*got True"),
    (-1, ValueError, r"seed must be a non-negative integer or None, got -1"),
    ([1.5, 2], TypeError, r"seed\[0\] must be a non-negative integer or None, got 1\.5"),
    (["1", 2], TypeError, r"seed\[0\] must be a non-negative integer or None, got the string '1'"),
    ([1, -2], ValueError, r"seed\[1\] must be a non-negative integer or None, got -2"),
    ([1, 2, 3], ValueError, r"A list of seeds needs one seed per sub-env \(2\), got 3: pass 2 seeds, one int or None"),
])
def test_vector_reset_checks_seeds(vec: Any, seed: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        vec.reset(seed=seed)


@pytest.mark.parametrize(("options", "error", "match"), [
    ([("reset_mask", 1)], TypeError, r"reset options must be a dict \(or None\), got .* of type list; the options are 'reset_mask'"),
    ("reset_mask", TypeError, r"reset options must be a dict \(or None\), got 'reset_mask' of type str"),
    ({1: 2}, TypeError, r"reset options keys must be strings, got 1"),
    ({"instance": 0}, ValueError, r"Unknown reset options \['instance'\]; only 'reset_mask'"),
])
def test_vector_reset_checks_options(vec: Any, options: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        vec.reset(seed=0, options=options)


def test_a_vector_reset_after_refused_ones_is_the_seeded_one(vec: Any) -> None:
    first, _ = vec.reset(seed=[5, 6])
    with pytest.raises(TypeError):
        vec.reset(seed=[5.0, 6.0])
    again, _ = vec.reset(seed=np.array([5, 6]))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"seed": "3"}, TypeError, r"seed must be a non-negative integer or None, got the string '3'"),
    ({"seed": 1.0}, TypeError, r"seed must be a non-negative integer or None, got 1\.0"),
    ({"options": ["instance"]}, TypeError, r"reset options must be a dict \(or None\), got \['instance'\] of type list; with instance_set"),
])
def test_single_env_reset_checks_seed_and_options(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    env = gym.make(ENV_ID, **SMALL)
    with pytest.raises(error, match=match):
        env.reset(**kwargs)


def test_instance_set_envs_check_options_the_same_way() -> None:
    small = {"n_train": 256, "n_val": 128}  # instance sets fix the budget; data size is free to shrink
    env = gym.make(ENV_ID, instance_set="synthetic-mix-v0", **small)
    with pytest.raises(TypeError, match=r"reset options must be a dict"):
        env.reset(seed=0, options=[("instance", 0)])
    with pytest.raises(ValueError, match=r"Unknown reset options \['x'\]"):
        env.reset(seed=0, options={"instance": 0, "x": 1})
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", instance_set="synthetic-mix-v0", **small)
    with pytest.raises(ValueError, match=r"Unknown reset options \['x'\]"):
        envs.reset(seed=0, options={"instance": 0, "x": 1})
    with pytest.raises(TypeError, match=r"seed\[1\] must be a non-negative integer"):
        envs.reset(seed=[0, "1"])
    _, info = envs.reset(seed=[0, 1], options={"instance": 0})
    assert list(info["instance"]) == [info["instance"][0]] * 2
