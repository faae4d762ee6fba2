"""SB3's per-env calls on the batched VecEnv: get_attr/env_method reach one env each, as on any VecEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from agents.sb3.vec import BatchedVecEnv

TINY = {"total_steps": 40, "window_length": 10, "eval_every": 0}


@pytest.fixture
def venv():
    env = BatchedVecEnv("Synthetic", 3, dict(TINY))
    yield env
    env.close()


def test_get_attr_gives_each_env_its_own_values(venv) -> None:
    specs = venv.get_attr("spec")
    assert len(specs) == 3 and all(s is not None and s.id == "aees_gym/Synthetic-v0" for s in specs)
    assert specs[0].kwargs["total_steps"] == 40  # the env's settings travel with its spec
    assert venv.get_attr("observation_space", indices=1) == [venv.observation_space]
    assert [c.total_steps for c in venv.get_attr("config", indices=[0, 2])] == [40, 40]
    assert venv.get_attr("render_mode") == [None, None, None]
    assert len(venv.get_attr("feature_names", indices=[2])[0]) == venv.observation_space.shape[0]  # shared by the rows


def test_env_method_calls_each_env_once_and_only_the_chosen_ones(venv) -> None:
    venv.reset()
    masks = venv.env_method("action_masks", indices=[0, 2])
    assert len(masks) == 2 and all(m.all() and m.shape == (venv.action_space.n,) for m in masks)
    # Resetting env 1 with seed 5 restarts only that run, as the single env reset with seed 5.
    venv.step(np.zeros(3, dtype=np.int64))
    before = [c.total_steps for c in venv.get_attr("config")]
    ((obs, info),) = venv.env_method("reset", seed=5, indices=1)
    single_obs, _ = gym.make("aees_gym/Synthetic-v0", **TINY).reset(seed=5)
    np.testing.assert_allclose(obs, single_obs, rtol=1e-5)
    assert venv.reset_infos[1] is info and [c.total_steps for c in venv.get_attr("config")] == before
    obs_after, _, _, infos = venv.step(np.zeros(3, dtype=np.int64))
    assert infos[1]["steps_done"] == 10 and infos[0]["steps_done"] == 20  # env 1 restarted, env 0 went on
    with pytest.raises(AttributeError, match="batched env as a whole"):
        venv.env_method("step_rows", {}, indices=0)
