"""The batched env's momentum axis and selective freezing: each sub-env is the single env with its seed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym import make_config
from aees_gym.tasks.batched import BatchedClassificationRuns, batching_problem

ENV_ID = "aees_gym/Synthetic-v0"
GRID = {"lr_multipliers": [0.5, 1.0, 2.0], "noise_stds": [0.0, 0.01], "momenta": [0.0, 0.9]}
# Action = (lr_idx * 2 + noise_idx) * 2 + momentum_idx: momentum 0 between nonzero windows, noise on and off.
ACTIONS = [np.array([3, 9, 6]), np.array([10, 4, 2]), np.array([7, 1, 11])]


def _compare(kwargs, seed=10, n=3):
    envs = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    envs.reset(seed=seed)
    batched = [envs.step(a) for a in ACTIONS]
    frozen_seen = []
    for i in range(n):
        env = gym.make(ENV_ID, **kwargs)
        env.reset(seed=seed + i)
        for w, actions in enumerate(ACTIONS):
            obs, reward, terminated, _, info = env.step(int(actions[i]))
            got = batched[w]
            np.testing.assert_allclose(got[4]["step_losses"][i], info["step_losses"], rtol=1e-5 if w == 0 else 1e-4,
                                       err_msg=f"sub-env {i} window {w}")
            assert got[1][i] == pytest.approx(reward, rel=1e-4, abs=1e-7)
            np.testing.assert_allclose(got[0][i], obs, rtol=1e-4, atol=1e-6)
            assert got[4]["momentum"][i] == info["momentum"] and got[4]["momentum_index"][i] == info["momentum_index"]
            assert got[4]["frozen_fraction"][i] == pytest.approx(info["frozen_fraction"], abs=1e-6)
            frozen_seen.append(info["frozen_fraction"])
    envs.close()
    return frozen_seen


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_momentum_axis_sub_envs_are_the_single_envs(optimizer, tiny):
    kwargs = {**tiny, "total_steps": 60, "grid": GRID, "optimizer": optimizer, "base_lr": 0.05 if optimizer == "sgd" else 1e-3}
    assert batching_problem(make_config("Synthetic", **kwargs)) is None
    _compare(kwargs)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_freezing_sub_envs_are_the_single_envs(optimizer, tiny):
    kwargs = {**tiny, "total_steps": 60, "grid": GRID, "optimizer": optimizer, "base_lr": 0.05 if optimizer == "sgd" else 1e-3,
              "freeze_threshold": 0.12, "freeze_beta": 0.5}
    frozen = _compare(kwargs)
    assert max(frozen) > 0.0  # some tensors did freeze (and noise skipped them) in some windows


def test_rows_with_and_without_freezing_share_one_engine(tiny):
    base = {**tiny, "total_steps": 40}
    plain, freezing = make_config("Synthetic", **base), make_config("Synthetic", **base, freeze_threshold=10.0)
    runs = BatchedClassificationRuns(plain, 2)
    runs.reset_runs([0, 1], [plain, freezing], [1, 1])
    runs.run_window([1.0, 1.0], [0.0, 0.01], [20, 20])
    before = [runs.row_state_dict(i) for i in range(2)]
    runs.run_window([1.0, 1.0], [0.0, 0.01], [20, 20])
    assert runs.frozen_fractions.tolist() == [0.0, 1.0]  # the second row froze everything after its first window
    for name, value in runs.row_state_dict(1).items():
        assert torch.equal(value, before[1][name]), name  # frozen: not moved, not decayed, noise never applied
    assert any(not torch.equal(value, before[0][name]) for name, value in runs.row_state_dict(0).items())


def test_bad_momenta_are_refused_before_anything_moves(tiny):
    config = make_config("Synthetic", **tiny)
    runs = BatchedClassificationRuns(config, 2)
    runs.reset_runs([0, 1], [config, config], [1, 2])
    for bad, match in (([0.5], "one value"), ([0.5, 1.5], r"\[0, 1\)")):
        with pytest.raises(ValueError, match=match):
            runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5], momenta=bad)
    assert runs.steps_done == [0, 0]
    plain = BatchedClassificationRuns(config, 2)
    plain.reset_runs([0, 1], [config, config], [1, 2])
    # The refused calls drew no batch: the next window is the one a fresh engine trains.
    torch.testing.assert_close(runs.run_window([1.0, 1.0], [0.0, 0.0], [5, 5]), plain.run_window([1.0, 1.0], [0.0, 0.0], [5, 5]),
                               rtol=0, atol=0)
