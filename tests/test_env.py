import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import aees_gym
from aees_gym import AEESEnv, EnvConfig, registered_tasks
from aees_gym.envs.registration import env_id

# Tasks that need files on disk are checked in their own test modules, on files those tests write.
ALL_IDS = [env_id(spec.name) for spec in registered_tasks().values() if not spec.requires_files]
# Smaller budgets only where an id is costly; the checkers run several resets and steps.
FAST = {"total_steps": 60, "window_length": 20}


def rollout(env, seed, policy=lambda i: i % 9):
    obs, info = env.reset(seed=seed)
    trace = [(obs.tolist(), None, {k: v for k, v in info.items() if k != "candidate_grid"})]
    terminated, i = False, 0
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(policy(i))
        assert not truncated
        clean = {k: v for k, v in info.items() if k not in ("candidate_grid", "final_metrics")}
        trace.append((obs.tolist(), reward, clean))
        i += 1
    metrics = {k: v for k, v in info["final_metrics"].items() if "time" not in k and "per_s" not in k and "wall" not in k}
    return trace, metrics


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_env_checker(env_id):
    env = gym.make(env_id, **FAST)
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sb3_env_checker(env_id):
    from stable_baselines3.common.env_checker import check_env

    check_env(gym.make(env_id, **FAST).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_id_runs_two_windows(env_id):
    env = gym.make(env_id, **FAST)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    for action in (0, env.action_space.n - 1):
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert -1.0 <= reward <= 1.0 and info["window_steps"] == 20


def test_same_seed_same_trajectory_different_seed_different_run():
    env = gym.make("aees_gym/Digits-v0", total_steps=300, window_length=50)
    first = rollout(env, seed=7)
    again = rollout(env, seed=7)
    fresh = rollout(gym.make("aees_gym/Digits-v0", total_steps=300, window_length=50), seed=7)
    other = rollout(env, seed=8)
    assert first == again == fresh
    assert first[0][1][1] != other[0][1][1]  # rewards differ


def test_info_contract_and_final_metrics():
    env = gym.make("aees_gym/Digits-v0", total_steps=130, window_length=50, eval_every=1)
    obs, info = env.reset(seed=0)
    assert info["candidate_grid"] == env.unwrapped.grid
    assert info["trend_bucket"] == "stable" and info["phase_bucket"] == "early"
    obs, reward, terminated, _, info = env.step(4)
    for key in ("lr_multiplier", "noise_std", "effective_lr", "loss_first", "loss_last", "loss_mean", "ema_start",
                "ema_end", "reward_terms", "trend_bucket", "phase_bucket", "context_bucket", "steps_done",
                "steps_total", "window_index", "diverged", "eval"):
        assert key in info, key
    assert info["reward_terms"]["reward"] == reward
    assert (info["lr_multiplier"], info["noise_std"]) == (1.0, 0.005)
    assert info["effective_lr"] == pytest.approx(1e-3)
    env.step(0)
    obs, reward, terminated, _, info = env.step(8)
    assert terminated and info["window_steps"] == 30  # last window is shorter
    fm = info["final_metrics"]
    assert fm["steps_done"] == 130 and fm["windows"] == 3 and not fm["diverged"]
    assert 0.0 <= fm["val_accuracy"] <= fm["best_val_accuracy"] <= 1.0
    assert len(info["eval_curve"]) == 3 and info["eval_curve"][-1]["step"] == 130
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_divergence_ends_cleanly_then_reset_trains_normally():
    env = gym.make("aees_gym/Digits-v0", optimizer="sgd", base_lr=0.1, total_steps=200, window_length=20,
                   grid={"lr_multipliers": [1.0, 1e6], "noise_stds": [0.0]}, reward={"divergence_reward": -5.0})
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    assert terminated and info["diverged"] and reward == -5.0
    assert info["final_metrics"]["diverged"]
    assert env.observation_space.contains(obs)
    fm = info["final_metrics"]
    assert math.isnan(fm["val_loss"]) and math.isnan(fm["final_train_loss"])  # NaN marks "not available"
    env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, _, info = env.step(0)
        assert not info["diverged"] and np.isfinite(reward)


@pytest.mark.parametrize("bad", [9, -1, 2.5, "a", None])
def test_invalid_actions_raise_value_error(bad):
    env = gym.make("aees_gym/Synthetic-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="mode id|out of range"):
        env.step(bad)


def test_bad_configuration_names_valid_choices():
    with pytest.raises(KeyError, match="registered tasks: .*Digits"):
        AEESEnv(task="Nope")
    with pytest.raises(KeyError, match="valid env settings"):
        gym.make("aees_gym/Digits-v0", learning_rate=0.1)
    with pytest.raises(ValueError, match="choose one of"):
        gym.make("aees_gym/Digits-v0", optimizer="lion")
    with pytest.raises(ValueError, match="duplicate"):
        gym.make("aees_gym/Digits-v0", grid={"lr_multipliers": [1.0, 1.0], "noise_stds": [0.0]})
    with pytest.raises(ValueError, match="available features"):
        gym.make("aees_gym/Digits-v0", context={"features": ["progress", "mood"]})
    with pytest.raises(gym.error.Error):
        gym.make("aees_gym/Unknown-v0")


def test_task_options_and_config_json_roundtrip():
    env = gym.make("aees_gym/Digits-v0", hidden=32, schedule="cosine", action_mode="relative")
    config = env.unwrapped.config
    assert config.options.hidden == 32
    assert EnvConfig.from_json(config.to_json()) == config
    env.reset(seed=0)
    assert env.unwrapped.training_run.model[0].out_features == 32


def test_relative_mode_and_schedules_run():
    for schedule in ("cosine", "linear", "warmup_linear", "step", "exponential"):
        env = gym.make("aees_gym/Synthetic-v0", schedule=schedule, action_mode="relative", total_steps=40,
                       context={"features": ["progress", "lr_scale", "grad_norm", "val_accuracy"]}, eval_every=1)
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(8)
        assert env.observation_space.contains(obs)
        assert obs[1] > 0  # lr_scale went up


def test_import_pulls_in_no_optional_dependency():
    code = (
        "import sys, aees_gym, gymnasium as gym; gym.make('aees_gym/Digits-v0');"
        "bad=[m for m in ('stable_baselines3','torchvision','transformers','datasets','matplotlib','ray','agents','sklearn','scipy','pandas') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_string_entry_point_works_in_a_spawned_process():
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        reward = pool.apply(_spawned_step, ("aees_gym:aees_gym/Synthetic-v0",))
    assert np.isfinite(reward)


def _spawned_step(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    return env.step(0)[1]


def test_registration_is_idempotent():
    before = len(gym.registry)
    aees_gym.register_all()
    assert len(gym.registry) == before
