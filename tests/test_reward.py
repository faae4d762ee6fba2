import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulseopt.episode import _compute_episode_loss_ema
from pulseopt.reward import NormalizedLossImprovementReward
from pulseopt.types import EpisodeSummary

from aees_gym import RewardConfig, compute_reward, register_reward, registered_rewards
from aees_gym.core.reward import RewardTerms, aees_reward

losses_strategy = st.lists(
    st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=120
)


def reference_terms(losses, lam, clip_min=-1.0, clip_max=1.0):
    ema_start, ema_end = _compute_episode_loss_ema(list(losses), 0.1)
    summary = EpisodeSummary(
        episode_index=0, mode_id=0, mode_name="m", start_step=0, end_step=len(losses) - 1, steps=len(losses),
        loss_start=losses[0], loss_end=losses[-1], ema_abs_loss_delta=0.0, ema_loss_start=ema_start,
        ema_loss_end=ema_end, step_losses=tuple(losses),
    )
    fn = NormalizedLossImprovementReward(reward_instability_lambda=lam, reward_clip_min=clip_min, reward_clip_max=clip_max)
    reward = fn.compute(summary)
    return reward, fn.get_last_details(), (ema_start, ema_end)


@settings(max_examples=300, deadline=None)
@given(losses=losses_strategy, lam=st.sampled_from([0.0, 0.1, 1.0, 3.7]))
def test_aees_reward_is_bit_identical_to_reference(losses, lam):
    ours = compute_reward(losses, RewardConfig(instability_lambda=lam))
    reward, details, (ema_start, ema_end) = reference_terms(losses, lam)
    assert ours.reward == reward
    assert ours.base == details["reward_base"]
    assert ours.instability == details["reward_instability"]
    assert ours.penalty == details["reward_penalty"]
    assert ours.unclipped == details["reward_final_unclipped"]
    assert (ours.ema_start, ours.ema_end) == (ema_start, ema_end)


@given(loss=st.floats(min_value=1e-6, max_value=1e3))
def test_one_step_window_gives_zero(loss):
    terms = compute_reward([loss], RewardConfig(instability_lambda=0.5))
    assert terms.base == 0.0 and terms.instability == 0.0 and terms.reward == 0.0


def test_reward_is_clipped_and_terms_consistent():
    terms = compute_reward([10.0] + [0.001] * 50, RewardConfig())
    assert terms.unclipped > 1.0 and terms.reward == 1.0
    terms = compute_reward([1.0, 5.0, 1.0, 5.0], RewardConfig(instability_lambda=0.1))
    assert math.isclose(terms.unclipped, terms.base - terms.penalty)
    assert math.isclose(terms.penalty, 0.1 * terms.instability)
    assert terms.instability == pytest.approx(4.0 / 9.0, rel=1e-6)


def test_smoothed_start_is_not_one_minibatch():
    losses = [5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    raw = compute_reward(losses, RewardConfig(name="aees"))
    smooth = compute_reward(losses, RewardConfig(name="smoothed", smoothing_steps=5))
    assert raw.ema_start == 5.0
    assert smooth.ema_start == pytest.approx(9.0 / 5.0)
    assert smooth.reward < raw.reward


def test_registry_accepts_user_rewards_and_rejects_unknown_names():
    def negative_last_loss(losses, config):
        return RewardTerms(-losses[-1], 0.0, 0.0, 0.0, -losses[-1], losses[0], losses[-1])

    register_reward("neg_last", negative_last_loss, overwrite=True)
    assert "neg_last" in registered_rewards()
    assert compute_reward([1.0, 0.25], RewardConfig(name="neg_last")).reward == -0.25
    with pytest.raises(KeyError, match="aees"):
        compute_reward([1.0], RewardConfig(name="nope"))
    with pytest.raises(ValueError, match="already registered"):
        register_reward("aees", negative_last_loss)
    assert aees_reward([2.0, 1.0], RewardConfig()).reward > 0


def test_non_positive_loss_has_a_clear_error():
    with pytest.raises(ValueError, match="positive losses"):
        compute_reward([-1.0, -2.0], RewardConfig())
    with pytest.raises(ValueError, match="ema_alpha"):
        RewardConfig(ema_alpha=0.0)
