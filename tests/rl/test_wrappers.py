import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import aees_gym  # noqa: F401  (registers the ids)
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
def test_continuous_action_runs_the_nearest_grid_cell(action, cell, tiny):
    env = ContinuousAction(make(tiny))
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
