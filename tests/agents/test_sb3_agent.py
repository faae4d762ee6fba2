"""SB3Agent: every algorithm learns, saves and loads; clear errors that leave nothing half-written."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.envs.episode import run_episode
from aees_gym.envs.wrappers import ContinuousAction
from agents import make_agent
from agents.sb3 import ALGORITHMS, SB3Agent, full_env_id

SMALL_ENV = {"total_steps": 100, "window_length": 20}  # 5 windows per episode
ALGO_KWARGS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 32, "batch_size": 32},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 16, "buffer_size": 500},
    "qrdqn": {"learning_starts": 16, "buffer_size": 500},
    "recurrentppo": {"n_steps": 32, "batch_size": 32},
    "maskableppo": {"n_steps": 32, "batch_size": 32},
}


def small_env(**overrides: Any) -> gym.Env[Any, Any]:
    return gym.make("aees_gym/Synthetic-v0", **{**SMALL_ENV, **overrides})


def trained(algo: str = "ppo", seed: int = 0, **kwargs: Any) -> SB3Agent:
    agent = SB3Agent(algo, algo_kwargs=ALGO_KWARGS[algo], **kwargs)
    return agent.learn("Synthetic-v0", 64, seed=seed, env_kwargs=SMALL_ENV)


def actions(agent: SB3Agent, seed: int = 5) -> list[int]:
    return [int(a) for a in run_episode(small_env(), agent, seed=seed).actions]


def test_algorithm_table_covers_the_issue() -> None:
    assert set(ALGORITHMS) == {"ppo", "a2c", "dqn", "sac", "td3", "qrdqn", "recurrentppo", "maskableppo"}
    assert make_agent("sb3").requires_training  # type: ignore[attr-defined]


@pytest.mark.parametrize("algo", sorted(ALGO_KWARGS))
def test_learn_save_load_gives_identical_actions(algo: str, tmp_path: Path) -> None:
    agent = trained(algo)
    path = agent.save(tmp_path / "policy.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.zip"]  # no temporary left behind
    loaded = SB3Agent.load(path)
    assert loaded.algo == algo and loaded.deterministic
    first = actions(agent)
    assert first == actions(loaded)
    assert len(first) == 5 and all(0 <= a < 9 for a in first)
    assert first == actions(agent)  # deterministic acting, recurrent state reset per episode


def test_learn_is_deterministic_given_its_seed() -> None:
    a, b, c = trained(seed=7), trained(seed=7), trained(seed=8)
    params_a, params_b, params_c = (m.model.policy.parameters_to_vector() for m in (a, b, c))
    np.testing.assert_array_equal(params_a, params_b)
    assert not np.array_equal(params_a, params_c)
    assert actions(a) == actions(b)


def test_stochastic_acting_is_seeded_by_reset() -> None:
    agent = trained()
    agent.deterministic = False
    runs = [actions(agent, seed=s) for s in (11, 11, 12)]
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_learn_with_two_subprocess_envs() -> None:
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 16, "batch_size": 32})
    agent.learn("aees_gym/Synthetic-v0", 64, seed=0, n_envs=2, env_kwargs=SMALL_ENV)
    assert agent.model.num_timesteps >= 64
    assert len(actions(agent)) == 5


def test_env_ids_are_completed_for_spawned_workers() -> None:
    assert full_env_id("Digits-v0") == "aees_gym:aees_gym/Digits-v0"
    assert full_env_id("aees_gym/Digits-v0") == "aees_gym:aees_gym/Digits-v0"
    assert full_env_id("mypkg:mypkg/Thing-v1") == "mypkg:mypkg/Thing-v1"


def test_tensorboard_logging(tmp_path: Path) -> None:
    trained(tensorboard_log=str(tmp_path / "tb"))
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and events[0].parent.name.startswith("ppo")


def test_ppo_drives_the_box_action_view() -> None:
    env = ContinuousAction(small_env())
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 16, "batch_size": 16})
    agent.learn(env, 32, seed=0)
    trace = run_episode(env, agent, seed=1)
    assert len(trace.actions) == 5 and all(np.asarray(a).shape == (2,) for a in trace.actions)


def test_dqn_on_a_box_action_view_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    agent = SB3Agent("dqn", tensorboard_log=str(tmp_path / "tb"))
    with pytest.raises(TypeError, match=r"DQN supports \['Discrete'\].*Box.*\['a2c', 'ppo', 'recurrentppo', 'sac', 'td3'\]"):
        agent.learn(ContinuousAction(small_env()), 64, seed=0)
    assert agent.model is None
    with pytest.raises(RuntimeError, match="no policy yet"):
        agent.save(tmp_path / "dqn.zip")
    assert list(tmp_path.iterdir()) == []
    # A DQN policy trained on the Discrete view refuses the Box view at reset.
    discrete = trained("dqn")
    env = ContinuousAction(small_env())
    obs, info = env.reset(seed=0)
    with pytest.raises(TypeError, match="Box"):
        discrete.reset(seed=0, observation_space=env.observation_space, action_space=env.action_space, info=info)


def test_failed_save_leaves_no_file(tmp_path: Path) -> None:
    agent = trained()
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(OSError):
        agent.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    # Overwriting an existing policy replaces it whole.
    path = agent.save(tmp_path / "policy.zip")
    trained(seed=3).save(path)
    assert zipfile.is_zipfile(path) and actions(SB3Agent.load(path)) == actions(trained(seed=3))


def test_load_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="learn"):
        SB3Agent.load(tmp_path / "missing.zip")
    path = trained().save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match="holds a 'ppo' policy, not 'a2c'"):
        SB3Agent.load(path, algo="a2c")
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not an SB3 policy zip"):
        SB3Agent.load(not_zip)
    # A zip written by stable-baselines3 itself records no algo: it must be named.
    plain = tmp_path / "plain.zip"
    SB3Agent.load(path).model.save(plain)
    with pytest.raises(ValueError, match="pass algo="):
        SB3Agent.load(plain)
    assert actions(SB3Agent.load(plain, algo="ppo")) == actions(SB3Agent.load(path))


def test_reset_rejects_an_env_the_policy_was_not_trained_on() -> None:
    agent = trained()
    for env, message in (
        (small_env(grid={"lr_multipliers": [0.5, 2.0], "noise_stds": [0.0, 0.01]}), "candidate grid"),
        (small_env(context={"features": ["progress", "trend"]}), "observations of shape"),
    ):
        obs, info = env.reset(seed=0)
        with pytest.raises(ValueError, match=message):
            agent.reset(seed=0, observation_space=env.observation_space, action_space=env.action_space, info=info)


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown algo 'ddpg'; choose one of \['a2c', 'dqn', 'maskableppo'"):
        SB3Agent("ddpg")
    env = small_env()
    obs, info = env.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"call learn\(.*SB3Agent.load"):
        SB3Agent().reset(seed=0, observation_space=env.observation_space, action_space=env.action_space, info=info)
    with pytest.raises(ValueError, match="n_envs"):
        SB3Agent().learn("Synthetic-v0", 8, seed=0, n_envs=0)
    with pytest.raises(ValueError, match="env id"):
        SB3Agent().learn(env, 8, seed=0, n_envs=2)


def test_missing_packages_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # what an absent package looks like
    with pytest.raises(ImportError, match="pip install sb3-contrib"):
        SB3Agent("qrdqn")
    SB3Agent("ppo")  # core algorithms do not need it
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(ImportError, match=r"aees-gym\[sb3\]"):
        SB3Agent("ppo")


def test_importing_the_agent_module_does_not_import_stable_baselines3() -> None:
    code = "import sys, agents.sb3, agents.deploy; assert 'stable_baselines3' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_file_reports_the_windows_trained(tmp_path: Path) -> None:
    import json

    path = tmp_path / "progress.json"
    agent = SB3Agent("ppo", algo_kwargs=ALGO_KWARGS["ppo"])
    agent.learn("Synthetic-v0", 64, seed=0, env_kwargs=SMALL_ENV, progress_file=path)
    report = json.loads(path.read_text())
    assert report["windows_trained"] == report["total_timesteps"] == 64
    assert report["started_utc"] <= report["updated_utc"] and report["updated_utc"].endswith("+00:00")
