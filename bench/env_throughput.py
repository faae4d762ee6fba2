"""Env throughput on ``Digits-v0``: one env and 2-copy vector envs against the plain training loop.

Variants, each running whole training runs (resets included) with a fixed cycle of actions:

* ``plain_loop``: the task's own ``train_step`` + ``optimizer.step()`` with no controller — the
  physical limit of optimizer steps per second on one core;
* ``single_env``: one ``AEESEnv``;
* ``make_vec_sync`` / ``make_vec_async``: ``gymnasium.make_vec(..., num_envs=2)``;
* ``sb3_subproc``: SB3's ``SubprocVecEnv`` with 2 copies from ``"aees_gym:aees_gym/Digits-v0"``.

Every process uses one torch thread (vector workers get it from the env's ``torch_threads``
default). The env runs evaluate only at the end of a run (``eval_every=0``) so that optimizer steps
are comparable with the plain loop; the first reset of each variant (worker start-up) is not timed.
Optimizer steps are counted from ``info["window_steps"]`` (Gymnasium's next-step autoreset steps
train nothing). Ratios divide each variant's optimizer steps/s by the plain loop's; with 2 copies on
2 cores the ideal is 2.0. The machine may be shared, so the JSON records the load average.

Rounds run every variant once, in an order rotated each round; rates and paired ratios are medians
over rounds. Run ``python bench/env_throughput.py`` (a few minutes; ``--runs 1 --rounds 1`` for a
smoke run). It prints a
table and writes ``results/bench/env_throughput.json`` atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import aees_gym
from aees_gym.core.fileio import atomic_write_text
from aees_gym.core.hostinfo import host_metadata
from aees_gym.tasks import RunSeeds, get_task

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "env_throughput.json"
TASK = "Digits"
# No evaluation inside the measured windows: the plain loop it is compared with has none.
OVERRIDES = {"eval_every": 0}
COPIES = 2


def plain_loop(runs: int) -> tuple[int, int, float]:
    """(optimizer steps, windows they amount to, seconds) of the bare training loop, model builds included."""
    spec = get_task(TASK)
    config = aees_gym.make_config(TASK, **OVERRIDES)
    start = time.perf_counter()
    for seed in range(runs):
        run = spec.build(config, RunSeeds.derive(seed))
        for _ in range(config.total_steps):
            run.train_step()
            run.optimizer.step()
        run.evaluate()
    return runs * config.total_steps, runs * config.n_windows, time.perf_counter() - start


def _actions(n_actions: int, copies: int, t: int) -> np.ndarray:
    return np.asarray([(t + 3 * i) % n_actions for i in range(copies)])


def single_env(runs: int) -> tuple[int, int, float]:
    env = gym.make(aees_gym.env_id(TASK), **OVERRIDES)
    env.reset(seed=0)
    opt_steps = env_steps = 0
    start = time.perf_counter()
    for episode in range(runs):
        if episode:
            env.reset()
        terminated = False
        while not terminated:
            *_, terminated, _, info = env.step(int(_actions(env.action_space.n, 1, env_steps)[0]))
            opt_steps += info["window_steps"]
            env_steps += 1
    return opt_steps, env_steps, time.perf_counter() - start


def gym_vector(mode: str) -> Callable[[int], tuple[int, int, float]]:
    def run(runs: int) -> tuple[int, int, float]:
        envs = gym.make_vec(aees_gym.env_id(TASK), num_envs=COPIES, vectorization_mode=mode, **OVERRIDES)
        try:
            envs.reset(seed=0)
            n_windows = aees_gym.make_config(TASK, **OVERRIDES).n_windows
            opt_steps = env_steps = 0
            t = 0
            start = time.perf_counter()
            while env_steps < runs * n_windows * COPIES:
                *_, info = envs.step(_actions(envs.single_action_space.n, COPIES, t))
                # False (or absent when every copy resets) on next-step autoreset steps, which train nothing.
                trained = info.get("_window_steps", np.zeros(COPIES, dtype=bool))
                opt_steps += int(info["window_steps"][trained].sum()) if trained.any() else 0
                env_steps += int(trained.sum())
                t += 1
            return opt_steps, env_steps, time.perf_counter() - start
        finally:
            envs.close()

    return run


def sb3_subproc(runs: int) -> tuple[int, int, float]:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(f"aees_gym:{aees_gym.env_id(TASK)}", n_envs=COPIES, seed=0, vec_env_cls=SubprocVecEnv, env_kwargs=OVERRIDES)
    try:
        venv.reset()
        n_windows = aees_gym.make_config(TASK, **OVERRIDES).n_windows
        opt_steps = env_steps = 0
        start = time.perf_counter()
        for t in range(runs * n_windows):
            *_, infos = venv.step(_actions(venv.action_space.n, COPIES, t))
            opt_steps += sum(i["window_steps"] for i in infos)
            env_steps += COPIES
        return opt_steps, env_steps, time.perf_counter() - start
    finally:
        venv.close()


VARIANTS: dict[str, Callable[[int], tuple[int, int, float]]] = {
    "plain_loop": plain_loop,
    "single_env": single_env,
    "make_vec_sync": gym_vector("sync"),
    "make_vec_async": gym_vector("async"),
    "sb3_subproc": sb3_subproc,
}


def measure(runs: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Median rates over ``rounds``; the variant order rotates each round so load drifts hit all alike."""
    plain_loop(1)  # warm-up: data loading and first-call costs stay out of every timing
    names = list(VARIANTS)
    samples: dict[str, list[tuple[int, int, float]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            samples[name].append(VARIANTS[name](runs))
            opt, _, sec = samples[name][-1]
            print(f"  round {r + 1} {name}: {opt / sec:.0f} optimizer steps/s", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    for name, got in samples.items():
        opt_rates = [o / s for o, _, s in got]
        rows[name] = {
            "optimizer_steps_per_s": statistics.median(opt_rates),
            "env_steps_per_s": statistics.median(e / s for _, e, s in got),
            "optimizer_steps_per_s_rounds": opt_rates,
            # Paired with the plain loop of the same round.
            "ratio_to_plain_loop": statistics.median(
                (o / s) / (po / ps) for (o, _, s), (po, _, ps) in zip(got, samples["plain_loop"], strict=True)
            ),
        }
    return rows


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| variant | env steps/s | optimizer steps/s | ratio to plain loop |", "|---|---|---|---|"]
    for name, r in rows.items():
        env_rate = "—" if name == "plain_loop" else f"{r['env_steps_per_s']:.1f}"
        lines.append(f"| {name} | {env_rate} | {r['optimizer_steps_per_s']:.0f} | {r['ratio_to_plain_loop']:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="training runs per copy, variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = aees_gym.make_config(TASK, **OVERRIDES)
    print(f"{aees_gym.env_id(TASK)}: {config.total_steps} steps/run in windows of {config.window_length}; {args.runs} runs per copy")
    rows = measure(args.runs, args.rounds)
    print(table(rows))
    atomic_write_text(args.out, json.dumps({
        "benchmark": "env_throughput",
        "env_id": aees_gym.env_id(TASK),
        "overrides": OVERRIDES,
        "total_steps": config.total_steps,
        "window_length": config.window_length,
        "runs_per_copy_per_round": args.runs,
        "rounds": args.rounds,
        "statistic": "median over rounds; ratio = median of per-round ratios to that round's plain loop",
        "copies": COPIES,
        "torch_threads_per_process": 1,
        "variants": rows,
        "machine": host_metadata("cpu"),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
