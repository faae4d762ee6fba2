"""Control tracks (relative LR scale, Box exact candidates) on one env and on the batched env."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.core.control import EpisodeControl
from aees_gym.envs.tracks import (
    CONTROLLER_FEATURES,
    CONTROLLER_FEATURES_WITH_LR,
    RELATIVE_LR_BOUNDS,
    TRACKS,
    ContinuousVectorAction,
    make_track_env,
    make_track_vector_env,
    track_overrides,
)

DIGITS = {"total_steps": 60, "window_length": 20, "reward": {"name": "heldout"}, "torch_threads": 1}
ACTIONS = {
    "discrete": [np.array([4, 0, 9]), np.array([1, 6, 4]), np.array([4, 3, 2])],
    "box": [np.array([[1.0, -1.0], [-0.5, 0.3], [0.2, 1.0]]), np.array([[1.0, -1.0], [1.0, -1.0], [-1.0, 0.0]]),
            np.array([[0.0, 0.0], [0.7, -0.2], [-0.3, -1.0]])],
}


@pytest.mark.parametrize("track", sorted(TRACKS))
def test_batched_sub_env_i_is_the_single_env_with_the_same_seed_and_actions(track):
    venv = make_track_vector_env("Digits", 3, track, **DIGITS)
    obs, _ = venv.reset(seed=10)
    actions = ACTIONS[TRACKS[track].action]
    steps = [venv.step(a) for a in actions]
    for i in range(3):
        env = make_track_env("Digits-v0", track, **DIGITS)
        s_obs, _ = env.reset(seed=10 + i)
        s_steps = [env.step(a[i]) for a in actions]
        np.testing.assert_array_equal(obs[i], s_obs)
        np.testing.assert_allclose(steps[0][4]["step_losses"][i], s_steps[0][4]["step_losses"], rtol=1e-5)
        for w in range(3):
            info, s_info = steps[w][4], s_steps[w][4]
            assert info["lr_multiplier"][i] == pytest.approx(s_info["lr_multiplier"], rel=1e-12)
            assert info["lr_scale"][i] == pytest.approx(s_info["lr_scale"], rel=1e-12)
            assert info["noise_std"][i] == pytest.approx(s_info["noise_std"], rel=1e-12)
            assert steps[w][2][i] == s_steps[w][2]
        # Later windows drift only by float rounding of the stacked computation.
        np.testing.assert_allclose(steps[1][0][i], s_steps[1][0], rtol=1e-3, atol=1e-4)
        env.close()
    venv.close()


@pytest.mark.parametrize("track", sorted(TRACKS))
def test_the_scale_is_persistent_and_clamped_to_the_stated_bounds(track):
    venv = make_track_vector_env("Synthetic", 2, track, total_steps=8, window_length=1, n_train=256, n_val=128, torch_threads=1)
    venv.reset(seed=0)
    up = np.array([[1.0, -1.0]] * 2) if TRACKS[track].action == "box" else np.array([8, 8])  # ×2 each window (cell 8: ×2, noise 0)
    scales = [venv.step(up)[4]["lr_scale"][0] for _ in range(7)]
    assert scales[:6] == [2.0**k for k in range(1, 7)]
    assert scales[6] == RELATIVE_LR_BOUNDS[1] == 64.0  # clamped, not 128
    venv.close()


def test_heldout_features_read_the_reward_validation_loss():
    # With the heldout reward, reward_terms' ema_start/ema_end are the reward-validation losses at the window edges.
    env = make_track_env("Digits-v0", "relative", **DIGITS)
    obs, _ = env.reset(seed=3)
    names = list(env.unwrapped.feature_names)
    assert names == list(CONTROLLER_FEATURES) and obs[names.index("heldout_level")] == 0.0
    first = env.step(2)[4]["reward_terms"]
    obs, *_, info = env.step(2)
    level = math.log(info["reward_terms"]["ema_end"] / first["ema_start"])
    assert obs[names.index("heldout_level")] == pytest.approx(level, rel=1e-5)
    assert obs[names.index("heldout_trend")] != 0.0 and obs[names.index("grad_norm_trend")] != 0.0
    env.close()


def test_heldout_features_are_measured_under_the_aees_reward_too():
    env = make_track_env("Digits-v0", "relative", **{**DIGITS, "reward": {"name": "aees"}})
    env.reset(seed=3)
    obs, *_ = env.step(2)
    assert obs[list(env.unwrapped.feature_names).index("heldout_level")] != 0.0
    env.close()


def test_box_actions_decode_to_the_same_exact_candidates_as_the_single_view():
    venv = make_track_vector_env("Synthetic", 2, "continuous", total_steps=40, window_length=20, n_train=256, n_val=128)
    assert isinstance(venv, ContinuousVectorAction) and venv.single_action_space.shape == (2,)
    venv.reset(seed=0)
    info = venv.step(np.array([[1.0, -1.0], [-1.0, 1.0]]))[4]
    assert list(info["lr_multiplier"]) == [2.0, 0.5] and list(info["noise_std"]) == [0.0, 0.01]
    venv.close()


def test_a_track_setting_cannot_be_overridden_silently():
    with pytest.raises(ValueError, match="fixes \\['action_mode'\\]"):
        make_track_vector_env("Synthetic", 2, "relative", action_mode="index")
    with pytest.raises(KeyError, match="choose one of"):
        track_overrides("absolute")


def test_heldout_features_without_a_heldout_batch_are_refused():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="reward_eval"):
        EpisodeControl(torch.optim.SGD(model.parameters(), lr=0.1), total_steps=10, window_length=5, seed=0, **track_overrides("relative"))


def test_the_documented_example_runs(capsys):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "environments.md").read_text()
    code = page.split("## Control tracks for learned controllers")[1].split("```python")[1].split("```")[0]
    exec(compile(code, "docs/environments.md", "exec"), {})
    assert "[4. 4. 4. 4.]" in capsys.readouterr().out  # two ×2 steps of the persistent scale


def test_the_continuous_lr_track_observes_each_rows_own_base_lr_on_a_family():
    from aees_gym.envs.family_vector import FamilyVectorEnv

    assert CONTROLLER_FEATURES_WITH_LR == (*CONTROLLER_FEATURES, "run_log_lr")
    venv = FamilyVectorEnv("MLP", 16, instance_set="digits-mlp-v1", split="train", reward={"name": "heldout"}, torch_threads=1,
                           **track_overrides("continuous-lr"))
    obs, _ = venv.reset(seed=0)
    assert venv.single_observation_space.shape == (len(CONTROLLER_FEATURES_WITH_LR),)
    expected = [min(max((math.log10(venv.parts[p].row_config(r).base_lr) + 3.0) / 2.0, -1.0), 1.0) for p, r in venv.rows]
    np.testing.assert_allclose(obs[:, -1], expected, rtol=1e-6)
    assert len(set(np.round(obs[:, -1], 4))) > 4  # the train distribution's base LRs differ from row to row
    venv.close()
