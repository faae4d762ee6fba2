"""Cost of the controller observation on the batched engine: windows/s with and without its extra features.

The tracks of :mod:`aees_gym.envs.tracks` observe the reward-validation loss (two evaluations of
the reward-validation part per window) and the gradient-norm trend (a per-step norm of every row's
gradient). This script steps 64 batched ``digits-budget-v0`` training runs (relative track, fixed
×1 action, one torch thread) under three observations, interleaved: the track's own
(``CONTROLLER_FEATURES``), the same without ``grad_norm_trend``, and the same without both
``heldout_*`` features and ``grad_norm_trend``; it reports the median windows per second of each
and the ratios to the cheapest.

``python bench/controller_features.py`` (a few minutes; ``--rounds 1 --windows 64`` for a smoke
run) prints the figures and writes ``results/bench/controller_features.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import aees_gym  # noqa: F401 - registers the ids
from aees_gym.core.fileio import atomic_write_text
from aees_gym.envs.tracks import CONTROLLER_FEATURES, track_overrides

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "controller_features.json"
VARIANTS = {
    "controller": CONTROLLER_FEATURES,
    "no_grad_norm_trend": tuple(f for f in CONTROLLER_FEATURES if f != "grad_norm_trend"),
    "no_heldout_no_grad_norm": tuple(f for f in CONTROLLER_FEATURES if f not in ("grad_norm_trend", "heldout_level", "heldout_trend")),
}


def windows_per_s(features: tuple[str, ...], n_envs: int, windows: int, seed: int) -> float:
    """Windows per second of ``n_envs`` batched runs stepping ``windows`` env steps in all (the aees reward)."""
    from aees_gym.envs.vector_env import AEESVectorEnv

    settings = {**track_overrides("relative"), "context": {"features": list(features)}}
    venv = AEESVectorEnv("Digits", n_envs, instance_set="digits-budget-v0", torch_threads=1, **settings)
    venv.reset(seed=seed)
    keep = np.full(n_envs, venv.grid.nearest(1.0, 0.0))
    started, done = time.perf_counter(), 0
    while done < windows:
        venv.step(keep)
        done += n_envs
    seconds = time.perf_counter() - started
    venv.close()
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=2048, help="env steps per measurement (all runs together)")
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    windows_per_s(VARIANTS["controller"], args.n_envs, args.n_envs, 0)  # warm-up: data load, allocator
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        names = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in names:
            rates[name].append(windows_per_s(VARIANTS[name], args.n_envs, args.windows, r))
    base = statistics.median(rates["no_heldout_no_grad_norm"])
    out = {
        "task": "Digits (digits-budget-v0 train split)", "n_envs": args.n_envs, "windows_per_measurement": args.windows,
        "torch_threads": 1, "rounds": args.rounds, "features": {k: list(v) for k, v in VARIANTS.items()},
        "windows_per_s_median": {k: statistics.median(v) for k, v in rates.items()},
        "ratio_to_no_heldout_no_grad_norm": {k: statistics.median(v) / base for k, v in rates.items()},
        "windows_per_s_all": rates,
    }
    print(json.dumps(out, indent=1))
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
