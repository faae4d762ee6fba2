import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym import Candidate
from aees_gym.envs.wrappers import ContinuousAction, MultiDiscreteAction, SelectObservation

VIEWS = {
    "multidiscrete": MultiDiscreteAction,
    "continuous": ContinuousAction,
    "select": lambda env: SelectObservation(env, ["progress", "trend", "last_reward", "lr_scale"]),
    "continuous+select": lambda env: SelectObservation(ContinuousAction(env), ["loss_level", "progress"]),
}


def make(tiny, **kwargs):
    features = ("progress", "trend", "last_reward", "loss_level", "lr_scale", "last_lr")
    return gym.make("aees_gym/Synthetic-v0", context={"features": features}, **tiny, **kwargs)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")  # the views are wrappers by design
@pytest.mark.parametrize("mode", ["index", "relative"])
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_every_view_passes_both_checkers(view, mode, tiny):
    from stable_baselines3.common.env_checker import check_env

    env = VIEWS[view](make(tiny, action_mode=mode))
    gym_check_env(env, skip_render_check=True)
    check_env(env, warn=False)


def test_multidiscrete_action_is_lr_index_and_noise_index(tiny):
    env = MultiDiscreteAction(make(tiny))
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3])
    env.reset(seed=0)
    info = env.step(np.array([2, 1]))[-1]
    assert (info["lr_multiplier"], info["noise_std"]) == (2.0, 0.005)


@pytest.mark.parametrize(
    ("action", "cell"),
    [((-1, -1), (0.5, 0.0)), ((1, 1), (2.0, 0.01)), ((0, 0), (1.0, 0.005)), ((0.6, -0.6), (2.0, 0.0))],
)
def test_snapped_continuous_action_runs_the_nearest_grid_cell(action, cell, tiny):
    env = ContinuousAction(make(tiny), snap_to_grid=True)
    env.reset(seed=0)
    info = env.step(np.asarray(action, dtype=np.float32))[-1]
    assert (info["lr_multiplier"], info["noise_std"]) == cell
    lr, noise = env.requested(action)
    assert info["requested_lr_multiplier"] == pytest.approx(lr) and info["requested_noise_std"] == pytest.approx(noise)


def test_continuous_ranges_are_configurable_and_compose_with_relative_mode(tiny):
    env = ContinuousAction(make(tiny, action_mode="relative"), log2_lr_range=(0.0, 1.0), noise_range=(0.0, 0.0))
    assert env.requested((-1, 1)) == pytest.approx((1.0, 0.0))
    env.reset(seed=0)
    obs, *_ , info = env.step(np.array([1.0, 1.0], dtype=np.float32))
    assert info["lr_scale"] == 2.0 and info["noise_std"] == 0.0  # persistent ×2 step
    info = env.step(np.array([1.0, 0.0], dtype=np.float32))[-1]
    assert info["lr_multiplier"] == 4.0
    with pytest.raises(ValueError, match="low <= high"):
        ContinuousAction(make(tiny), log2_lr_range=(1.0, -1.0))


def test_select_observation_keeps_named_features_in_order(tiny):
    full = make(tiny)
    view = SelectObservation(make(tiny), ["loss_level", "progress"])
    assert view.feature_names == ("loss_level", "progress")
    names = full.unwrapped.feature_names
    for env in (full, view):
        env.reset(seed=3)
    for _ in range(2):
        full_obs = full.step(5)[0]
        view_obs = view.step(5)[0]
        np.testing.assert_array_equal(view_obs, full_obs[[names.index("loss_level"), names.index("progress")]])
    np.testing.assert_array_equal(view.observation_space.low, [-10.0, 0.0])
    with pytest.raises(ValueError, match="unknown: \\['val_loss'\\]"):
        SelectObservation(make(tiny), ["progress", "val_loss"])


def test_action_views_need_the_discrete_env(tiny):
    with pytest.raises(TypeError, match="one action view"):
        ContinuousAction(MultiDiscreteAction(make(tiny)))


@pytest.mark.parametrize("action", [(-1, -1), (1, 1), (0, 0), (0.6, -0.6), (-0.3, 0.25)])
def test_continuous_action_runs_the_exact_decoded_candidate(action, tiny):
    env = ContinuousAction(make(tiny))
    env.reset(seed=0)
    action32 = np.asarray(action, dtype=np.float32)
    decoded = env.candidate(action32)
    info = env.step(action32)[-1]
    assert (info["lr_multiplier"], info["noise_std"]) == (decoded.lr_multiplier, decoded.noise_std)
    assert info["candidate_name"] == decoded.label
    grid = env.unwrapped.grid
    assert info["action"] == grid.nearest(decoded.lr_multiplier, decoded.noise_std)  # the cell, for logs
    # (0.6, -0.6) asks for 2 ** 0.6 ≈ 1.516 and σ = 0.002: no grid cell has these values.
    if action == (0.6, -0.6):
        assert info["lr_multiplier"] == pytest.approx(2.0**0.6) and info["noise_std"] == pytest.approx(0.002)


def test_continuous_ranges_must_lie_inside_the_grid_for_exact_candidates(tiny):
    with pytest.raises(ValueError, match=r"within the grid's range \(-1.0, 1.0\)"):
        ContinuousAction(make(tiny), log2_lr_range=(-3.0, 1.0))
    ContinuousAction(make(tiny), log2_lr_range=(-3.0, 1.0), snap_to_grid=True)  # free when snapping
    with pytest.raises(ValueError, match="momentum axis"):
        ContinuousAction(make(tiny), momentum_range=(0.0, 0.5))


def test_env_rejects_a_candidate_outside_the_grid_ranges(tiny):
    env = make(tiny)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"lr_multiplier 3.0 is outside the grid's range \[0.5, 2.0\]"):
        env.step(Candidate(3.0, 0.0))
    with pytest.raises(ValueError, match=r"noise_std 0.5 is outside the grid's range \[0.0, 0.01\]"):
        env.step(Candidate(1.0, 0.5))
    with pytest.raises(ValueError, match="no momentum axis"):
        env.step(Candidate(1.0, 0.0, 0.9))


MOMENTUM_GRID = {"lr_multipliers": [0.5, 1.0, 2.0], "noise_stds": [0.0, 0.01], "momenta": [0.0, 0.5, 0.9]}


def test_views_extend_to_the_momentum_axis(tiny):
    env = MultiDiscreteAction(make(tiny, grid=MOMENTUM_GRID))
    assert env.action_space == gym.spaces.MultiDiscrete([3, 2, 3])
    env.reset(seed=0)
    info = env.step(np.array([2, 1, 1]))[-1]
    assert (info["lr_multiplier"], info["noise_std"], info["momentum"]) == (2.0, 0.01, 0.5)
    assert info["candidate_name"] == "lr2_n0p01_m0p5" and info["momentum_index"] == 1
    cont = ContinuousAction(make(tiny, grid=MOMENTUM_GRID))
    assert cont.action_space.shape == (3,)
    cont.reset(seed=0)
    info = cont.step(np.array([0.0, -1.0, 0.0], dtype=np.float32))[-1]
    assert info["momentum"] == pytest.approx(0.45) and info["lr_multiplier"] == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
@pytest.mark.parametrize("view", [MultiDiscreteAction, ContinuousAction])
def test_momentum_views_pass_both_checkers(view, tiny):
    from stable_baselines3.common.env_checker import check_env

    env = view(make(tiny, grid=MOMENTUM_GRID))
    gym_check_env(env, skip_render_check=True)
    check_env(env, warn=False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped")
def test_sac_trains_on_exact_continuous_candidates():
    from stable_baselines3 import SAC

    env = ContinuousAction(gym.make("aees_gym/Synthetic-v0", total_steps=40, window_length=4))
    model = SAC("MlpPolicy", env, learning_starts=50, batch_size=32, train_freq=1, seed=0, device="cpu")
    model.learn(total_timesteps=300)
    assert model.num_timesteps == 300 and model.logger.name_to_value.get("train/actor_loss") is not None
    obs, _ = env.reset(seed=5)
    for _ in range(5):
        action, _ = model.predict(obs, deterministic=False)
        obs, _, terminated, _, info = env.step(action)
        decoded = env.candidate(action)
        assert info["lr_multiplier"] == decoded.lr_multiplier and info["noise_std"] == decoded.noise_std
        if terminated:
            obs, _ = env.reset()
