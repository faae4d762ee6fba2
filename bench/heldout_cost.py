"""Cost of the ``heldout`` reward on ``Digits-v0``: whole runs under ``aees`` vs ``heldout``, interleaved.

The ``heldout`` reward evaluates the loss on the fixed reward-validation batch (70 of the 360
validation images at the default ``reward_fraction=0.2``) when each window opens and closes: two
forward passes per window, no backward, read back in the window's one loss transfer. This script
runs a default Digits run (1,000 AdamW steps, 20 windows of 50, evaluation at the end only) with a
fixed action under each reward, alternating, with one torch thread, and reports the median
training time per run (``runtime_metrics()["train_time_s"]``, which includes the window-close
evaluations) and the median cost of one ``reward_eval()`` call measured alone.

``python bench/heldout_cost.py`` (about a minute; ``--rounds 1`` for a smoke run) prints the
figures and writes ``results/bench/heldout_cost.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import torch

import aees_gym  # noqa: F401 - registers the ids
from aees_gym.core.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "heldout_cost.json"


def one_run(reward: str, seed: int) -> tuple[float, float]:
    """(train seconds, wall seconds) of one Digits run under ``reward`` with the plain-optimizer action."""
    env = gym.make("aees_gym/Digits-v0", reward={"name": reward}, eval_every=0)
    started = time.perf_counter()
    _, info = env.reset(seed=seed)
    action, terminated = info["candidate_grid"].index_of(1.0, 0.0), False
    while not terminated:
        _, _, terminated, _, _ = env.step(action)
    wall = time.perf_counter() - started
    train = env.unwrapped.runtime_metrics()["train_time_s"]
    env.close()
    return train, wall


def reward_eval_cost(calls: int = 200) -> tuple[float, float, int]:
    """Median seconds of one ``reward_eval()`` and of one training step (forward, backward, AdamW step)."""
    env = gym.make("aees_gym/Digits-v0")
    env.reset(seed=0)
    run = env.unwrapped.training_run
    evals, steps = [], []
    for _ in range(calls):
        t = time.perf_counter()
        run.reward_eval()
        evals.append(time.perf_counter() - t)
        t = time.perf_counter()
        run.train_step()
        run.optimizer.step()
        steps.append(time.perf_counter() - t)
    n = run.description["n_reward_val"]
    env.close()
    return statistics.median(evals), statistics.median(steps), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    one_run("aees", 0)  # warm-up: data load, allocator
    times: dict[str, list[float]] = {"aees": [], "heldout": []}
    for r in range(args.rounds):
        order = ("aees", "heldout") if r % 2 == 0 else ("heldout", "aees")
        for reward in order:
            times[reward].append(one_run(reward, r)[0])
    eval_s, step_s, n_reward = reward_eval_cost()
    ratios = [h / a for a, h in zip(times["aees"], times["heldout"], strict=True)]
    out = {
        "task": "Digits-v0", "total_steps": 1000, "window_length": 50, "torch_threads": 1, "rounds": args.rounds,
        "reward_val_examples": n_reward,
        "train_time_s_median": {k: statistics.median(v) for k, v in times.items()},
        "heldout_over_aees_train_time_median": statistics.median(ratios),
        "reward_eval_call_s_median": eval_s,
        "train_step_s_median": step_s,
        "reward_eval_calls_per_window": 2,
        "expected_overhead_fraction": 2 * eval_s / (50 * step_s),
    }
    print(json.dumps(out, indent=1))
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
