import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pulseopt import AEES

from aees_gym import EnvConfig, RunHistory
from aees_gym.core import context as ctx

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def reference_trend(last_losses, window=3, eps=1e-3):
    model = torch.nn.Linear(1, 1)
    aees = AEES(torch.optim.SGD(model.parameters(), lr=0.1), context_mode="trend", context_trend_window=window,
                context_trend_epsilon=eps)
    aees.episode_manager._episode_end_loss_history = list(last_losses)
    return aees.episode_manager._resolve_context()


@settings(max_examples=300, deadline=None)
@given(last=st.lists(finite, max_size=8), window=st.integers(1, 5), eps=st.sampled_from([0.0, 1e-3, 0.5]))
def test_trend_bucket_matches_reference(last, window, eps):
    assert ctx.trend_bucket(last, window, eps) == reference_trend(last, window, eps)


def test_trend_bucket_examples():
    assert ctx.trend_bucket([], 3) == "stable"
    assert ctx.trend_bucket([1.0], 3) == "stable"
    assert ctx.trend_bucket([5.0, 1.0, 2.0, 1.0], 3) == "stable"  # (1 - 1) / 2 over the last three
    assert ctx.trend_bucket([3.0, 2.0, 1.0], 3) == "improving"
    assert ctx.trend_bucket([1.0, 1.0005], 3) == "stable"
    assert ctx.trend_bucket([1.0, 1.01], 3) == "worsening"


@pytest.mark.parametrize("steps, phase", [(0, "early"), (33, "early"), (34, "middle"), (66, "middle"), (67, "late"), (100, "late")])
def test_phase_bucket_thirds(steps, phase):
    assert ctx.phase_bucket(steps, 100) == phase


def test_context_buckets_are_phase_major():
    assert ctx.CONTEXT_BUCKETS[:3] == ("early_improving", "early_stable", "early_worsening")
    assert len(ctx.CONTEXT_BUCKETS) == 9


histories = st.builds(
    lambda n, losses, rewards, steps, scale, acc, vloss, gn: RunHistory(
        total_steps=100, steps_done=steps, initial_loss=losses[0] if losses else None,
        first_losses=list(losses), last_losses=list(losses), mean_losses=list(losses),
        rewards=list(rewards), instabilities=[abs(x) for x in rewards], actions=[(n % 3, n % 2)] * len(rewards),
        grad_norms=list(gn), lr_scale=scale, val_accuracy=acc, val_loss=vloss,
    ),
    st.integers(0, 10),
    st.lists(st.one_of(st.floats(min_value=0, max_value=1e30), st.just(float("nan")), st.just(float("inf"))), max_size=6),
    st.lists(st.floats(min_value=-5, max_value=5), max_size=6),
    st.integers(0, 100),
    st.floats(min_value=1e-6, max_value=1e6),
    st.one_of(st.none(), st.floats(0, 1)),
    st.one_of(st.none(), st.floats(0, 1e12)),
    st.lists(st.floats(0, 1e30), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(history=histories)
def test_observation_always_inside_declared_box(history):
    config = EnvConfig(context={"features": tuple(ctx.FEATURES)}, grid={"lr_multipliers": [0.5, 1, 2], "noise_stds": [0.0, 0.01]})
    low, high = ctx.feature_bounds(config)
    obs = ctx.observation(history, config)
    assert obs.dtype == np.float32 and obs.shape == low.shape
    assert np.all(obs >= low) and np.all(obs <= high) and np.all(np.isfinite(obs))


def test_unknown_feature_is_named():
    with pytest.raises(ValueError, match="available features"):
        ctx.validate_features(["progress", "bogus"])


def test_feature_values_on_a_known_history():
    h = RunHistory(total_steps=100, steps_done=50, initial_loss=2.0, last_losses=[2.0, 1.5, 1.0], rewards=[0.3],
                   instabilities=[0.0], actions=[(2, 0)])
    config = EnvConfig()
    obs = dict(zip(config.context.features, ctx.observation(h, config), strict=True))
    assert obs["progress"] == 0.5
    assert obs["trend_improving"] == 1.0 and obs["trend_stable"] == 0.0
    assert obs["phase_middle"] == 1.0
    assert obs["last_reward"] == pytest.approx(0.3)
    assert obs["last_lr"] == 1.0 and obs["last_noise"] == 0.0
    assert obs["loss_level"] == pytest.approx(np.log(0.5))
    assert obs["trend"] == pytest.approx(-0.5 / 2.0)


def test_momentum_axis_adds_last_momentum_to_the_default_observation():
    from aees_gym import ControlConfig
    from aees_gym.core.config import DEFAULT_FEATURES

    plain = ControlConfig()
    assert plain.context.features == DEFAULT_FEATURES
    config = ControlConfig(grid={"lr_multipliers": [1.0], "noise_stds": [0.0], "momenta": [0.0, 0.5, 0.9]})
    features = config.context.features
    assert features.index("last_momentum") == features.index("last_noise") + 1
    history = RunHistory(total_steps=10)
    feature = ctx.FEATURES["last_momentum"]
    assert feature.compute(history, config) == -1.0
    history.actions.append((0, 0))
    history.positions.append((0.0, 0.0, 1.0))
    assert feature.compute(history, config) == 0.5
    assert feature.compute(history, plain) == 0.0  # no axis
    explicit = ControlConfig(grid=config.grid, context={"features": ("progress",)})
    assert explicit.context.features == ("progress",)  # an explicit feature list is kept
