"""Every registered agent on real envs, and whether the learners find a clearly best grid cell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import aees_gym  # noqa: F401  (registers the env ids)
from aees_gym import AEESEnv, EnvConfig
from aees_gym.envs.episode import EpisodeTrace, run_episode
from aees_gym.tasks import base as task_base
from agents import make_agent, registered_agents
from agents.sb3 import SB3Agent

TASKS = ["Digits", "Synthetic"]
AGENT_NAMES = sorted(registered_agents())
TINY_PPO = {"algo": "ppo", "algo_kwargs": {"n_steps": 32, "batch_size": 32}}


@pytest.fixture(scope="module")
def tiny_ppo() -> SB3Agent:
    """A PPO policy after a tiny training budget (64 windows of Synthetic-v0)."""
    agent = SB3Agent(**TINY_PPO)
    agent.learn("Synthetic-v0", 64, seed=0)
    return agent


def build_agent(name: str, tiny_ppo: SB3Agent) -> Any:
    return tiny_ppo if name == "sb3" else make_agent(name)


def test_all_built_in_agents_are_registered() -> None:
    expected = {"random", "fixed", "ducb", "contextual", "heuristic", "sb3", "fixed+cosine", "fixed+step"}
    assert expected <= set(AGENT_NAMES)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_every_registered_agent_runs_full_episodes_deterministically(name: str, tiny_ppo: SB3Agent) -> None:
    for task in TASKS:
        agent = build_agent(name, tiny_ppo)
        overrides = dict(getattr(agent, "env_overrides", {}))
        env = gym.make(f"aees_gym/{task}-v0", **overrides)
        config: EnvConfig = env.unwrapped.config
        first = run_episode(env, agent, seed=3)
        second = run_episode(env, build_agent(name, tiny_ppo), seed=3)
        assert len(first.actions) == config.n_windows, (name, task)
        final = first.infos[-1]
        assert final["steps_done"] == config.total_steps and "final_metrics" in final
        # What ran, as the env recorded it: the cell and the exact candidate (agents may send either).
        ran = [[(i["action"], i["candidate_name"]) for i in trace.infos] for trace in (first, second)]
        assert ran[0] == ran[1], (name, task)
        assert first.rewards == second.rewards, (name, task)
        assert all(np.isfinite(first.rewards))


def test_unknown_agent_name_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError) as excinfo:
        make_agent("no-such-agent")
    message = str(excinfo.value)
    for name in ("ducb", "contextual", "heuristic", "random", "sb3"):
        assert name in message


# ------------------------------------------------------------------ a task with one best cell

BEST_TASK = "BestCellRegression"
BEST_GRID = {"lr_multipliers": (0.25, 1.0, 4.0), "noise_stds": (0.0, 5.0)}
BEST_CELL = 4  # lr ×4, σ 0


def _build_regression(config: EnvConfig, seeds: task_base.RunSeeds) -> task_base.TrainingRun:
    """Noiseless linear regression under plain SGD: the loss falls by a constant factor per step.

    So every window's reward is roughly ``c · lr`` for the whole run (×4 is best throughout), while
    gradient noise of σ = 5 holds the loss at a floor ∝ lr·σ² that the noiseless cells soon pass.
    """
    device = torch.device("cpu")
    data_gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 16, generator=data_gen)
    y = x @ torch.randn(16, 1, generator=data_gen)
    with task_base.seeded_torch(seeds.model, device):
        model = nn.Linear(16, 1)
    optimizer = task_base.build_optimizer(model.parameters(), config, device)
    order = torch.Generator().manual_seed(seeds.data_order)

    def train_step() -> torch.Tensor:
        idx = torch.randint(len(x), (config.batch_size,), generator=order)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        return loss.detach()

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            return {"val_loss": float(nn.functional.mse_loss(model(x), y)), "val_accuracy": 0.0}

    return task_base.TrainingRun(model, optimizer, train_step, evaluate, len(x) // config.batch_size, 0.0, device)


@pytest.fixture
def best_cell_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[AEESEnv]:
    """The regression task, registered for this test only."""
    spec = task_base.TaskSpec(
        name=BEST_TASK,
        description="noiseless linear regression where lr ×4 without noise is best",
        build=_build_regression,
        defaults={"optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "base_lr": 0.004,
                  "total_steps": 400, "window_length": 20, "batch_size": 128, "eval_every": 0},
    )
    monkeypatch.setitem(task_base._TASKS, BEST_TASK, spec)
    yield AEESEnv(BEST_TASK, grid=BEST_GRID)


def best_cell_fraction(trace: EpisodeTrace, skip: int = 0) -> float:
    return float(np.mean([int(a) == BEST_CELL for a in trace.actions[skip:]]))


def test_the_task_really_has_one_best_cell(best_cell_env: AEESEnv) -> None:
    means = [np.mean(run_episode(best_cell_env, make_agent("fixed", index=i), seed=0).rewards) for i in range(6)]
    assert int(np.argmax(means)) == BEST_CELL
    assert means[BEST_CELL] > 2 * max(m for i, m in enumerate(means) if i != BEST_CELL)


def test_ducb_picks_the_best_cell_in_most_windows_after_warmup(best_cell_env: AEESEnv) -> None:
    # Window rewards here are at most ~0.7, so the exploration coefficient is scaled to them
    # (c = 1 assumes rewards of order 1 and keeps exploring every arm).
    seeds = range(4)
    ducb = [best_cell_fraction(run_episode(best_cell_env, make_agent("ducb", c=0.3), seed=s), skip=6) for s in seeds]
    rand = [best_cell_fraction(run_episode(best_cell_env, make_agent("random"), seed=s), skip=6) for s in seeds]
    print(f"best-cell fraction after warm-up: ducb {np.round(ducb, 2).tolist()} random {np.round(rand, 2).tolist()}")
    assert np.mean(ducb) > 0.6
    assert np.mean(ducb) > np.mean(rand) + 0.3


@pytest.mark.slow
def test_ppo_trained_briefly_prefers_the_best_cell_over_random(best_cell_env: AEESEnv) -> None:
    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 64, "batch_size": 64})
    agent.learn(AEESEnv(BEST_TASK, grid=BEST_GRID), 512, seed=0)
    seeds = range(100, 104)  # evaluation runs on seeds the policy never trained on
    ppo = [best_cell_fraction(run_episode(best_cell_env, agent, seed=s)) for s in seeds]
    rand = [best_cell_fraction(run_episode(best_cell_env, make_agent("random"), seed=s)) for s in seeds]
    print(f"best-cell fraction: PPO (512 windows of training) {np.round(ppo, 2).tolist()} "
          f"random {np.round(rand, 2).tolist()}")
    assert np.mean(ppo) > 0.6
    assert np.mean(ppo) > np.mean(rand) + 0.3
