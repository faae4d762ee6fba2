"""The shipped learned controller: loads its weights-only policy, acts, drives a user's loop and a suite run."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch
from torch import nn

import aees_gym  # noqa: F401  (registers the ids)
from agents import make_agent, registered_agents
from agents.deploy import ControlledTraining
from agents.learned import DEFAULT_POLICY, LearnedAgent, policy_path, shipped_policies

SMALL = {"total_steps": 75, "window_length": 25, "torch_threads": 1}


def test_make_agent_loads_the_shipped_policy_with_its_provenance():
    agent = make_agent("learned")
    assert isinstance(agent, LearnedAgent) and "learned" in registered_agents() and DEFAULT_POLICY in shipped_policies()
    path = policy_path(DEFAULT_POLICY)
    assert path.stat().st_size < 1_000_000
    sidecar = json.loads(path.with_suffix(".json").read_text())["provenance"]
    for key in ("instance_set", "training_instances", "reward", "training_seed", "windows_trained", "hyperparameters",
                "date_utc", "git_commit", "training_git_commit", "validation", "validation_constant_x1", "note", "env_overrides"):
        assert key in sidecar, key
    assert agent.provenance == sidecar and dict(LearnedAgent.env_overrides) == sidecar["env_overrides"]


def _episode(seed, policy=DEFAULT_POLICY):
    agent = make_agent("learned", policy=policy)
    env = gym.make("aees_gym/Digits-v0", **SMALL, **agent.env_overrides)  # what suites and ControlledTraining get
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed, observation_space=env.observation_space, action_space=env.action_space, info=info)
    actions, done = [], False
    while not done:
        action = agent.act(obs, info)
        obs, reward, done, _, info = env.step(action)
        actions.append((action, info["lr_scale"]))
    env.close()
    return actions


@pytest.mark.parametrize("policy", shipped_policies())
def test_every_shipped_policy_acts_deterministically_in_its_track_env(policy):
    first = _episode(4, policy)
    if LearnedAgent(policy).policy.discrete:  # a grid cell of the relative track
        assert all(isinstance(a, int) and 0 <= a < 10 for a, _ in first)
    else:  # an exact candidate: an LR step of ×2^u, u in [-1, 1], and a noise std in [0, 0.01]
        assert all(0.5 - 1e-9 <= a.lr_multiplier <= 2 + 1e-9 and 0 <= a.noise_std <= 0.01 for a, _ in first)
    assert len(first) == 3 and first == _episode(4, policy)
    assert len(shipped_policies()) >= 2 and DEFAULT_POLICY in shipped_policies()


def test_an_env_without_the_policy_track_is_a_clear_error():
    env = gym.make("aees_gym/Digits-v0", **SMALL)  # the default (index-mode, 3×3 grid) env
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="env_overrides"):
        make_agent("learned").reset(seed=0, observation_space=env.observation_space, action_space=env.action_space, info=info)
    env.close()


def test_the_learned_agent_drives_a_users_own_training_loop():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 8, generator=gen), torch.randint(0, 3, (512,), generator=gen)
    x_held, y_held = torch.randn(128, 8, generator=gen), torch.randint(0, 3, (128,), generator=gen)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def heldout_loss() -> torch.Tensor:
        with torch.no_grad():
            return nn.functional.cross_entropy(model(x_held), y_held)

    agent = make_agent("learned")
    ct = ControlledTraining(optimizer, agent, total_steps=100, window_length=25, seed=0, reward_eval=heldout_loss, **agent.env_overrides)
    outcomes = []
    for step in range(100):
        ct.before_step()
        idx = torch.arange(step * 32, step * 32 + 32) % 512
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        outcome = ct.after_step(loss)
        if outcome is not None:
            outcomes.append(outcome.info)
    assert ct.done and len(outcomes) == 4
    for info in outcomes:  # the window ran the base LR times the persistent scale the agent set
        assert info["effective_lr"] == pytest.approx(0.05 * info["lr_scale"])
    assert optimizer.param_groups[0]["lr"] == 0.05  # restored after every step


def test_the_learned_agent_runs_in_a_suite():
    from aees_gym.suite.one_run import run_one
    from aees_gym.suite.run_spec import RunSpec

    overrides = {**SMALL, **LearnedAgent.env_overrides}
    result = run_one(RunSpec(suite="t", task="Digits", task_label="Digits", agent="learned", agent_label="learned", seed=0,
                             env_overrides=overrides))
    assert result.status == "ok", result.error
    assert len(result.windows) == 3 and result.final_metrics["val_accuracy"] > 0


def test_the_example_loop_script_runs_the_learned_agent():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    import own_training_loop

    result = own_training_loop.main(["--agent", "learned", "--steps", "150", "--window", "25"])
    assert result["steps"] == 150 and len(result["windows"]) == 6 and result["val_loss"] > 0


def test_acting_needs_no_stable_baselines3():
    import subprocess
    import sys

    code = ("import numpy as np, sys; from agents import make_agent\n"
            "for name in ('learned-relative', 'learned-continuous'):\n"
            "    a = make_agent('learned', policy=name); print(np.ravel(a.policy.act(np.zeros((1, a.policy.n_inputs), np.float32))[0]).tolist())\n"
            "assert 'stable_baselines3' not in sys.modules, 'imported SB3'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    discrete, box = (json.loads(line) for line in done.stdout.splitlines())
    assert len(discrete) == 1 and 0 <= discrete[0] < 10 and len(box) == 2 and all(-1 <= v <= 1 for v in box)
