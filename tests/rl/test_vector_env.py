"""AEESVectorEnv: N runs in one batched computation, each sub-env the single env with the same seed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.envs.vector_env import AEESVectorEnv

ENV_ID = "aees_gym/Synthetic-v0"
MODE = "vector_entry_point"


def _single(seed, kwargs, actions, env_id=ENV_ID):
    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(seed=seed)
    steps = [env.step(a) for a in actions]
    return obs, info, steps


def test_make_vec_builds_the_batched_env(tiny):
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode=MODE, **tiny)
    assert isinstance(envs.unwrapped, AEESVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.action_space == gym.spaces.MultiDiscrete([9, 9, 9])
    assert envs.observation_space.shape == (3, len(envs.unwrapped.feature_names))
    envs.close()


@pytest.mark.parametrize("task", ["Synthetic", "Digits"])
def test_sub_env_i_reproduces_the_single_env_seeded_s_plus_i(task, tiny):
    kwargs = {"total_steps": 40, "window_length": 20} if task == "Digits" else tiny
    env_id = f"aees_gym/{task}-v0"
    actions = [np.array([4, 6, 2]), np.array([8, 0, 5])]
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode=MODE, **kwargs)
    obs, info = envs.reset(seed=10)
    steps = [envs.step(a) for a in actions]
    for i in range(3):
        s_obs, s_info, s_steps = _single(10 + i, kwargs, [a[i] for a in actions], env_id)
        assert info["run_seed"][i] == s_info["run_seed"]
        np.testing.assert_array_equal(obs[i], s_obs)
        # First window: step losses and reward within 1e-5 relative.
        np.testing.assert_allclose(steps[0][4]["step_losses"][i], s_steps[0][4]["step_losses"], rtol=1e-5)
        assert steps[0][1][i] == pytest.approx(s_steps[0][1], rel=1e-5)
        for w in range(2):
            assert steps[w][2][i] == s_steps[w][2]  # terminated
            assert steps[w][4]["candidate_name"][i] == s_steps[w][4]["candidate_name"]
        fm, s_fm = steps[1][4]["final_metrics"], s_steps[1][4]["final_metrics"]
        assert fm["val_accuracy"][i] == pytest.approx(s_fm["val_accuracy"], abs=0.02)
        assert fm["steps_done"][i] == s_fm["steps_done"] and fm["windows"][i] == s_fm["windows"]
    envs.close()


@pytest.mark.slow
def test_whole_runs_agree_statistically_over_seeds():
    # Over whole runs the rounding of the stacked computation may move single runs a little; the
    # mean final accuracy over seeds must agree with the single env's within seed noise.
    kwargs = {"total_steps": 200, "window_length": 20, "eval_every": 0}
    seeds = list(range(8))
    rng = np.random.default_rng(0)
    plan = rng.integers(0, 9, size=(10, len(seeds)))
    envs = gym.make_vec("aees_gym/Digits-v0", num_envs=len(seeds), vectorization_mode=MODE, **kwargs)
    envs.reset(seed=seeds)
    for a in plan:
        _, _, terminated, _, info = envs.step(a)
    assert terminated.all()
    batched = info["final_metrics"]["val_accuracy"]
    single = np.array([_single(s, kwargs, plan[:, i], "aees_gym/Digits-v0")[2][-1][4]["final_metrics"]["val_accuracy"] for i, s in enumerate(seeds)])
    diff = batched - single
    assert abs(diff.mean()) <= 2 * max(single.std(ddof=1) / np.sqrt(len(seeds)), 1e-3)
    assert np.abs(diff).max() < 0.05
    envs.close()


@pytest.mark.parametrize("reward", ["aees", "heldout"])
def test_one_loss_transfer_per_window_for_all_runs(host_reads, reward):
    envs = AEESVectorEnv("DigitsNoisy", 4, total_steps=40, window_length=20, eval_every=0, reward={"name": reward})
    envs.reset(seed=0)
    calls = host_reads(envs.runs.optimizer)
    _, _, terminated, _, _ = envs.step(np.array([0, 4, 5, 8]))
    assert not terminated.any()  # no end-of-run evaluation in this window
    assert calls == ["tolist"]  # the held-out losses cross with the step losses
    envs.close()


@pytest.mark.parametrize("seed", [0, 21])
def test_heldout_reward_rows_reproduce_the_single_env(seed):
    # Rows run (x2, σ .01), (x1, σ .005), (x0.5, σ .01) and (x1, σ 0) on label-noisy Digits.
    kwargs = {"total_steps": 40, "window_length": 20, "eval_every": 0, "reward": {"name": "heldout"}}
    env_id, actions = "aees_gym/DigitsNoisy-v0", np.array([8, 4, 2, 3])
    envs = gym.make_vec(env_id, num_envs=len(actions), vectorization_mode=MODE, **kwargs)
    envs.reset(seed=seed)
    _, reward, _, _, info = envs.step(actions)
    for i, action in enumerate(actions):
        _, _, s_steps = _single(seed + i, kwargs, [action], env_id)
        s_reward, s_info = s_steps[0][1], s_steps[0][4]
        assert reward[i] == pytest.approx(s_reward, rel=1e-5, abs=1e-5)
        assert set(info["reward_terms"]) - {f"_{k}" for k in s_info["reward_terms"]} == set(s_info["reward_terms"])
        for key, want in s_info["reward_terms"].items():
            assert info["reward_terms"][key][i] == pytest.approx(want, rel=1e-5, abs=1e-5), key
    envs.close()


def test_heldout_reward_without_a_reward_split_is_refused():
    with pytest.raises(ValueError, match="reward_fraction"):
        AEESVectorEnv("Digits", 2, reward={"name": "heldout"}, reward_fraction=0.0)


def test_next_step_autoreset_restarts_ended_runs_with_reward_zero(tiny):
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=MODE, **tiny)
    envs.reset(seed=10)
    envs.step(np.array([0, 8]))
    _, _, terminated, _, info = envs.step(np.array([4, 2]))
    assert terminated.all() and info["_final_metrics"].all()
    obs, reward, terminated, _, info = envs.step(np.array([1, 1]))
    assert (reward == 0).all() and not terminated.any()
    for i in range(2):
        env = gym.make(ENV_ID, **tiny)
        env.reset(seed=10 + i)
        s_obs, s_info = env.reset()  # the next unseeded episode of that copy
        assert info["run_seed"][i] == s_info["run_seed"]
        np.testing.assert_array_equal(obs[i], s_obs)
    envs.close()


def test_same_step_autoreset_puts_the_final_step_in_final_info(tiny):
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=MODE, autoreset_mode=AutoresetMode.SAME_STEP, **tiny)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=3)
    envs.step(np.array([0, 0]))
    obs, reward, terminated, _, info = envs.step(np.array([0, 0]))
    assert terminated.all() and (reward != 0).all()
    assert info["_final_info"].all() and "final_metrics" in info["final_info"]
    assert (obs[:, envs.unwrapped.feature_names.index("progress")] == 0).all()  # already the next run
    _, _, terminated, _, _ = envs.step(np.array([0, 0]))
    assert not terminated.any()
    envs.close()


def test_a_diverging_run_ends_alone_and_leaves_the_others_untouched(tiny):
    kwargs = {**tiny, "grid": {"lr_multipliers": [1.0, 1e6], "noise_stds": [0.0]}, "base_lr": 0.5}
    calm = AEESVectorEnv("Synthetic", 3, **kwargs)
    wild = AEESVectorEnv("Synthetic", 3, **kwargs)
    calm.reset(seed=0)
    wild.reset(seed=0)
    _, calm_r, calm_t, _, calm_info = calm.step(np.array([0, 0, 0]))
    _, wild_r, wild_t, _, wild_info = wild.step(np.array([0, 1, 0]))
    assert wild_t.tolist() == [False, True, False] and wild_info["diverged"].tolist() == [False, True, False]
    assert wild_r[1] == wild.row_config(1).reward.on_divergence
    assert wild_r[[0, 2]].tolist() == calm_r[[0, 2]].tolist()
    for key in ("step_losses",):
        assert wild_info[key][0] == calm_info[key][0] and wild_info[key][2] == calm_info[key][2]
    assert wild_info["final_metrics"]["diverged"][1]
    # Next step: the diverged run restarts (reward 0), the others train on as before.
    _, wild_r, _, _, _ = wild.step(np.array([0, 0, 0]))
    _, calm_r, _, _, _ = calm.step(np.array([0, 0, 0]))
    assert wild_r[1] == 0 and wild_r[[0, 2]].tolist() == calm_r[[0, 2]].tolist()


def test_an_instance_set_of_one_architecture_runs_in_one_batch():
    envs = AEESVectorEnv("Synthetic", 3, instance_set="synthetic-mix-v0", instance_descriptors=True)
    _, info = envs.reset(seed=0, options={"instance": 2})
    for i in range(3):
        env = gym.make(ENV_ID, instance_set="synthetic-mix-v0", instance_descriptors=True)
        _, s_info = env.reset(seed=i, options={"instance": 2})
        assert info["instance"][i] == s_info["instance"] and info["run_seed"][i] == s_info["run_seed"]
    obs, info = envs.reset(seed=0)  # each sub-env draws from its own shuffled order
    configs = {(envs.row_config(i).base_lr, envs.row_config(i).total_steps, envs.row_config(i).label_noise) for i in range(3)}
    assert len(configs) > 1
    steps = envs.step(np.zeros(3, dtype=np.int64))
    assert steps[4]["window_steps"].tolist() == [20, 20, 20]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AEESVectorEnv("Synthetic", 0), "num_envs must be a positive integer"),
        (lambda: AEESVectorEnv("Digits", 2, instance_set="digits-mix-v0"), "async"),
        (lambda: AEESVectorEnv("Synthetic", 2, device="cuda:9"), "device"),
        (lambda: AEESVectorEnv("Synthetic", 2, autoreset_mode="sometimes"), "autoreset_mode"),
    ],
)
def test_bad_construction_is_a_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_task_that_cannot_be_batched_names_async(monkeypatch):
    from aees_gym.tasks.batched import registry

    monkeypatch.delitem(registry._BATCHED, "Synthetic")
    with pytest.raises(ValueError, match='vectorization_mode="async"'):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=MODE)


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        envs = AEESVectorEnv("Synthetic", 2, device="cuda", total_steps=40, window_length=20)
        envs.reset(seed=0)
        assert envs.step(np.array([0, 0]))[1].shape == (2,)
    else:
        with pytest.raises(ValueError, match="device='cpu'"):
            AEESVectorEnv("Synthetic", 2, device="cuda")


@pytest.mark.parametrize(
    ("actions", "match"),
    [(np.array([0, 1, 2]), r"shape \(2,\)"), (np.array([0, 9]), r"sub-envs \[1\]"), (np.array([-1, 0]), r"sub-envs \[0\]"), (np.array([0.5, 1.0]), "integers")],
)
def test_bad_actions_are_clear_errors(actions, match, tiny):
    envs = AEESVectorEnv("Synthetic", 2, **tiny)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        envs.step(actions)


def test_step_before_reset_is_a_clear_error(tiny):
    with pytest.raises(RuntimeError, match="reset"):
        AEESVectorEnv("Synthetic", 2, **tiny).step(np.array([0, 0]))


def test_torch_threads_is_applied(tiny):
    import torch

    before = torch.get_num_threads()
    try:
        assert AEESVectorEnv("Synthetic", 2, torch_threads=2, **tiny).torch_threads == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_sb3_ppo_trains_on_the_batched_vec_env_with_exact_budget(tiny):
    from agents.sb3 import SB3Agent

    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 8, "batch_size": 32})
    agent.learn("Synthetic-v0", 256, seed=0, n_envs=16, env_kwargs=tiny, vec_env="batched", progress_bar=False)
    assert agent.model.num_timesteps == 256


def test_batched_vec_env_seeds_and_resets_in_the_same_step(tiny):
    from agents.sb3.vec import BatchedVecEnv

    venv = BatchedVecEnv("aees_gym/Synthetic-v0", 2, tiny)
    venv.seed(10)
    obs = venv.reset()
    for i in range(2):
        s_obs, s_info, _ = _single(10 + i, tiny, [])
        assert venv.reset_infos[i]["run_seed"] == s_info["run_seed"]
        np.testing.assert_array_equal(obs[i], s_obs)
    venv.step(np.array([0, 0]))
    obs, _, dones, infos = venv.step(np.array([8, 8]))
    assert dones.all() and all("terminal_observation" in i and "final_metrics" in i for i in infos)
    assert (obs[:, venv.venv.feature_names.index("progress")] == 0).all()
    masks = venv.env_method("action_masks")  # MaskablePPO's query: every candidate allowed
    assert len(masks) == 2 and all(m.shape == (9,) and m.all() for m in masks)
    venv.close()


def test_a_row_control_always_belongs_to_its_own_config_even_when_an_id_comes_back():
    # A family draws a fresh config at every reset; CPython reuses a freed object's id, so a cache keyed by
    # id alone handed a new run the control (budget, window) of a dead one and stepped it zero steps.
    import dataclasses

    import gymnasium as gym

    venv = gym.make_vec("aees_gym/Digits-v0", num_envs=2, vectorization_mode="vector_entry_point")
    base = venv.unwrapped.config
    for total in range(100, 600, 20):
        config = dataclasses.replace(base, total_steps=total)
        assert venv.unwrapped._control(config).total_steps == total
    venv.close()
