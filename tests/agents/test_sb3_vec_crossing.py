"""SB3 over an instance set that crosses architectures: one batched env per architecture, one VecEnv."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="needs the 'sb3' extra")

from aees_gym.envs.instances import get_instance_set  # noqa: E402
from agents.sb3 import SB3Agent  # noqa: E402
from agents.sb3.vec import BatchedVecEnv, architecture_groups, share_envs  # noqa: E402

CHEAP = {"total_steps": 20, "window_length": 10, "eval_every": 0}


def test_share_envs_is_proportional_and_covers_every_group() -> None:
    assert share_envs(64, [6, 9, 3]) == [21, 32, 11]
    assert share_envs(3, [100, 1, 1]) == [1, 1, 1]
    assert sum(share_envs(10, [5, 5, 5])) == 10
    with pytest.raises(ValueError, match="n_envs >= 3"):
        share_envs(2, [1, 1, 1])


def test_groups_follow_the_batched_engine_and_keep_every_instance() -> None:
    groups = architecture_groups("digits-mix-v0", "train", CHEAP)
    tasks = [{i.task for i in members} for _, members in groups]
    assert sorted(t for s in tasks for t in s) == ["Digits", "DigitsCNN", "DigitsNoisy"] and all(len(s) == 1 for s in tasks)
    train = get_instance_set("digits-mix-v0").train
    assert sorted(i.name for _, members in groups for i in members) == sorted(i.name for i in train)
    # Each derived set holds its group in the asked split, so one batched env cycles through exactly those runs.
    for name, members in groups:
        assert get_instance_set(name).train == members
    # A set of one architecture is not split.
    assert architecture_groups("synthetic-mix-v0", "train", {}) == [("synthetic-mix-v0", get_instance_set("synthetic-mix-v0").train)]


def test_crossing_vec_env_steps_every_architecture_with_its_seeds() -> None:
    env = BatchedVecEnv("Digits", 6, {"instance_set": "digits-mix-v0", "split": "train", **CHEAP})
    try:
        assert sum(p.num_envs for p in env.parts) == 6 and all(p.num_envs >= 1 for p in env.parts)
        assert {p.config.task for p in env.parts} == {"Digits", "DigitsCNN", "DigitsNoisy"}
        env.seed(5)
        obs = env.reset()
        assert obs.shape == (6, *env.observation_space.shape)
        tasks = [re.split(r"[\[#]", info["instance"])[0] for info in env.reset_infos]
        assert set(tasks) == {"Digits", "DigitsCNN", "DigitsNoisy"}
        env.step_async(np.zeros(6, dtype=np.int64))
        obs2, rewards, dones, infos = env.step_wait()
        assert np.isfinite(rewards).all() and not dones.any() and obs2.shape == obs.shape
        env.step_async(np.zeros(6, dtype=np.int64))
        _, _, dones, infos = env.step_wait()  # the 2-window runs end together and restart at once
        assert dones.all() and all("terminal_observation" in i for i in infos)
        with pytest.raises(ValueError, match=r"must be in \[0, 9\)"):
            env.step_async(np.full(6, 9))
            env.step_wait()
    finally:
        env.close()


@pytest.mark.slow
def test_ppo_trains_on_the_crossing_train_split() -> None:
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 16, "batch_size": 48, "n_epochs": 1})
    agent.learn("Digits-v0", 288, seed=3, n_envs=6, vec_env="batched",
                env_kwargs={"instance_set": "digits-mix-v0", "split": "train", **CHEAP}, progress_bar=False)
    assert agent.model.num_timesteps == 288
