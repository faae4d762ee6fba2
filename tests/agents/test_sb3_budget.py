"""SB3 training honours total_timesteps, or warns with the reason when it must round up."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym.cli import main
from agents.sb3 import SB3Agent
from agents.sb3.budget import TimestepsRounded, plan_budget, progress_bar_default

SMALL_ENV = {"total_steps": 100, "window_length": 20}


def learn_exactly(algo: str, asked: int, **kwargs: Any) -> SB3Agent:
    """Train, failing on a rounding warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestepsRounded)
        return SB3Agent(algo, **kwargs).learn("Synthetic-v0", asked, seed=0, env_kwargs=SMALL_ENV)


def test_ppo_with_its_default_rollout_trains_a_small_budget_exactly() -> None:
    agent = learn_exactly("ppo", 40)  # SB3's default n_steps=2048 used to train 2,048 here
    assert agent.model.num_timesteps == 40 and agent.model.n_steps == 40 and agent.model.batch_size == 40


@pytest.mark.parametrize(("algo", "asked", "kwargs"), [
    ("dqn", 10, {"learning_starts": 4, "buffer_size": 100}),  # train_freq=4 used to train 12
    ("a2c", 4, {}),
    ("ppo", 64, {"n_steps": 32, "batch_size": 32}),
])
def test_budgets_that_fit_are_trained_exactly(algo: str, asked: int, kwargs: dict[str, Any]) -> None:
    assert learn_exactly(algo, asked, algo_kwargs=kwargs).model.num_timesteps == asked


def test_a_budget_that_is_not_whole_rollouts_is_rounded_with_the_reason() -> None:
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 32, "batch_size": 32})
    message = r"PPO updates on whole rollouts of n_steps × n_envs = 32 × 1 = 32 env steps, so 64 are trained instead of the 40"
    with pytest.warns(TimestepsRounded, match=message):
        agent.learn("Synthetic-v0", 40, seed=0, env_kwargs=SMALL_ENV)
    assert agent.model.num_timesteps == 64
    with pytest.warns(TimestepsRounded, match="A2C updates on whole rollouts of .* = 5 × 1 = 5 env steps, so 15"):
        assert SB3Agent("a2c").learn("Synthetic-v0", 12, seed=0, env_kwargs=SMALL_ENV).model.num_timesteps == 15


def test_plans_for_several_envs_and_large_budgets() -> None:
    from stable_baselines3 import DQN, PPO

    two_envs = plan_budget(PPO, 2048, 2, {})  # a whole default rollout of 2 × 2048 used to train 4,096
    assert (two_envs.total, two_envs.algo_kwargs, two_envs.reason) == (2048, {"n_steps": 1024}, None)
    large = plan_budget(PPO, 5000, 1, {})
    assert large.total == 6144 and large.algo_kwargs == {} and "multiple of 2048" in large.reason
    dqn = plan_budget(DQN, 11, 2, {})
    assert dqn.total == 12 and dqn.stop_callback and "steps of 2 env steps" in dqn.reason
    assert plan_budget(DQN, 12, 2, {}).reason is None
    with pytest.raises(ValueError, match="total_timesteps must be >= 1"):
        plan_budget(PPO, 0, 1, {})


def test_progress_bar_on_request_and_off_without_a_terminal() -> None:
    assert not progress_bar_default()  # pytest captures stderr: no terminal
    agent = SB3Agent("ppo").learn("Synthetic-v0", 8, seed=0, env_kwargs=SMALL_ENV, progress_bar=True)
    assert agent.model.num_timesteps == 8


def test_cli_train_agent_trains_the_timesteps_asked(tmp_path: Path) -> None:
    out = tmp_path / "ppo.zip"
    code = main(["train-agent", "--agent", "sb3", "--task", "Synthetic", "--total-timesteps", "16", "--seed", "3",
                 "--set", "total_steps=40", "--set", "window_length=10", "--out", str(out)])
    assert code == 0
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("aees_agent.json"))["counters"]["num_timesteps"] == 16
    assert SB3Agent.load(out).model.num_timesteps == 16
