"""Cost of one run of each transfer set, on one torch thread: ``python -m experiments.transfer_timing``.

Runs each set's first tuning instance (never a test seed) with the plain optimizer (fixed ×1), with
×1 on a learned policy's control track (its observation, at a scale that never changes) and with the
policy itself, ``--reps`` times each, and records the process CPU seconds
(what the evaluation's core-minute budget counts) beside the wall seconds (which grow with the
machine's load) and the load average. Then prices the whole evaluation of ``experiments/transfer_v1.toml``
from the per-run CPU medians. Writes JSON (default ``runs/transfer_timing.json``).

    python -m experiments.transfer_timing --out results/transfer_v1/timings.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from aees_gym.core.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SETS = ("mnist-5k-cnn-v1", "rotten-tomatoes-lstm-v1", "gpt2-tiny-v1")


def one_run(instance: Any, overrides: dict[str, Any], agent: Any) -> dict[str, Any]:
    """One run of ``instance`` (with ``overrides``) driven by ``agent`` (``None``: fixed ×1); seconds and final metrics."""
    wall, cpu = time.perf_counter(), time.process_time()
    env = gym.make(instance.env_id, **{**instance.env_overrides, **overrides})
    obs, info = env.reset(seed=instance.seed)
    if agent is not None:
        agent.reset(seed=instance.seed, observation_space=env.observation_space, action_space=env.action_space, info=info)
    plain = env.unwrapped.config.grid.index_of(1.0, 0.0) if agent is None else None  # ×1 (relative track: keep the scale)
    done, windows = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(plain if agent is None else agent.act(obs, info))
        done, windows = terminated or truncated, windows + 1
    return {"cpu_s": round(time.process_time() - cpu, 3), "wall_s": round(time.perf_counter() - wall, 3),
            "windows": windows,
            "final_metrics": {k: v for k, v in info["final_metrics"].items() if k.startswith(("val_", "reward_val_", "diverged"))}}


def run_counts(n_tuning: int, n_test: int, n_learned: int) -> dict[str, int]:
    """Runs of one set in transfer_v1: 2 tuned references × 5 points × tuning seeds; 3 cells, random, 2 tuned, learned rows × test seeds."""
    return {"tuning": 2 * 5 * n_tuning, "references": (3 + 1 + 2) * n_test, "learned": n_learned * n_test}


def p_better_cis(n: int) -> dict[str, list[float]]:
    """P(better than the reference) with its 95 % CI when an agent wins ``k`` of ``n`` paired test runs (the resolution of ``n`` seeds)."""
    from aees_gym.reporting.stats import paired_probability_of_improvement_ci

    return {f"{k} of {n}": [round(v, 3) for v in paired_probability_of_improvement_ci({"t": [1.0] * k + [0.0] * (n - k)}, {"t": [0.5] * n})]
            for k in range(n // 2, n + 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--policy", default="learned-relative", help="a learned policy (shipped name or .npz path)")
    parser.add_argument("--learned-rows", type=int, default=6, help="learned rows priced in the estimate")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer_timing.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from aees_gym.envs.transfer import get_transfer_set
    from agents import make_agent

    learned = make_agent("learned", policy=args.policy)
    out: dict[str, Any] = {"command": "python -m experiments.transfer_timing " + " ".join(argv if argv is not None else sys.argv[1:]),
                           "torch_threads": torch.get_num_threads(), "policy": args.policy, "sets": {}}
    total = 0.0
    for name in SETS:
        s = get_transfer_set(name)
        instance = s.tuning[0]
        track = dict(learned.env_overrides)
        runs: dict[str, list[dict[str, Any]]] = {"fixed x1": [], "fixed x1 on the learned track": [], "learned": []}
        for rep in range(args.reps + 1):  # the first pass warms the caches (data, tokenizer) and is not counted
            for label, agent, overrides in (("fixed x1", None, {}), ("fixed x1 on the learned track", None, track),
                                            ("learned", learned, track)):
                result = {**one_run(instance, overrides, agent), "load_average_1m": round(os.getloadavg()[0], 2)}
                print(json.dumps({"set": name, "agent": label, "rep": rep, **result}), flush=True)
                if rep:
                    runs[label].append(result)
        median = {label: statistics.median(r["cpu_s"] for r in rs) for label, rs in runs.items()}
        counts = run_counts(len(s.tuning_seeds), len(s.test_seeds), args.learned_rows)
        # A learned row pays its track's observation (the held-out loss every window); the track at a constant scale ×1
        # prices a row that never diverges (the placeholder policy diverges on some tasks and stops early).
        per_learned = max(median["fixed x1 on the learned track"], median["learned"])
        cost = (counts["tuning"] + counts["references"]) * median["fixed x1"] + counts["learned"] * per_learned
        total += cost
        out["sets"][name] = {"instance": instance.name, "runs": runs, "median_cpu_s": median, "run_counts": counts,
                             "estimated_cpu_s": round(cost, 1)}
    out["estimated_total_cpu_min"] = round(total / 60, 1)
    out["p_better_ci_by_wins"] = p_better_cis(len(get_transfer_set(SETS[0]).test_seeds))
    print(f"estimated total: {out['estimated_total_cpu_min']} CPU core-minutes", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
