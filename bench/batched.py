"""Batched training throughput: N stacked runs against N sequential single envs and the plain loop.

For each task (``Digits-v0``, ``DigitsCNN-v0``), torch thread count (1, 2) and N (1, 8, 64, 256),
three variants train with the fixed action (LR ×1, no gradient noise), side by side in one process:

* ``plain``: a hand-written torch loop of one model (the task's network, its data on the device,
  AdamW, a fresh ``randperm`` per epoch) — no env, no controller; for the text and language rows
  (``--tasks RottenTomatoes`` or ``GPT2``, data from ``--data-dir``) the task's own training step
  (``TrainingRun.train_step`` + ``optimizer.step()``), whose network takes token tables, not features;
* ``sequential``: N single envs (``gymnasium.make``), stepped one after another, one window each
  per turn — what N runs cost without batching;
* ``batched``: :class:`~aees_gym.tasks.batched.BatchedClassificationRuns` with N rows, one
  ``run_window`` per window and the one host transfer of its losses, as a vector env does.

Optimizer steps/s count every run's steps (N runs × steps / s). Achieved FLOP/s are the task's
``flops_per_step`` (3 × the forward FLOPs of a batch, the usual convention) × steps/s, against the
peak of a large fp32 matmul measured in the same process with the same thread count. Memory per
run: on CUDA ``torch.cuda.max_memory_allocated`` growth / N; on CPU the growth of the process's
resident set (sampled every 2 ms by a thread reading ``/proc/self/statm``) over its value before
the variant was built, / N — torch's CPU allocator keeps no statistics and tracemalloc does not
see its allocations.

Rounds repeat every cell with the variant order rotated; rates are medians over rounds and ratios
medians of per-round ratios. Run ``python bench/batched.py`` (several minutes on CPU),
``--device cuda`` on a GPU, ``--quick`` for a smoke run. It prints a Markdown table and writes
``results/bench/batched.json`` (``results/bench/batched_cuda.json`` for CUDA) atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F

import aees_gym
from aees_gym.core.fileio import atomic_write_json
from aees_gym.core.hostinfo import host_metadata
from aees_gym.tasks import RunSeeds
from aees_gym.tasks.base import seeded_torch
from aees_gym.tasks.batched import batched_runs, batched_task

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("Digits", "DigitsCNN")
#: Every row ``--tasks`` accepts: the batchable tasks that need no data beyond ``--data-dir``.
TASK_CHOICES = ("Digits", "DigitsCNN", "DigitsNoisy", "Synthetic", "MNIST", "RottenTomatoes", "NewsTweets", "GPT2")
_OWN_STEP = ("RottenTomatoes", "NewsTweets", "GPT2")  # the plain loop runs the task's own training step
NS = (1, 8, 64, 256)
THREADS = (1, 2)
#: The issue's targets, checked in the JSON's ``targets`` block.
CPU_TARGET = {"task": "Digits", "n": 64, "threads": 1, "speedup_vs_sequential": 5.0, "fraction_of_matmul_peak": 0.5}
CUDA_TARGET = {"task": "Digits", "n": 256, "speedup_vs_sequential": 50.0}
Measure = tuple[int, float, float, float]  # optimizer steps, wall seconds, process CPU seconds, peak memory growth (bytes)


class PeakMemory:
    """Peak memory growth over a baseline taken at construction (see the module docstring for how)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.base = torch.cuda.memory_allocated(device)
            return
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def growth(self) -> float:
        if self.device.type == "cuda":
            return float(torch.cuda.max_memory_allocated(self.device) - self.base)
        self._stop.set()
        self._thread.join()
        return float(max(self.peak, self._rss()) - self.base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(task: str, overrides: dict[str, Any], device: torch.device, min_s: float) -> Measure:
    """One model, the task's data on the device, AdamW, fresh permutation per epoch; nothing else."""
    config = aees_gym.make_config(task, **overrides)
    if task in _OWN_STEP:
        return _own_step_loop(config, device, min_s)
    spec = batched_task(task)
    memory = PeakMemory(device)
    data = spec.load_data(config)
    x, y = data.x_train.to(device), data.y_train.to(device)
    with seeded_torch(0, device):
        model = spec.make_model(config, data)().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.base_lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(0)
    b = config.batch_size
    per_epoch = len(x) // b

    def window() -> None:
        for s in range(config.window_length):
            if s % per_epoch == 0:
                perm = torch.randperm(len(x), generator=gen).to(device)
            idx = perm[(s % per_epoch) * b : (s % per_epoch + 1) * b]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()  # one host read per window, like the envs

    window()  # warm-up
    return (*_timed(window, config.window_length, min_s, device), memory.growth())


def _own_step_loop(config: Any, device: torch.device, min_s: float) -> Measure:
    """One run of the task's own training step and optimizer, no env, no controller."""
    memory = PeakMemory(device)
    run = aees_gym.get_task(config.task).build(config, RunSeeds.derive(0))

    def window() -> None:
        for _ in range(config.window_length):
            loss = run.train_step()
            run.optimizer.step()
        loss.item()  # one host read per window, like the envs

    window()  # warm-up
    return (*_timed(window, config.window_length, min_s, device), memory.growth())


def sequential(task: str, overrides: dict[str, Any], device: torch.device, min_s: float, n: int, threads: int) -> Measure:
    """``n`` single envs, one window each per turn, until every env stepped and ``min_s`` passed."""
    memory = PeakMemory(device)
    envs = [gym.make(aees_gym.env_id(task), torch_threads=threads, **overrides) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    action = _clean_action(envs[0].unwrapped.config)
    envs[0].step(action)  # warm-up
    steps = turn = 0
    start, cpu = time.perf_counter(), time.process_time()
    while turn < n or time.perf_counter() - start < min_s:
        steps += envs[turn % n].step(action)[4]["window_steps"]
        turn += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    grown = memory.growth()
    for env in envs:
        env.close()
    return steps, seconds, cpu, grown


def batched(task: str, overrides: dict[str, Any], device: torch.device, min_s: float, n: int) -> tuple[Measure, float]:
    """``n`` rows of one engine; returns the measure and the task's ``flops_per_step``."""
    config = aees_gym.make_config(task, **overrides)
    memory = PeakMemory(device)
    runs = batched_runs(config, n)
    runs.reset_runs(range(n), [config] * n, [RunSeeds.derive(i) for i in range(n)])
    w = config.window_length

    def window() -> None:
        runs.run_window([1.0] * n, [0.0] * n, [w] * n).cpu()  # the window's one host transfer

    window()  # warm-up
    return (*_timed(window, n * w, min_s, device), memory.growth()), runs.flops_per_step


def _clean_action(config: Any) -> int:
    grid = config.grid
    return grid.lr_multipliers.index(1.0) * len(grid.noise_stds) + grid.noise_stds.index(0.0)


def _timed(window: Callable[[], None], steps_per_window: int, min_s: float, device: torch.device) -> tuple[int, float, float]:
    """(steps, wall seconds, process CPU seconds) of windows run until ``min_s`` wall seconds passed."""
    steps = 0
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    while steps == 0 or time.perf_counter() - start < min_s:
        window()
        steps += steps_per_window
    _sync(device)
    return steps, time.perf_counter() - start, time.process_time() - cpu


def matmul_peak(device: torch.device, size: int, reps: int = 5) -> float:
    """Best fp32 FLOP/s of a ``size``² matmul over ``reps`` tries (TF32 off on CUDA)."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def measure(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    overrides: dict[str, Any] = {"eval_every": 0, "total_steps": 10**6, "device": str(device)}
    if args.window is not None:
        overrides["window_length"] = args.window
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = matmul_peak(device, args.matmul_size)
        print(f"{threads} thread(s): fp32 matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
        for task in args.tasks:
            options = aees_gym.get_task(task).options_cls
            has_data_dir = dataclasses.is_dataclass(options) and "data_dir" in {f.name for f in dataclasses.fields(options)}
            task_overrides = {**overrides, "data_dir": str(args.data_dir)} if args.data_dir and has_data_dir else overrides
            if args.smoke_sizes:  # the task's small model and data, with this benchmark's budget and window
                small = {k: v for k, v in aees_gym.get_task(task).smoke_overrides.items() if k not in ("total_steps", "window_length")}
                task_overrides = {**small, **task_overrides}
            samples: dict[int, dict[str, list[Measure]]] = {n: {"plain": [], "sequential": [], "batched": []} for n in args.ns}
            flops = 0.0
            for r in range(args.rounds):
                for n in args.ns:
                    order = ["plain", "sequential", "batched"]
                    order = order[r % 3 :] + order[: r % 3]
                    for variant in order:
                        if variant == "plain":
                            got = plain_loop(task, task_overrides, device, args.min_seconds)
                        elif variant == "sequential":
                            got = sequential(task, task_overrides, device, args.min_seconds, n, threads)
                        else:
                            got, flops = batched(task, task_overrides, device, args.min_seconds, n)
                        samples[n][variant].append(got)
                        torch.set_num_threads(threads)  # envs apply their own policy; keep the cell's
                    s = samples[n]
                    print(f"  round {r + 1} {task} N={n}: " + ", ".join(f"{k} {v[-1][0] / v[-1][1]:.0f}" for k, v in s.items())
                          + " optimizer steps/s", flush=True)
            for n in args.ns:
                rows.append(_row(task, threads, n, samples[n], flops, peak))
    return rows


def _row(task: str, threads: int, n: int, s: dict[str, list[Measure]], flops: float, peak: float) -> dict[str, Any]:
    rate = {k: [steps / sec for steps, sec, _, _ in v] for k, v in s.items()}
    cpu_rate = {k: [steps / cpu for steps, _, cpu, _ in v] for k, v in s.items()}
    batched_rate = statistics.median(rate["batched"])
    return {
        "task": task, "env_id": aees_gym.env_id(task), "threads": threads, "n": n,
        "plain_steps_per_s": statistics.median(rate["plain"]),
        "sequential_steps_per_s": statistics.median(rate["sequential"]),
        "batched_steps_per_s": batched_rate,
        "batched_over_sequential": statistics.median(b / q for b, q in zip(rate["batched"], rate["sequential"], strict=True)),
        "batched_over_plain": statistics.median(b / p for b, p in zip(rate["batched"], rate["plain"], strict=True)),
        "sequential_over_plain": statistics.median(q / p for q, p in zip(rate["sequential"], rate["plain"], strict=True)),
        # Per CPU-second of this process: robust to time-slicing on a loaded machine; with 2 threads it
        # counts both threads' time, so it shows the work's cost, not the wall-clock gain of threading.
        "batched_over_sequential_cpu_time": statistics.median(
            b / q for b, q in zip(cpu_rate["batched"], cpu_rate["sequential"], strict=True)
        ),
        "batched_steps_per_cpu_s": statistics.median(cpu_rate["batched"]),
        "flops_per_step": flops,
        "batched_flops_per_s": flops * batched_rate,
        "plain_flops_per_s": flops * statistics.median(rate["plain"]),
        "matmul_peak_flops_per_s": peak,
        "batched_fraction_of_peak": flops * batched_rate / peak,
        "batched_fraction_of_peak_cpu_time": flops * statistics.median(cpu_rate["batched"]) / peak,
        "batched_memory_mb_per_run": max(m for *_, m in s["batched"]) / n / 2**20,
        "sequential_memory_mb_per_run": max(m for *_, m in s["sequential"]) / n / 2**20,
        "rates_per_round": rate,
        "cpu_time_rates_per_round": cpu_rate,
    }


def targets(rows: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    goal = CUDA_TARGET if device.type == "cuda" else CPU_TARGET
    match = [r for r in rows if r["task"] == goal["task"] and r["n"] == goal["n"] and r["threads"] == goal.get("threads", r["threads"])]
    out: dict[str, Any] = {"goal": goal, "measured": None}
    if match:
        r = match[0]
        out["measured"] = {
            "speedup_vs_sequential": r["batched_over_sequential"], "fraction_of_matmul_peak": r["batched_fraction_of_peak"],
            "speedup_vs_sequential_cpu_time": r["batched_over_sequential_cpu_time"],
            "fraction_of_matmul_peak_cpu_time": r["batched_fraction_of_peak_cpu_time"],
        }
        out["speedup_met"] = r["batched_over_sequential"] >= goal["speedup_vs_sequential"]
        if "fraction_of_matmul_peak" in goal:
            out["peak_fraction_met"] = r["batched_fraction_of_peak"] >= goal["fraction_of_matmul_peak"]
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| env | threads | N | plain loop steps/s | sequential steps/s | batched steps/s | batched ÷ sequential, wall (CPU time) "
        "| batched ÷ plain | batched GFLOP/s (of matmul peak) | MB/run batched | MB/run sequential |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env_id']} | {r['threads']} | {r['n']} | {r['plain_steps_per_s']:.0f} | {r['sequential_steps_per_s']:.0f} "
            f"| {r['batched_steps_per_s']:.0f} | {r['batched_over_sequential']:.2f}× ({r['batched_over_sequential_cpu_time']:.2f}×) "
            f"| {r['batched_over_plain']:.2f}× "
            f"| {r['batched_flops_per_s'] / 1e9:.1f} ({r['batched_fraction_of_peak']:.0%}) "
            f"| {r['batched_memory_mb_per_run']:.2f} | {r['sequential_memory_mb_per_run']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--quick", action="store_true", help="smoke run: N 1 and 2, one thread, short windows, one round")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASK_CHOICES)
    parser.add_argument("--smoke-sizes", action="store_true",
                        help="train each task's smoke-test model and data (its smoke_overrides) instead of its defaults")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="prepared data sets (aees-gym data prepare) for MNIST, RottenTomatoes, NewsTweets, GPT2")
    parser.add_argument("--ns", nargs="+", type=int, default=list(NS))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS))
    parser.add_argument("--rounds", type=int, default=2, help="rounds; medians are reported")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="least timed seconds per variant and cell")
    parser.add_argument("--window", type=int, default=None, help="window length (default: the task's)")
    parser.add_argument("--matmul-size", type=int, default=None, help="matmul peak size (default 2048 CPU, 8192 CUDA)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--conditions", default=None,
                        help="what else the machine was doing (stored in the JSON), e.g. 'other jobs paused'")
    args = parser.parse_args(argv)
    if args.quick:
        args.ns, args.threads, args.rounds, args.min_seconds, args.window = [1, 2], [1], 1, 0.0, 5
        args.matmul_size = args.matmul_size or 256
    if any(n < 1 for n in args.ns) or any(t < 1 for t in args.threads) or args.rounds < 1:
        parser.error("--ns, --threads and --rounds take positive integers.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda needs a CUDA build of torch and a visible GPU; none is available here.")
    args.matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    out = args.out or ROOT / "results" / "bench" / ("batched.json" if device.type == "cpu" else "batched_cuda.json")
    rows = measure(args, device)
    print(table(rows))
    result = {
        "benchmark": "batched",
        "device": str(device),
        "quick": args.quick,
        "action": "LR multiplier 1, gradient-noise std 0 (fixed), eval_every=0",
        "rounds": args.rounds,
        "min_seconds_per_cell": args.min_seconds,
        "window_length": args.window or "task default",
        "sizes": "each task's smoke_overrides (small model and data)" if args.smoke_sizes else "task defaults",
        "statistic": "median over rounds; ratios are medians of per-round ratios; rounds rotate the variant order",
        "flops": "task flops_per_step = 3 x forward FLOPs of one batch (Linear/Conv matmuls); the MLP's first layer "
                 "needs no input gradient, so this overstates its work by about a third",
        "memory": "CUDA: max_memory_allocated growth; CPU: peak resident-set growth over the pre-build value, "
                  "sampled every 2 ms (freed pages glibc keeps, and earlier cells' leftovers, blur small figures)",
        "matmul_peak_size": args.matmul_size,
        "conditions": args.conditions,
        "targets": targets(rows, device),
        "rows": rows,
        "machine": host_metadata(str(device)),
        "note": "Measured on a machine shared with other jobs (see load_average_1_5_15): absolute rates vary with the load; "
                "variants of one cell run back to back and rounds rotate their order so the ratios are paired.",
    }
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
