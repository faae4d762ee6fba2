"""Agent states, SB3 policy settings and replay buffers from disk are checked before anything uses them.

A planted or damaged file gives an error naming the field, the problem and the fix; no value from
the file sizes an allocation or reaches training unchecked.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from aees_gym.core.fileio import FileCheckError
from agents.deploy import load_agent
from agents.sb3 import checkpoint as sb3_checkpoint
from agents.sb3.files import PolicyFile, file_settings, read_policy_zip
from agents.sb3.json_settings import UnsafePolicyFile, space_from_json, space_to_json
from agents.ucb import BucketedUCB, DiscountedUCB


# ------------------------------------------------------------------ bandit statistics
def _ucb_state() -> dict[str, Any]:
    ucb = DiscountedUCB(3, seed=0)
    for arm, reward in ((0, 1.0), (1, 0.5), (2, -0.2)):
        ucb.update(arm, reward)
    return ucb.state_dict()


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"counts": [1.0, 2.0]}, ValueError, r"'state counts' must be a list of 3 items"),
    ({"counts": 7}, ValueError, r"'state counts' must be a list of 3 items"),
    ({"counts": [1.0, "2", 0.0]}, TypeError, r"state counts\[1\] must be a number, got the string '2'"),
    ({"counts": [1.0, -2.0, 0.0]}, ValueError, r"state counts\[1\] must be a finite non-negative number"),
    ({"sums": [math.nan, 0.0, 0.0]}, ValueError, r"state sums\[0\] must be a finite number in \(-inf, inf\), got nan"),
    ({"warmup_counts": [1, 1, 1.5]}, TypeError, r"state warmup_counts\[2\] must be an integer"),
    ({"total_updates": "3"}, TypeError, r"state total_updates must be an integer"),
    ({"rng": [3, [1, 2], None]}, ValueError, r"state 'rng' must be \[3, <625 integers>"),
    ({"seed": "0"}, TypeError, r"state seed must be an integer"),
])
def test_bandit_counts_and_sums_are_checked(change: dict[str, Any], error: type[Exception], match: str) -> None:
    ucb = DiscountedUCB(3, seed=1)
    before = ucb.state_dict()
    with pytest.raises(error, match=match + r".*write it again with agents\.deploy\.save_agent_state\(\)"):
        ucb.load_state_dict({**_ucb_state(), **change})
    assert ucb.state_dict() == before  # a refused state changes nothing


def test_a_bucketed_state_is_checked() -> None:
    good = BucketedUCB(2, ["a", "b"], seed=0)
    good.update("a", 1, 0.5)
    state = good.state_dict()
    target = BucketedUCB(2, ["a", "b"], seed=0)
    with pytest.raises(ValueError, match=r"state bucket_chosen_arms\['a'\]\[0\] must be an integer in \[0, 1\], got 5"):
        target.load_state_dict({**state, "bucket_chosen_arms": {"a": [5], "b": []}})
    with pytest.raises(TypeError, match=r"state bucket_visits must be a mapping"):
        target.load_state_dict({**state, "bucket_visits": [1, 2]})
    with pytest.raises(TypeError, match=r"state bucket_reward_sums\['a'\] must be a number"):
        target.load_state_dict({**state, "bucket_reward_sums": {"a": None, "b": 0.0}})
    target.load_state_dict(state)
    assert target.state_dict() == state


def test_an_agent_state_file_is_read_through_the_checked_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(FileCheckError, match="not a regular file"):
        load_agent(fifo)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"agent": "ducb", "config": [1, 2]}))
    with pytest.raises(FileCheckError, match=r"field 'config': must be a JSON object, got list .*save_agent_state"):
        load_agent(bad)
    bad.write_text(json.dumps({"agent": 5}))
    with pytest.raises(FileCheckError, match=r"field 'agent': agent must be a string, got 5"):
        load_agent(bad)
    bad.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(FileCheckError, match="nests JSON deeper than"):
        load_agent(bad)


# ------------------------------------------------------------------ SB3 policy zips
def _meta(**change: Any) -> dict[str, Any]:
    box = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    return {"format": "aees_gym.sb3_agent", "version": 2, "hyperparameters": {"n_steps": 8, "learning_rate": 3e-4},
            "policy_kwargs": {}, "observation_space": space_to_json(box), "action_space": space_to_json(spaces.Discrete(6)),
            "n_envs": 1, "counters": {"num_timesteps": 64}, **change}


@pytest.mark.parametrize(("change", "match"), [
    ({"n_envs": 10**9}, r"n_envs must be an integer in \[1, 4096\], got 1000000000"),
    ({"n_envs": "4"}, r"n_envs must be an integer, got the string '4'"),
    ({"counters": {"num_timesteps": -5}}, r"counters\['num_timesteps'\] must be an integer in \[0, inf\), got -5"),
    ({"hyperparameters": {"buffer_size": 10**12}}, r"buffer_size must be an integer in \[1, 10000000\]"),
    ({"hyperparameters": {"learning_rate": {"__float__": "nan"}}}, r"learning_rate must be a finite number, got nan"),
    ({"action_space": {"type": "Discrete", "n": 10**12}}, r"n must be an integer in \[1, 65536\]"),
    ({"observation_space": {"type": "Box", "shape": [10**6, 10**6], "dtype": "float32", "low": [], "high": []}},
     r"has more than 65536 elements"),
    ({"observation_space": {"type": "Box", "shape": [1], "dtype": "object", "low": [0], "high": [1]}}, r"dtype 'object' is not one of"),
    ({"observation_space": [1]}, r"must be a JSON object describing a space, got list"),
    ({"version": "2"}, r"field 'version' must be an integer"),
])
def test_policy_settings_from_a_file_are_checked(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    from stable_baselines3 import PPO

    file = PolicyFile(tmp_path / "p.zip", {}, _meta(**change))
    with pytest.raises(UnsafePolicyFile, match=match + r".*(SB3Agent\.save\(\)|pass the space)"):
        file_settings(PPO, file)


def test_good_policy_settings_and_spaces_read_back(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    settings = file_settings(PPO, PolicyFile(tmp_path / "p.zip", {}, _meta()))
    assert settings["n_envs"] == 1 and settings["counters"] == {"num_timesteps": 64} and settings["action_space"] == spaces.Discrete(6)
    for space in (spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(5), spaces.Box(0, 1, (2, 3), np.float32)):
        assert space_from_json(space_to_json(space)) == space


def test_a_policy_zip_that_is_a_fifo_or_nests_deep_is_refused(tmp_path: Path) -> None:
    import zipfile

    fifo = tmp_path / "p.zip"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePolicyFile, match="not a regular file"):
        read_policy_zip(fifo)
    from agents.sb3 import SB3Agent

    with pytest.raises(UnsafePolicyFile, match="not a regular file"):
        SB3Agent.load(fifo)
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("data", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafePolicyFile, match=r"malformed JSON in 'data' \(nests JSON deeper than 64 levels"):
        read_policy_zip(deep)


# ------------------------------------------------------------------ replay buffers
def _buffer() -> Any:
    from stable_baselines3.common.buffers import ReplayBuffer

    return ReplayBuffer(8, spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(4), device="cpu")


def _replay(tmp_path: Path, **change: Any) -> Path:
    buffer = _buffer()
    arrays = {name: getattr(buffer, name) for name in sb3_checkpoint._BUFFER_ARRAYS if isinstance(getattr(buffer, name, None), np.ndarray)}
    arrays.update(pos=np.int64(3), full=np.bool_(False), num_timesteps=np.int64(40))
    arrays.update(change)
    data = io.BytesIO()
    np.savez_compressed(data, **arrays)
    path = tmp_path / "c.replay.npz"
    path.write_bytes(data.getvalue())
    return path


@pytest.mark.parametrize(("change", "match"), [
    ({"pos": np.int64(10**6)}, r"pos must be an integer in \[0, 7\], got 1000000"),
    ({"pos": np.arange(3)}, r"pos must be one number"),
    ({"full": np.int64(2)}, r"full must be True or False"),
    ({"rewards": np.full((8, 1), np.nan, np.float32)}, r"rewards holds NaN or infinite values"),
    ({"observations": np.zeros((10**4, 1, 3), np.float32)}, r"observations is a float32 array of shape \(10000, 1, 3\); this replay buffer needs"),
    ({"extra": np.zeros(2)}, r"it holds 'extra', which no replay buffer of this training has"),
])
def test_a_replay_buffer_is_checked_before_it_replaces_the_buffer(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    buffer = _buffer()
    with pytest.raises(ValueError, match=match + r".*delete it and the checkpoint beside it"):
        sb3_checkpoint._restore_buffer(buffer, _replay(tmp_path, **change), 40)
    assert buffer.pos == 0 and not buffer.full


def test_a_good_replay_buffer_restores_and_a_fifo_is_refused(tmp_path: Path) -> None:
    buffer = _buffer()
    sb3_checkpoint._restore_buffer(buffer, _replay(tmp_path, rewards=np.ones((8, 1), np.float32)), 40)
    assert buffer.pos == 3 and buffer.rewards.sum() == 8
    fifo = tmp_path / "f.replay.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        sb3_checkpoint._restore_buffer(_buffer(), fifo, 40)
