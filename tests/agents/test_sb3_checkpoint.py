"""Resumable SB3 trainings: a killed training resumes from its checkpoint and trains only what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from agents.sb3 import SB3Agent
from agents.sb3 import budget as sb3_budget
from agents.sb3 import checkpoint as sb3_checkpoint

SMALL_ENV = {"total_steps": 100, "window_length": 20}  # 5 windows per episode
SETTINGS = {
    "ppo": {"n_steps": 8, "batch_size": 8, "n_epochs": 1},
    "dqn": {"learning_starts": 8, "buffer_size": 200, "train_freq": 4},
}


class Killed(Exception):
    """Stands for the process being killed mid-training."""


def _kill_after(windows: int):
    def callback(local_vars, global_vars):
        if local_vars["self"].num_timesteps >= windows:
            raise Killed
        return True

    return callback


@pytest.mark.parametrize("algo", sorted(SETTINGS))
def test_a_killed_training_resumes_from_its_checkpoint(algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb3_checkpoint, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint at every rollout start
    path = tmp_path / "run.checkpoint.zip"
    with pytest.raises(Killed):
        SB3Agent(algo, algo_kwargs=SETTINGS[algo]).learn(
            "Synthetic-v0", 64, seed=0, env_kwargs=SMALL_ENV, checkpoint=path, callback=_kill_after(40))
    assert path.is_file() and sb3_checkpoint.replay_path(path).is_file() == (algo == "dqn")

    agent = SB3Agent(algo, algo_kwargs=SETTINGS[algo])
    agent.learn("Synthetic-v0", 64, seed=0, env_kwargs=SMALL_ENV, checkpoint=path)
    assert agent.resumed_at is not None and 0 < agent.resumed_at <= 40
    assert agent.model.num_timesteps == 64  # the budget, counted across both processes
    assert not path.exists() and not sb3_checkpoint.replay_path(path).exists()  # a finished training leaves none


def test_a_checkpoint_restores_the_replay_buffer(tmp_path: Path) -> None:
    trained = SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"]).learn("Synthetic-v0", 48, seed=0, env_kwargs=SMALL_ENV)
    path = tmp_path / "dqn.zip"
    sb3_checkpoint.save_checkpoint(trained, path)
    fresh = SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"])
    assert sb3_checkpoint.load_checkpoint(fresh, path, "cpu") == 48
    old, new = trained.model.replay_buffer, fresh.model.replay_buffer
    assert (new.pos, new.full) == (old.pos, old.full) and new.pos > 40
    for name in ("observations", "actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name))
    for a, b in zip(trained.model.policy.parameters(), fresh.model.policy.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_a_replay_file_of_another_checkpoint_is_not_used(tmp_path: Path) -> None:
    trained = SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"]).learn("Synthetic-v0", 48, seed=0, env_kwargs=SMALL_ENV)
    path = tmp_path / "dqn.zip"
    sb3_checkpoint.save_checkpoint(trained, path)
    trained.model.num_timesteps = 40  # the zip now says another window than its replay file
    trained.save(path)
    fresh = SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"])
    with pytest.warns(UserWarning, match="belongs to another checkpoint"):
        sb3_checkpoint.load_checkpoint(fresh, path, "cpu")
    assert fresh.model.replay_buffer.pos == 0


def test_the_suite_resumes_a_killed_training_and_records_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aees_gym.suite.training import checkpoint_path, progress_path, read_progress, train_agent

    monkeypatch.setattr(sb3_checkpoint, "CHECKPOINT_EVERY_S", 0.0)
    monkeypatch.setattr(sb3_budget, "PROGRESS_EVERY_S", 0.0)  # a report at every window
    path = tmp_path / "models" / "ppo.zip"
    settings = {"agent_kwargs": {"algo": "ppo", "algo_kwargs": SETTINGS["ppo"]}, "env_overrides": SMALL_ENV}
    with pytest.raises(Killed):
        train_agent("sb3", "Synthetic", path, total_timesteps=64, seed=0, learn_kwargs={"callback": _kill_after(40)}, **settings)
    report = read_progress(path)
    assert checkpoint_path(path).is_file() and report is not None and not path.exists()
    assert 0 < report["checkpoint_windows"] <= report["windows_trained"]  # the kill lost the windows in between
    trained: list[SB3Agent] = []
    train_agent("sb3", "Synthetic", path, total_timesteps=64, seed=0, on_trained=trained.append, **settings)
    assert path.is_file() and trained[0].resumed_at == report["checkpoint_windows"]  # the report said where
    assert not checkpoint_path(path).exists() and not progress_path(path).exists()


def test_a_replay_file_holding_objects_is_refused_unread(tmp_path: Path) -> None:
    trained = SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"]).learn("Synthetic-v0", 48, seed=0, env_kwargs=SMALL_ENV)
    path = tmp_path / "dqn.zip"
    sb3_checkpoint.save_checkpoint(trained, path)
    with np.load(sb3_checkpoint.replay_path(path)) as stored:
        arrays = dict(stored)
    arrays["rewards"] = np.array([print], dtype=object)  # would need unpickling to read
    np.savez(sb3_checkpoint.replay_path(path), **arrays)
    with pytest.raises(ValueError, match="delete it and the checkpoint"):
        sb3_checkpoint.load_checkpoint(SB3Agent("dqn", algo_kwargs=SETTINGS["dqn"]), path, "cpu")
