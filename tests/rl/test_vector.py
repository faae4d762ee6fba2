import gymnasium as gym
import numpy as np
import pytest
import torch

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.core.threads import apply_torch_threads

ENV_ID = "aees_gym/Synthetic-v0"


def single_env_trace(seed, kwargs, first_actions, second_actions):
    """run_seed, first obs and rewards of two consecutive episodes of one env (the second unseeded)."""
    env = gym.make(ENV_ID, **kwargs)
    trace = []
    for episode_seed, actions in ((seed, first_actions), (None, second_actions)):
        obs, info = env.reset(seed=episode_seed)
        rewards = [env.step(a)[1] for a in actions]
        trace.append((info["run_seed"], obs, rewards))
    return trace


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_copies_are_single_envs_seeded_s_plus_i_with_next_step_autoreset(mode, tiny):
    actions = (np.array([0, 8]), np.array([4, 2]), np.array([1, 1]), np.array([7, 3]))
    expected = [single_env_trace(10 + i, tiny, [actions[0][i], actions[1][i]], [actions[3][i]]) for i in range(2)]
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, **tiny)
    try:
        obs, info = envs.reset(seed=10)
        for i in range(2):
            assert info["run_seed"][i] == expected[i][0][0]
            np.testing.assert_array_equal(obs[i], expected[i][0][1])
        rewards = []
        for a in actions[:2]:
            _, reward, terminated, truncated, info = envs.step(a)
            rewards.append(reward)
        assert terminated.all() and not truncated.any()  # two windows of 20 steps end the run
        assert "final_metrics" in info
        for i in range(2):
            assert [r[i] for r in rewards] == pytest.approx(expected[i][0][2], abs=0)
        # Next-step autoreset: this action is ignored, the copy restarts with reward 0.
        obs, reward, terminated, _, info = envs.step(actions[2])
        assert (reward == 0).all() and not terminated.any()
        for i in range(2):
            assert info["run_seed"][i] == expected[i][1][0]  # continues the copy's generator
            np.testing.assert_array_equal(obs[i], expected[i][1][1])
        _, reward, _, _, _ = envs.step(actions[3])
        assert reward.tolist() == [expected[i][1][2][0] for i in range(2)]
    finally:
        envs.close()


def test_worker_processes_default_to_one_torch_thread(tiny):
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", **tiny)
    try:
        assert envs.get_attr("torch_threads") == (1, 1)
    finally:
        envs.close()
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", torch_threads=2, **tiny)
    try:
        assert envs.get_attr("torch_threads") == (2, 2)
    finally:
        envs.close()
    # Sync copies live in the main process, which keeps its own setting.
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", **tiny)
    assert envs.get_attr("torch_threads") == (torch.get_num_threads(),) * 2


def test_sb3_subproc_vec_env_with_module_qualified_id(tiny):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    expected = [single_env_trace(10 + i, tiny, [0, 8], []) for i in range(2)]
    venv = make_vec_env("aees_gym:aees_gym/Synthetic-v0", n_envs=2, seed=10, vec_env_cls=SubprocVecEnv, env_kwargs=tiny)
    try:
        assert venv.get_attr("torch_threads") == [1, 1]
        obs = venv.reset()
        for i in range(2):
            assert venv.reset_infos[i]["run_seed"] == expected[i][0][0]
            np.testing.assert_array_equal(obs[i], expected[i][0][1])
        _, first, _, _ = venv.step(np.array([0, 0]))
        obs, second, dones, infos = venv.step(np.array([8, 8]))
        assert dones.all() and all("terminal_observation" in i for i in infos)
        for i in range(2):
            assert [first[i], second[i]] == pytest.approx(expected[i][0][2], rel=1e-6)
            np.testing.assert_array_equal(obs[i], expected[i][1][1])  # same-step reset, unseeded
    finally:
        venv.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_invalid_torch_threads_are_rejected(bad):
    with pytest.raises(ValueError, match="torch_threads"):
        apply_torch_threads(bad)


@pytest.mark.filterwarnings("ignore:.*render_mode")
def test_unsupported_render_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="'ansi'"):
        gym.make(ENV_ID, render_mode="rgb_array")


def test_copies_that_end_together_stack_final_metrics_whatever_they_reached():
    # Copy 0 reaches its target at the first evaluation, copy 1 never does: the stacked infos
    # must still build (a None beside a number would not), with NaN marking "never reached".
    def make(target):
        return lambda: gym.make(ENV_ID, total_steps=40, eval_every=1, target_accuracy=target)

    envs = gym.vector.SyncVectorEnv([make(0.0), make(1.0)])
    envs.reset(seed=0)
    terminated = np.zeros(2, dtype=bool)
    while not terminated.all():
        _, _, terminated, _, infos = envs.step(np.zeros(2, dtype=np.int64))
    reached = infos["final_metrics"]["steps_to_target"]
    assert reached[0] == 20.0 and np.isnan(reached[1])
    envs.close()
