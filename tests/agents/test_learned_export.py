"""Exporting an SB3 policy to the weights-only MLP file reproduces its deterministic actions."""

from __future__ import annotations

import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.envs.tracks import make_track_env
from agents.learned_policy import MLPPolicy, export_sb3, load_policy, save_policy
from agents.sb3.algorithms import algorithm_class, algorithm_spec

TINY = {"total_steps": 40, "window_length": 10, "n_train": 256, "n_val": 128, "torch_threads": 1}
CASES = [
    ("ppo", "relative", {"n_steps": 16, "batch_size": 16}, {"net_arch": {"pi": [16, 16], "vf": [16]}}),
    ("ppo", "continuous", {"n_steps": 16, "batch_size": 16}, {"net_arch": {"pi": [16], "vf": [16]}}),
    ("a2c", "relative", {"n_steps": 8}, {"net_arch": {"pi": [16], "vf": [16]}}),
    ("dqn", "relative", {"learning_starts": 8, "batch_size": 8}, {"net_arch": [16, 16]}),
    ("qrdqn", "relative", {"learning_starts": 8, "batch_size": 8}, {"net_arch": [16], "n_quantiles": 5}),
    ("sac", "continuous", {"learning_starts": 8, "batch_size": 8}, {"net_arch": [16, 16]}),
    ("td3", "continuous", {"learning_starts": 8, "batch_size": 8}, {"net_arch": [16]}),
]


def _trained(algo, track, algo_kwargs, policy_kwargs):
    env = make_track_env("Synthetic-v0", track, **TINY)
    cls = algorithm_class(algorithm_spec(algo))
    model = cls("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=policy_kwargs, **algo_kwargs)
    model.learn(32)  # a few real updates, so the weights are not the initial ones
    return model, env


@pytest.mark.parametrize(("algo", "track", "algo_kwargs", "policy_kwargs"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_export_then_load_reproduces_the_sb3_deterministic_actions(algo, track, algo_kwargs, policy_kwargs, tmp_path):
    model, env = _trained(algo, track, algo_kwargs, policy_kwargs)
    env.observation_space.seed(0)
    obs = np.stack([env.observation_space.sample() for _ in range(256)])
    path = save_policy(export_sb3(model), tmp_path / "p.npz", {"algo": algo})
    policy, provenance = load_policy(path)
    assert provenance == {"algo": algo} and path.stat().st_size < 1_000_000
    want, _ = model.predict(obs, deterministic=True)
    got = policy.act(obs)
    if policy.discrete:
        np.testing.assert_array_equal(got, want)
        assert len(set(want.tolist())) > 1 or algo in ("dqn", "qrdqn")  # a real policy, not one constant action
    else:
        np.testing.assert_allclose(got, want, atol=1e-5)
    env.close()


def test_a_file_with_pickled_objects_is_refused(tmp_path):
    policy = MLPPolicy((np.ones((2, 3), np.float32),), (np.zeros(2, np.float32),), ("none",), "argmax")
    path = save_policy(policy, tmp_path / "p.npz", {})
    np.savez(path, layer0_weight=np.array([{"x": 1}], dtype=object), layer0_bias=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="not a policy this version can read"):
        load_policy(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Export it again"):
        load_policy(path)


def test_bad_layer_chains_and_sizes_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="do not chain"):
        MLPPolicy((np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)), (np.zeros(2, np.float32),) * 2, ("relu", "none"), "argmax")
    big = MLPPolicy((np.random.default_rng(0).normal(size=(600, 600)).astype(np.float32),), (np.zeros(600, np.float32),), ("none",), "argmax")
    with pytest.raises(ValueError, match="more than 1,000,000"):
        save_policy(big, tmp_path / "big.npz", {})
    assert not (tmp_path / "big.npz").exists()
