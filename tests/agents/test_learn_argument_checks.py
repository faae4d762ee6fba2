"""Learner entry points check their arguments: a budget of zero or less is an error, never a silent no-op."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.cli import main
from aees_gym.suite.training import train_agent
from agents.sb3 import SB3Agent

SMALL = {"total_steps": 40, "window_length": 20}


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"total_timesteps": 0}, ValueError, r"total_timesteps must be a positive integer in \[1, inf\), got 0"),
    ({"total_timesteps": -64}, ValueError, r"total_timesteps must be a positive integer in \[1, inf\), got -64"),
    ({"total_timesteps": "64"}, TypeError, r"total_timesteps must be an integer, got the string '64'"),
    ({"total_timesteps": 64.5}, TypeError, r"total_timesteps must be an integer, got 64\.5"),
    ({"n_envs": 0}, ValueError, r"n_envs must be a positive integer in \[1, inf\), got 0"),
    ({"n_envs": "2"}, TypeError, r"n_envs must be an integer, got the string '2'"),
    ({"seed": -1}, ValueError, r"seed must be an integer in \[0, inf\), got -1"),
    ({"seed": "0"}, TypeError, r"seed must be an integer, got the string '0'"),
    ({"env_kwargs": [("total_steps", 40)]}, TypeError, r"env_kwargs must be a dict \(or None\), got .* of type list"),
    ({"checkpoint": 5}, TypeError, r"checkpoint must be a path"),
])
def test_sb3_learn_refuses_bad_arguments_before_building_anything(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    agent = SB3Agent("ppo")
    call = {"total_timesteps": 64, "seed": 0, "env_kwargs": SMALL, **kwargs}
    with pytest.raises(error, match=match):
        agent.learn("Synthetic-v0", call.pop("total_timesteps"), **call)
    assert agent.model is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"total_timesteps": 0}, r"total_timesteps must be a positive integer in \[1, inf\), got 0"),
    ({"total_timesteps": 64, "n_envs": -2}, r"n_envs must be a positive integer"),
    ({"total_timesteps": 64, "seed": -3}, r"seed must be an integer in \[0, inf\), got -3"),
])
def test_train_agent_refuses_an_empty_budget_and_writes_nothing(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    path = tmp_path / "m.zip"
    with pytest.raises(ValueError, match=match):
        train_agent("sb3", "Synthetic", path, **{"seed": 0, **kwargs})
    assert not path.exists() and not list(tmp_path.iterdir())


def test_cli_train_agent_with_no_budget_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train-agent", "--agent", "sb3", "--task", "Synthetic", "--total-timesteps", "0", "--out", str(tmp_path / "m.zip")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--total-timesteps must be at least 1, got 0" in err, err
    assert "Traceback" not in err and not (tmp_path / "m.zip").exists()


def test_cli_reading_a_fifo_suite_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "suite.toml"
    os.mkfifo(fifo)
    code = main(["suite", str(fifo)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a pipe, socket or device, not a regular file" in err, err


def test_a_checkpoint_beyond_the_budget_is_refused_not_silently_kept(tmp_path: Path) -> None:
    from agents.sb3 import checkpoint as sb3_checkpoint

    settings = {"n_steps": 8, "batch_size": 8, "n_epochs": 1}
    trained = SB3Agent("ppo", algo_kwargs=settings).learn("Synthetic-v0", 16, seed=0, env_kwargs=SMALL)
    path = tmp_path / "ppo.checkpoint.zip"
    sb3_checkpoint.save_checkpoint(trained, path)
    fresh = SB3Agent("ppo", algo_kwargs=settings)
    with pytest.raises(ValueError, match=r"has trained 16 windows, more than total_timesteps=8: it belongs to a longer training\. Delete it"):
        fresh.learn("Synthetic-v0", 8, seed=0, env_kwargs=SMALL, checkpoint=path)
    assert path.is_file()  # nothing is lost


@pytest.mark.parametrize(("name", "kwargs", "error", "match"), [
    ("ducb", {"c": "1"}, TypeError, r"c must be a number, got the string '1' \(write the number without quotes\)"),
    ("ducb", {"warmup": 1.5}, TypeError, r"warmup must be an integer, got 1\.5"),
    ("contextual", {"gamma": 2}, ValueError, r"gamma must be a finite discount in \(0, 1\], got 2"),
    ("fixed", {"lr_multiplier": "1"}, TypeError, r"lr_multiplier must be a number, got the string '1'"),
    ("heuristic", {"patience": "2"}, TypeError, r"patience must be an integer, got the string '2'"),
    ("sb3", {"algo": "ppo", "algo_kwargs": [1]}, TypeError, r"algo_kwargs must be a dict \(or None\), got \[1\] of type list"),
    ("sb3", {"algo": "ppo", "algo_kwargs": {"n_steps": "8"}}, TypeError, r"algo_kwargs\['n_steps'\] must be an integer, got the string '8'"),
    ("sb3", {"algo": "ppo", "algo_kwargs": {"n_steps": 0}}, ValueError, r"algo_kwargs\['n_steps'\] must be a positive integer"),
    ("sb3", {"algo": "ppo", "algo_kwargs": {"learning_rate": float("nan")}}, ValueError, r"algo_kwargs\['learning_rate'\] must be a finite number"),
    ("sb3", {"algo": "ppo", "deterministic": "yes"}, TypeError, r"deterministic must be True or False, got 'yes'"),
    ("sb3", {"algo": "ppo", "policy_kwargs": 5}, TypeError, r"policy_kwargs must be a dict \(or None\), got 5 of type int"),
])
def test_agent_constructors_check_their_arguments(name: str, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    from agents.base import make_agent

    with pytest.raises(error, match=match):
        make_agent(name, **kwargs)


def test_sb3_settings_that_sb3_accepts_as_words_or_schedules_still_pass() -> None:
    agent = SB3Agent("ppo", algo_kwargs={"learning_rate": lambda progress: 3e-4 * progress, "ent_coef": 0.0, "n_steps": 8})
    assert agent.algo_kwargs["n_steps"] == 8
    assert SB3Agent("dqn", algo_kwargs={"gradient_steps": -1}).algo_kwargs["gradient_steps"] == -1
