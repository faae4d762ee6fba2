"""Agents in a user's own loop: ControlledTraining, agents on disk, and the example script."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from agents import make_agent
from agents.deploy import ControlledTraining, load_agent, save_agent_state
from agents.sb3 import SB3Agent

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))
import own_training_loop  # noqa: E402  (the example script, imported to call its main)


class UserRun:
    """A plain classification loop of the user's own: data, model, optimizer and a fixed batch order."""

    def __init__(self, steps: int = 230) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(512, 10, generator=gen)
        self.y = (self.x[:, :3].sum(1) > 0).long()
        self.batches = [torch.randint(len(self.x), (32,), generator=gen) for _ in range(steps)]
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)

    def run(self, ct: ControlledTraining, steps: range, nan_at: int | None = None) -> list[Any]:
        """The loop body: ``before_step`` → zero_grad/forward/backward → ``after_step``."""
        outcomes = []
        for step in steps:
            if ct.done:
                break
            ct.before_step()
            idx = self.batches[step]
            self.optimizer.zero_grad()
            loss = nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
            if step == nan_at:
                loss = loss * float("nan")
            loss.backward()
            outcome = ct.after_step(loss)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes


def user_loop(agent: Any, *, steps: int = 230, budget: int | None = None, window: int = 20, seed: int = 0,
              nan_at: int | None = None, **kwargs: Any) -> tuple[ControlledTraining, list[Any], nn.Module]:
    """Run ``steps`` steps of a fresh :class:`UserRun` under ``agent`` (budget: ``total_steps``)."""
    user = UserRun(steps)
    ct = ControlledTraining(user.optimizer, agent, total_steps=budget or steps, window_length=window, seed=seed,
                            **kwargs)
    return ct, user.run(ct, range(steps), nan_at=nan_at), user.model


def test_a_bandit_controls_a_user_loop_deterministically() -> None:
    ct, outcomes, model = user_loop(make_agent("ducb"))
    assert len(outcomes) == math.ceil(230 / 20) and ct.done
    assert outcomes[-1].info["window_steps"] == 10 and outcomes[-1].terminated
    assert ct.agent.state()["lr"]["total_updates"] == len(outcomes)
    # Warm-up tries every arm of both axes.
    assert {o.info["lr_index"] for o in outcomes} == {o.info["noise_index"] for o in outcomes} == {0, 1, 2}
    with pytest.raises(RuntimeError, match="run is over after 230 of 230 steps"):
        ct.before_step()
    again, outcomes2, model2 = user_loop(make_agent("ducb"))
    assert [o.action for o in outcomes] == [o.action for o in outcomes2]
    assert [o.reward for o in outcomes] == [o.reward for o in outcomes2]
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    _, outcomes3, _ = user_loop(make_agent("ducb"), seed=1)
    assert [o.action for o in outcomes] != [o.action for o in outcomes3]


def test_a_trained_sb3_policy_from_disk_controls_a_user_loop(tmp_path: Path) -> None:
    policy = SB3Agent("ppo", algo_kwargs={"n_steps": 32, "batch_size": 32})
    policy.learn("Synthetic-v0", 64, seed=0, env_kwargs={"total_steps": 100, "window_length": 20})
    agent, state = load_agent(policy.save(tmp_path / "policy.zip"))
    assert state is None and isinstance(agent, SB3Agent)
    ct, outcomes, _ = user_loop(agent)
    assert len(outcomes) == 12
    # Each window ran exactly what the policy predicts for the observation before it.
    for obs, outcome in zip([o.observation for o in outcomes[:-1]], outcomes[1:], strict=True):
        expected, _ = policy.model.predict(obs, deterministic=True)
        assert outcome.action == int(expected)


def test_the_heuristic_and_closing_a_trailing_partial_window() -> None:
    ct, outcomes, _ = user_loop(make_agent("heuristic"))
    assert len(outcomes) == 12 and ct.agent.last_rule in {"raise", "cut", "plateau", "hold"}
    # A loop that stops before its budget closes its last window by hand; the agent learns from it.
    ct, outcomes, _ = user_loop(make_agent("ducb"), steps=45, budget=100)
    assert len(outcomes) == 2 and not ct.done
    last = ct.close_window()
    assert last is not None and last.info["window_steps"] == 5 and not last.terminated
    assert ct.agent.state()["lr"]["total_updates"] == 3 and ct.last_outcome is last
    assert ct.close_window() is None


def test_non_finite_loss_ends_the_run_or_continues_when_asked() -> None:
    ct, outcomes, _ = user_loop(make_agent("ducb"), nan_at=25)
    assert len(outcomes) == 2 and outcomes[-1].info["diverged"] and outcomes[-1].terminated
    assert outcomes[-1].reward == -1.0 and ct.done and ct.diverged_windows == 1
    with pytest.raises(RuntimeError, match="a window diverged"):
        ct.before_step()
    ct, outcomes, _ = user_loop(make_agent("ducb"), nan_at=25, continue_after_divergence=True)
    assert len(outcomes) == 12 and outcomes[1].info["diverged"] and not outcomes[1].terminated
    assert ct.diverged_windows == len(outcomes) - 1  # without a GradScaler the weights stay NaN


def test_agent_state_on_disk_warm_starts_the_next_run(tmp_path: Path) -> None:
    ct, _, _ = user_loop(make_agent("ducb", structured="conditional"))
    path = save_agent_state(ct.agent, tmp_path / "ducb.json")
    assert json.loads(path.read_text())["agent"] == "ducb"
    agent, state = load_agent(path)
    assert agent.structured == "conditional"  # the config travels with the state
    resumed = ControlledTraining(torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1), agent,
                                 total_steps=100, window_length=10, seed=0, agent_state=state)
    assert resumed.agent.state() == ct.agent.state()
    assert resumed.agent.act(resumed.obs, resumed.info) == ct.agent.act(resumed.obs, resumed.info)
    # The heuristic's state (its LR scale and plateau streak) round-trips the same way.
    ct, _, _ = user_loop(make_agent("heuristic"))
    agent, state = load_agent(save_agent_state(ct.agent, tmp_path / "heuristic.json"))
    ControlledTraining(torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1), agent, total_steps=10,
                       window_length=5, agent_state=state)
    assert agent.state_dict() == ct.agent.state_dict()


def test_load_agent_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_agent(tmp_path / "nothing.json")
    (tmp_path / "agent.txt").write_text("{}")
    with pytest.raises(ValueError, match=r"\.zip.*\.json"):
        load_agent(tmp_path / "agent.txt")
    (tmp_path / "anon.json").write_text(json.dumps({"counts": [1]}))
    with pytest.raises(ValueError, match="save_agent_state"):
        load_agent(tmp_path / "anon.json")
    with pytest.raises(TypeError, match="state_dict"):
        save_agent_state(object(), tmp_path / "x.json")  # type: ignore[arg-type]
    assert not (tmp_path / "x.json").exists()


def test_state_dict_resumes_a_user_loop_mid_window() -> None:
    full = UserRun(120)
    ct = ControlledTraining(full.optimizer, make_agent("contextual"), total_steps=120, window_length=20, seed=4)
    expected = full.run(ct, range(120))

    first = UserRun(120)
    ct = ControlledTraining(first.optimizer, make_agent("contextual"), total_steps=120, window_length=20, seed=4)
    before = first.run(ct, range(57))  # stops inside the third window
    saved = {"ct": ct.state_dict(), "model": first.model.state_dict(), "opt": first.optimizer.state_dict()}

    second = UserRun(120)
    second.model.load_state_dict(saved["model"])
    second.optimizer.load_state_dict(saved["opt"])
    ct = ControlledTraining(second.optimizer, make_agent("contextual"), total_steps=120, window_length=20, seed=99)
    ct.load_state_dict(saved["ct"])
    after = second.run(ct, range(57, 120))
    resumed = before + after
    assert [o.action for o in resumed] == [o.action for o in expected]
    assert [o.reward for o in resumed] == [o.reward for o in expected]
    for p, q in zip(full.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_own_training_loop_with_a_bandit_saved_and_reloaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = tmp_path / "ducb.json"
    first = own_training_loop.main(["--agent", "ducb", "--steps", "300", "--save-agent", str(state_file)])
    assert first["steps"] == 300 and len(first["windows"]) == 6 and np.isfinite(first["val_loss"])
    second = own_training_loop.main(["--agent", str(state_file), "--steps", "300"])
    # The reloaded bandit continues from the first run's statistics instead of warming up again.
    assert second["agent"].state()["lr"]["total_updates"] == 12
    assert "final validation MSE" in capsys.readouterr().out


@pytest.mark.slow
def test_own_training_loop_script_trains_and_loads_a_ppo_policy() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "own_training_loop.py"), "--steps", "400"],
        capture_output=True, text=True, check=True, cwd=REPO, timeout=300,
    )
    assert "trained a tiny PPO policy on Synthetic-v0" in result.stdout
    assert "final validation MSE" in result.stdout and "after 400 steps, 8 windows" in result.stdout
