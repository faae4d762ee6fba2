"""Per-run-step cost of N batched Digits MLP runs vs the same N runs stepped one after another.

Variants, all at one torch thread, each timing ``--windows`` windows of 50 steps for all N runs:

* ``sequential``: N single runs (task build + ``EpisodeControl``, what ``AEESEnv.step`` does per window);
* ``batched``: :class:`~aees_gym.tasks.batched.BatchedClassificationRuns` (``baddbmm`` forward, autograd);
* ``batched σ>0``: the same with gradient noise in every row (N × parameters generator calls per step);
* ``vmap``: ``torch.func`` ``vmap(grad_and_value(functional_call))`` instead of the hand-written forward,
  same data gather and batched optimizer;
* ``batched parts``: the batched step split into gather / forward+backward / optimizer.

Run ``python bench/batched_speed.py`` (about a minute); it prints µs per run-step.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from aees_gym import make_config
from aees_gym.core.control import EpisodeControl
from aees_gym.tasks import RunSeeds, get_task
from aees_gym.tasks.base import seeded_torch
from aees_gym.tasks.batched import BatchedClassificationRuns

WINDOW = 50


def sequential(n: int, windows: int, noise_action: int) -> float:
    config = make_config("Digits", total_steps=10**6, window_length=WINDOW)
    runs = []
    for seed in range(n):
        seeds = RunSeeds.derive(seed)
        run = get_task("Digits").build(config, seeds)
        runs.append((run, EpisodeControl(run.optimizer, config, seed=seeds.gradient_noise), seeds))
    started = time.perf_counter()
    for w in range(windows):
        for run, control, seeds in runs:
            control.begin_window(noise_action)
            with seeded_torch(seeds.dropout + w, run.device):
                outcome = None
                while outcome is None:
                    outcome = control.step_end(run.train_step())
    return (time.perf_counter() - started) / (n * windows * WINDOW) * 1e6


def batched(n: int, windows: int, std: float) -> float:
    config = make_config("Digits", total_steps=10**6, window_length=WINDOW)
    runs = BatchedClassificationRuns(config, n)
    runs.reset_runs(range(n), [config] * n, range(n))
    runs.run_window([1.0] * n, [std] * n, [WINDOW] * n)  # warm-up
    started = time.perf_counter()
    for _ in range(windows):
        runs.run_window([1.0] * n, [std] * n, [WINDOW] * n).cpu()
    return (time.perf_counter() - started) / (n * windows * WINDOW) * 1e6


def parts(n: int, steps: int) -> dict[str, float]:
    """µs per run-step of the batched step's pieces, timed in isolation on the engine's own tensors."""
    config = make_config("Digits", total_steps=10**6, window_length=WINDOW)
    runs = BatchedClassificationRuns(config, n)
    runs.reset_runs(range(n), [config] * n, range(n))
    index = runs.batches.plan([steps] * n, steps)
    lr = torch.full((n,), 1e-3, dtype=torch.float64)
    out = {}

    def timed(name, fn):
        fn(0)
        started = time.perf_counter()
        for s in range(steps):
            fn(s)
        out[name] = (time.perf_counter() - started) / (n * steps) * 1e6

    timed("gather", lambda s: (runs.x_train[index[s]], runs.y_train.gather(1, index[s])))
    timed("forward+backward", lambda s: runs._train_step(index[s]))
    timed("optimizer", lambda s: runs.optimizer.step(lr))
    return out


def vmap_variant(n: int, windows: int) -> float:
    from torch.func import functional_call, grad_and_value, vmap

    config = make_config("Digits", total_steps=10**6, window_length=WINDOW)
    runs = BatchedClassificationRuns(config, n)
    runs.reset_runs(range(n), [config] * n, range(n))
    base = runs._make_model().to("meta")
    names = runs.param_names

    def loss_fn(params, x, y):
        return F.cross_entropy(functional_call(base, dict(zip(names, params, strict=True)), (x,)), y)

    step = vmap(grad_and_value(loss_fn))
    params = [p.detach() for p in runs.params]
    lr = torch.full((n,), 1e-3, dtype=torch.float64)
    index = runs.batches.plan([WINDOW * (windows + 1)] * n, WINDOW * (windows + 1))

    def one(s):
        xb, yb = runs.x_train[index[s]], runs.y_train.gather(1, index[s])
        grads, _ = step(params, xb, yb)
        for p, g in zip(runs.params, grads, strict=True):
            p.grad = g
        runs.optimizer.step(lr)

    for s in range(WINDOW):
        one(s)
    started = time.perf_counter()
    for s in range(WINDOW, WINDOW * (windows + 1)):
        one(s)
    return (time.perf_counter() - started) / (n * windows * WINDOW) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, w = args.runs, args.windows
    grid = make_config("Digits").grid
    clean = grid.lr_multipliers.index(1.0) * len(grid.noise_stds)
    noisy = clean + len(grid.noise_stds) - 1
    seq = sequential(n, w, clean)
    seq_noisy = sequential(n, w, noisy)
    bat = batched(n, w, 0.0)
    bat_noisy = batched(n, w, grid.noise_stds[-1])
    vm = vmap_variant(n, w)
    print(f"N={n}, Digits MLP 64-128-10, batch 64, AdamW, 1 torch thread; µs per run-step")
    print(f"| variant | σ=0 | σ>0 |\n|---|---|---|\n| sequential | {seq:.1f} | {seq_noisy:.1f} |")
    print(f"| batched (baddbmm) | {bat:.1f} | {bat_noisy:.1f} |\n| vmap(grad_and_value) | {vm:.1f} | - |")
    print(f"speed-up batched/sequential: σ=0 {seq / bat:.2f}×, σ>0 {seq_noisy / bat_noisy:.2f}×")
    print("batched step parts (µs per run-step):", {k: round(v, 1) for k, v in parts(n, WINDOW).items()})


if __name__ == "__main__":
    main()
