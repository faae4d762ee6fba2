"""Controller overhead: plain loop vs EpisodeControl vs AEESEnv vs pulseopt.AEES, side by side.

For each model (the 784-256-10 MLP with batch 128 and the ``Digits-v0`` MLP, both AdamW) this runs,
in one process and interleaved round-robin so machine noise hits every variant alike:

1. a memory pass: a fresh variant per loop, built and trained under ``torch.profiler`` memory
   tracking; its peak CPU-allocator bytes minus the plain loop's is the *extra peak memory*;
2. a counting pass (after a warm-up): ``Tensor.item/tolist/cpu/numpy/float()/int()/bool()`` and
   ``clone`` calls per optimizer step, minus the plain loop's;
3. the timing pass: ``--repeats`` rounds of ``--steps`` optimizer steps per variant, the order
   rotated every round; ratios (wall clock and process CPU time) are paired per round against the
   plain loop, and the σ > 0 variants also against the plain loop drawing the same noise inline;
4. the controller alone: CPU µs per step that ``EpisodeControl`` adds around a no-op optimizer on
   the model's real parameters, a steady figure even when the machine is busy.

Run ``python bench/overhead.py`` (about 3-4 minutes on 2 cores; ``--quick`` for a smoke run). It
prints a Markdown table and writes ``results/bench/overhead.json`` atomically.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from aees_gym.core.fileio import atomic_write_text
from aees_gym.core.hostinfo import host_metadata

if __package__:
    from bench import _variants as V
    from bench._isolated import controller_costs
    from bench._sync_counter import SYNC_METHODS, CallCounter, StepCounts, marking_optimizer_steps, peak_allocated_bytes
else:  # run as a script: python bench/overhead.py
    import _variants as V
    from _isolated import controller_costs
    from _sync_counter import SYNC_METHODS, CallCounter, StepCounts, marking_optimizer_steps, peak_allocated_bytes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "overhead.json"
RATIO_TARGET = 1.03
MEMORY_METHOD = (
    "torch.profiler profile_memory: CPU-allocator allocations and frees replayed in time order over "
    "(build the run + construct the controller/env + the measured optimizer steps) of a fresh variant; "
    "extra = variant peak - plain-loop peak. Python-object memory is not included."
)


@dataclass(frozen=True)
class BenchSettings:
    """How much work each pass does.

    Args:
        steps: Optimizer steps per variant per timing round (a multiple of the 50-step window).
        repeats: Timing rounds.
        warmup_steps: Untimed steps per variant before counting and timing.
        count_steps: Optimizer steps of the counting pass.
        memory_steps: Optimizer steps of the memory pass.
        isolated_calls: Calls per round when timing the controller alone (a multiple of the window).
        isolated_rounds: Rounds when timing the controller alone.
        threads: torch intra-op threads.
    """

    steps: int = 50
    repeats: int = 28
    warmup_steps: int = 100
    count_steps: int = 100
    memory_steps: int = 100
    isolated_calls: int = 200
    isolated_rounds: int = 15
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "warmup_steps", "count_steps", "memory_steps", "isolated_calls"):
            value = getattr(self, name)
            if value < V.WINDOW or value % V.WINDOW:
                raise ValueError(f"{name} must be a positive multiple of the {V.WINDOW}-step window, got {value}.")
        if min(self.repeats, self.isolated_rounds, self.threads) < 1:
            raise ValueError(f"repeats, isolated_rounds and threads must be >= 1, got {self.repeats}, "
                             f"{self.isolated_rounds} and {self.threads}.")

    @property
    def total_steps(self) -> int:
        # One spare window keeps every env run from terminating (and evaluating) inside the benchmark.
        return self.warmup_steps + self.count_steps + self.steps * self.repeats + V.WINDOW


QUICK = BenchSettings(
    steps=50, repeats=3, warmup_steps=50, count_steps=50, memory_steps=50, isolated_calls=50, isolated_rounds=2
)


# ---------------------------------------------------------------------------------------- passes
@dataclass
class Timings:
    """Seconds per optimizer step of one variant in each round: wall clock and this process's CPU time."""

    wall: list[float]
    cpu: list[float]


def time_interleaved(variants: dict[str, V.Variant], steps: int, repeats: int) -> dict[str, Timings]:
    """Time every variant ``repeats`` times, ``steps`` optimizer steps each; the order rotates every round.

    CPU time is recorded next to wall time because on a shared machine the wall clock also counts
    the time other processes held the core, which the CPU clock does not.
    """
    names = list(variants)
    times = {name: Timings([], []) for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # a collection triggered by the previous variant's garbage must not land here
            wall, cpu = time.perf_counter(), time.process_time()
            variants[name].run(steps)
            times[name].cpu.append((time.process_time() - cpu) / steps)
            times[name].wall.append((time.perf_counter() - wall) / steps)
    return times


def count_calls(variant: V.Variant, steps: int) -> list[StepCounts]:
    """Sync and clone calls attributed to each of ``steps`` optimizer steps."""
    counter = CallCounter()
    with counter, marking_optimizer_steps(counter, variant.optimizer):
        variant.run(steps)
    return counter.per_step()


def memory_peaks(factories: dict[str, Callable[[], V.Variant]], steps: int) -> dict[str, dict[str, int]]:
    """Peak and end allocator bytes of build + ``steps`` optimizer steps of a fresh instance of each variant."""
    peaks = {}
    for name, make in factories.items():
        kept: list[V.Variant] = []  # kept alive so end_bytes is what the variant still holds

        def block(make: Callable[[], V.Variant] = make, kept: list[V.Variant] = kept) -> None:
            kept.append(make())
            kept[-1].run(steps)

        gc.collect()
        peaks[name] = asdict(peak_allocated_bytes(block))
    return peaks


# ---------------------------------------------------------------------------------------- summaries
def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _clock_summary(times: list[float], plain: list[float]) -> dict[str, Any]:
    ratios = [t / p for t, p in zip(times, plain, strict=True)]
    return {
        "median_s_per_step": statistics.median(times),
        "min_s_per_step": min(times),
        "ratio_median": statistics.median(ratios),
        "ratio_q25": _quantile(ratios, 0.25),
        "ratio_q75": _quantile(ratios, 0.75),
        "ratio_of_mins": min(times) / min(plain),
        "seconds_per_step": times,
    }


def timing_summary(times: Timings, plain: Timings) -> dict[str, Any]:
    """Per clock: median and minimum seconds per step, and the per-round paired ratio to the plain loop."""
    return {"wall": _clock_summary(times.wall, plain.wall), "cpu": _clock_summary(times.cpu, plain.cpu)}


def calls_summary(counts: list[StepCounts], plain: list[StepCounts], window: int) -> dict[str, Any]:
    """Calls added beyond the plain loop: mean per step, typical (median) step, worst step, per window."""
    n = len(counts)
    base_sync = statistics.median(c.syncs for c in plain)
    mean_sync = sum(c.syncs for c in counts) / n - sum(c.syncs for c in plain) / len(plain)
    mean_clone = sum(c.clones for c in counts) / n - sum(c.clones for c in plain) / len(plain)
    clone_bytes = sum(c.clone_bytes for c in counts) / n - sum(c.clone_bytes for c in plain) / len(plain)
    return {
        "plain_syncs_per_step": base_sync,
        "added_syncs_per_step_mean": mean_sync,
        "added_syncs_per_step_median": statistics.median(c.syncs for c in counts) - base_sync,
        "added_syncs_max_in_one_step": max(c.syncs for c in counts) - base_sync,
        "steps_with_added_sync_fraction": sum(c.syncs > base_sync for c in counts) / n,
        "added_syncs_per_window": mean_sync * window,
        "added_clones_per_step": mean_clone,
        "added_clone_bytes_per_step": clone_bytes,
    }


def meets_targets(entry: dict[str, Any]) -> dict[str, bool]:
    """Targets: ≤ 1.03× plain, no host sync in a typical step (one per window allowed), no clones."""
    calls, timing = entry["calls"], entry["timing"]
    met = {
        "time_cpu": timing["cpu"]["ratio_median"] <= RATIO_TARGET,
        "time_wall": timing["wall"]["ratio_median"] <= RATIO_TARGET,
        "syncs": calls["added_syncs_per_step_median"] <= 0 and calls["added_syncs_per_window"] <= 1.0 + 1e-9,
        "clones": calls["added_clones_per_step"] <= 0,
    }
    if "vs_plain_noise_cpu" in timing:
        met["time_cpu_vs_plain_noise"] = timing["vs_plain_noise_cpu"]["ratio_median"] <= RATIO_TARGET
    return met


def _variant_entry(
    name: str, variant: V.Variant, times: dict[str, Timings], counts: dict[str, list[StepCounts]], memory: dict[str, dict[str, int]]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "label": V.VARIANT_LABELS[name],
        "timing": timing_summary(times[name], times["plain"]),
        "calls": calls_summary(counts[name], counts["plain"], V.WINDOW),
        "memory": {
            **memory[name],
            "extra_peak_bytes": memory[name]["peak_bytes"] - memory["plain"]["peak_bytes"],
            "extra_end_bytes": memory[name]["end_bytes"] - memory["plain"]["end_bytes"],
        },
    }
    if name in V.NOISY:
        entry["timing"]["vs_plain_noise_cpu"] = _clock_summary(times[name].cpu, times[V.NOISE_BASELINE].cpu)
    if isinstance(variant, V.PulseoptLoop):
        entry["noise_on_fraction"] = variant.noisy_steps / max(variant.global_step, 1)
    if name in V.TARGETED:
        entry["meets_targets"] = meets_targets(entry)
    return entry


def bench_model(model: str, settings: BenchSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All four passes for one model; returns its JSON section."""
    factories = V.variant_factories(model, settings.total_steps)
    started = time.perf_counter()

    def progress(msg: str) -> None:
        log(f"[{model} {time.perf_counter() - started:6.1f}s] {msg}")

    progress(f"memory pass ({settings.memory_steps} steps per variant)")
    V.build_run(model, settings.total_steps)  # fills data caches, so no variant's profile pays for them
    memory = memory_peaks(factories, settings.memory_steps)
    variants = {name: make() for name, make in factories.items()}
    progress(f"warm-up and counting pass ({settings.count_steps} steps per variant)")
    time_interleaved(variants, settings.warmup_steps, 1)
    counts = {name: count_calls(v, settings.count_steps) for name, v in variants.items()}
    progress(f"timing: {settings.repeats} rounds x {settings.steps} steps x {len(variants)} variants")
    times = time_interleaved(variants, settings.steps, settings.repeats)
    progress(f"controller alone: {settings.isolated_rounds} rounds x {settings.isolated_calls} calls")
    alone = controller_costs(model, settings.isolated_calls, settings.isolated_rounds)
    plain_us = statistics.median(times["plain"].cpu) * 1e6
    alone["plain_step_cpu_us"] = plain_us
    alone["implied_ratio"] = {k: 1.0 + us / plain_us for k, us in alone["added_us_per_step"].items()}
    progress("done")
    entries = {name: _variant_entry(name, v, times, counts, memory) for name, v in variants.items()}
    return {**V.describe(model), "controller_alone": alone, "variants": entries}


# ---------------------------------------------------------------------------------------- output
def _ratio_cell(clock: dict[str, Any]) -> str:
    return f"{clock['ratio_median']:.3f} ({clock['ratio_q25']:.3f}–{clock['ratio_q75']:.3f})"


def markdown_table(results: dict[str, Any]) -> str:
    lines = []
    for model, section in results["models"].items():
        lines += [
            f"**{model}**: {section['description']} (window {section['window_length']}, "
            f"{results['settings']['threads']} thread(s))",
            "",
            "| variant | ms / step (wall) | × plain, wall (IQR) | × plain, CPU time (IQR) | × plain+noise, CPU "
            "| added host syncs / step (per window) | clones / step | extra peak KiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for entry in section["variants"].values():
            w, u = entry["timing"]["wall"], entry["timing"]["cpu"]
            c, m = entry["calls"], entry["memory"]
            vs_noise = entry["timing"].get("vs_plain_noise_cpu")
            label = entry["label"]
            if "noise_on_fraction" in entry:
                label += f", σ>0 on {entry['noise_on_fraction']:.0%} of steps"
            lines.append(
                f"| {label} | {w['median_s_per_step'] * 1e3:.3f} | {_ratio_cell(w)} | {_ratio_cell(u)} | "
                f"{_ratio_cell(vs_noise) if vs_noise else '—'} | "
                f"{c['added_syncs_per_step_mean']:.2f} ({c['added_syncs_per_window']:.0f}) | "
                f"{c['added_clones_per_step']:.2f} | {m['extra_peak_bytes'] / 1024:.1f} |"
            )
        iso = section["controller_alone"]
        parts = ", ".join(
            f"{name} {us:.1f} µs ({iso['implied_ratio'][name]:.3f}×)" for name, us in iso["added_us_per_step"].items()
        )
        lines += ["", f"Controller alone, CPU µs added per step (→ implied ratio to the plain loop): {parts}.", ""]
    return "\n".join(lines)


def machine_info(threads: int) -> dict[str, Any]:
    try:
        import pulseopt

        pulseopt_version = pulseopt.__version__
    except ImportError:
        pulseopt_version = None
    return {
        **host_metadata("cpu"),
        "torch_threads": threads,
        "pulseopt": pulseopt_version,
        "shared_machine": True,
        "note": "Measured on a machine shared with other jobs; ratios are paired per round to cancel load drift.",
    }


def run_benchmark(settings: BenchSettings, models: Sequence[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark as a JSON-ready dict (threads are set by the caller)."""
    info = machine_info(settings.threads)
    started = time.perf_counter()
    sections = {model: bench_model(model, settings, log) for model in models}
    info["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "schema_version": 1,
        "benchmark": "controller_overhead",
        "machine": info,
        "settings": asdict(settings),
        "targets": {"ratio_max": RATIO_TARGET, "added_syncs_per_typical_step": 0, "added_syncs_per_window_max": 1, "clones_per_step": 0},
        "methods": {
            "timing": "median over rounds of seconds per optimizer step, wall clock (perf_counter) and process CPU time "
            "(process_time); ratios paired per round against the plain loop; variants interleaved round-robin with "
            "the order rotated each round; gc.collect() before each timed chunk",
            "syncs": f"Python-level calls of Tensor.{{{', '.join(SYNC_METHODS)}}} per optimizer step (monkeypatched, "
            "separate counting pass), minus the plain loop's; attributed to steps by an optimizer step post-hook",
            "clones": "calls of Tensor.clone and torch.clone per optimizer step, minus the plain loop's",
            "memory": MEMORY_METHOD,
            "env": "gymnasium.make with eval_every=0 and a budget longer than the benchmark, so no evaluation is timed",
        },
        "wall_time_s": time.perf_counter() - started,
        "models": sections,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="optimizer steps per variant per timing round (multiple of 50)")
    parser.add_argument("--repeats", type=int, help="timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--models", nargs="+", choices=sorted(V.MODELS), default=list(V.MODELS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT.relative_to(ROOT)})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else BenchSettings()
    overrides = {k: v for k, v in (("steps", args.steps), ("repeats", args.repeats)) if v is not None}
    try:
        settings = BenchSettings(**{**asdict(base), **overrides, "threads": args.threads})
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(settings.threads)
    results = run_benchmark(settings, args.models, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(markdown_table(results))
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
