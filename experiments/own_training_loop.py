"""Your own PyTorch training loop, with an agent loaded from disk choosing each window's LR and noise.

The task is this script's own (noisy 1-D regression with a small MLP), not an aees_gym task: the
agent only sees the window statistics that ``ControlledTraining`` computes, so a policy trained on
cheap aees_gym tasks deploys here unchanged.

    python experiments/own_training_loop.py                       # trains a tiny PPO first (~20 s)
    python experiments/own_training_loop.py --agent policy.zip    # an SB3 policy saved by SB3Agent.save
    python experiments/own_training_loop.py --agent learned                # the shipped learned controller
    python experiments/own_training_loop.py --agent ducb --save-agent ducb.json
    python experiments/own_training_loop.py --agent ducb.json     # a bandit warm-started from a file
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aees_gym.core.config import ControlConfig
from agents import make_agent, registered_agents
from agents.deploy import ControlledTraining, load_agent, save_agent_state


def make_data(seed: int, n: int = 2048) -> tuple[torch.Tensor, ...]:
    """y = sin(2x) + x/3 + noise on [-3, 3]; the first 80 % train, the rest validate."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=gen) * 6 - 3
    y = torch.sin(2 * x) + x / 3 + 0.1 * torch.randn(n, 1, generator=gen)
    cut = int(0.8 * n)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def train_tiny_ppo(folder: Path, seed: int) -> Path:
    """A PPO policy after 256 windows of Synthetic-v0, saved like any trained policy."""
    from agents.sb3 import SB3Agent

    agent = SB3Agent("ppo", algo_kwargs={"n_steps": 64, "batch_size": 64})
    agent.learn("Synthetic-v0", 256, seed=seed)
    return agent.save(folder / "ppo_synthetic.zip")


def control_overrides(agent: Any) -> dict[str, Any]:
    """The control settings an agent asks for (the learned agent's track: grid, action mode, features).

    Env-only settings (a schedule baseline's ``schedule``) are the env's business and are left out.
    """
    names = {f.name for f in dataclasses.fields(ControlConfig)}
    return {k: v for k, v in dict(getattr(agent, "env_overrides", {})).items() if k in names}


def heldout_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss on a fixed held-out batch (no gradient): what ``reward_eval`` gives the control."""
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y)


def train(agent: Any, state: dict[str, Any] | None, *, steps: int, window: int, seed: int) -> dict[str, Any]:
    """The user's loop: only the three ``ct`` lines are added to a plain PyTorch loop."""
    x_train, y_train, x_val, y_val = make_data(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    x_held, y_held = make_data(seed + 2, n=320)[2:]  # 64 fresh examples: the held-out batch a controller may observe
    ct = ControlledTraining(
        optimizer, agent, total_steps=steps, window_length=window, lr_scheduler=scheduler, seed=seed,
        agent_state=state, reward_eval=lambda: heldout_mse(model, x_held, y_held),
        **control_overrides(agent),
    )
    batches = torch.Generator().manual_seed(seed + 1)
    print(f"{'window':>6} {'candidate':<14} {'mean loss':>10} {'reward':>8}")
    windows = []
    for _ in range(steps):
        ct.before_step()
        idx = torch.randint(len(x_train), (64,), generator=batches)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x_train[idx]), y_train[idx])
        loss.backward()
        outcome = ct.after_step(loss)
        if outcome is not None:
            info = outcome.info
            windows.append(info["candidate_name"])
            print(f"{info['window_index']:>6} {info['candidate_name']:<14} {info['loss_mean']:>10.4f} {outcome.reward:>+8.4f}")
        if ct.done:
            break
    with torch.no_grad():
        val_loss = float(nn.functional.mse_loss(model(x_val), y_val))
    print(f"final validation MSE {val_loss:.4f} after {ct.control.history.steps_done} steps, {len(windows)} windows")
    return {"val_loss": val_loss, "windows": windows, "steps": ct.control.history.steps_done}


def resolve_agent(spec: str | None, folder: Path, seed: int) -> tuple[Any, dict[str, Any] | None]:
    """A file (.zip policy or .json state), a registered online agent's name, or a fresh tiny PPO."""
    if spec is None:
        spec = str(train_tiny_ppo(folder, seed))
        print(f"trained a tiny PPO policy on Synthetic-v0: {spec}")
    if Path(spec).suffix in (".zip", ".json"):
        return load_agent(spec)
    if spec in registered_agents():
        return make_agent(spec), None
    raise SystemExit(f"--agent {spec!r} is neither a .zip/.json file nor one of {sorted(registered_agents())}.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", help="policy .zip, agent-state .json, or an online agent name (e.g. ducb)")
    parser.add_argument("--save-agent", type=Path, help="write the agent's state as JSON afterwards (online agents)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a tiny MLP: one thread is fastest
    with tempfile.TemporaryDirectory() as folder:
        agent, state = resolve_agent(args.agent, Path(folder), args.seed)
        result = train(agent, state, steps=args.steps, window=args.window, seed=args.seed)
    if args.save_agent is not None:
        print(f"agent state written to {save_agent_state(agent, args.save_agent)}")
    return {**result, "agent": agent}


if __name__ == "__main__":
    main()
