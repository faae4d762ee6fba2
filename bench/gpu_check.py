"""One GPU check: equivalence, synchronising calls, scale and the CIFAR-100 step, in one JSON.

    python bench/gpu_check.py          # on a CUDA machine: about 3-5 minutes on one H200
    python bench/gpu_check.py --tiny   # anywhere: tiny sizes (CPU without CUDA), a smoke run
    python bench/gpu_check.py --table results/bench/gpu_check.json   # the docs' Markdown table

Sections of ``results/bench/gpu_check.json`` (written atomically):

* ``equivalence``: batched windows replayed from CUDA graphs vs the same windows run eagerly
  (uniform, noisy and ragged windows mixed), and vector sub-env ``i`` vs the single env seeded
  ``s + i``, on the device — largest differences.
* ``syncs``: synchronising CUDA calls per window counted by PyTorch
  (``torch.cuda.set_sync_debug_mode``): the single env, the batched engine (eager and graphs) and
  the vector env. Without CUDA this section says it was not run.
* ``scale``: optimizer steps/s of one engine at growing N (20-step windows), graphs on and off.
* ``versus_sequential``: the engine at N = 256 against single envs stepped one after another
  (``bench/batched.py``'s ``sequential``, here over 32 envs: its rate per step does not grow with N).
* ``epoch``: ``bench/gpu_epoch.py`` with the hand-written reference loop, the task's bare loop and
  the env, several rounds, ratios per round with their range.
* ``targets``: each target, the measured value and whether it is met.

No figure here is asserted by a test; ``tests/test_cuda.py`` checks equivalence and sync counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is a folder of scripts at the repository root
    sys.path.insert(0, str(ROOT))

import aees_gym  # noqa: E402
from aees_gym.core.fileio import atomic_write_json  # noqa: E402
from aees_gym.core.hostinfo import host_metadata  # noqa: E402
from aees_gym.tasks import RunSeeds  # noqa: E402
from aees_gym.tasks.batched import BatchedClassificationRuns  # noqa: E402
from bench import gpu_epoch  # noqa: E402
from bench._sync_counter import counting_cuda_syncs  # noqa: E402
from bench.batched import sequential  # noqa: E402

DEFAULT_OUT = ROOT / "results" / "bench" / "gpu_check.json"
TARGETS = {
    "digits_n4096_steps_per_s": (">=", 1_000_000.0),
    "digitscnn_n256_over_sequential": (">=", 50.0),
    "task_step_over_reference": ("<=", 1.2),
    "env_over_task_loop": ("<=", 1.02),
    "single_env_syncs_per_window": ("<=", 1.0),
    "batched_syncs_per_window": ("<=", 1.0),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _engine(task: str, device: torch.device, n: int, graphs: bool, **overrides: Any) -> BatchedClassificationRuns:
    config = aees_gym.make_config(task, device=str(device), eval_every=0, total_steps=10**6, **overrides)
    runs = BatchedClassificationRuns(config, n, cuda_graphs=graphs)
    runs.reset_runs(range(n), [config] * n, [RunSeeds.derive(i) for i in range(n)])
    return runs


# ---------------------------------------------------------------- equivalence
def graph_vs_eager(task: str, device: torch.device, n: int, width: int) -> dict[str, Any]:
    """The same windows through an engine with CUDA graphs and one without; largest differences."""
    engines = [_engine(task, device, n, graphs, window_length=width) for graphs in (True, False)]
    plan = [("uniform", 0.0, width)] * 3 + [("noisy", 0.01, width), ("uniform", 0.0, width), ("ragged", 0.0, None), ("uniform", 0.0, width)]
    worst_loss = 0.0
    for _, std, steps in plan:
        counts = [width] * n if steps is not None else [width - (i % 3) for i in range(n)]
        mults = [0.5 + 0.25 * (i % 4) for i in range(n)]
        a, b = (e.run_window(mults, [std] * n, counts).cpu() for e in engines)
        both = torch.isfinite(a) & torch.isfinite(b)
        if not torch.equal(torch.isnan(a), torch.isnan(b)):
            raise AssertionError(f"{task}: graph and eager windows disagree on which steps ran")
        worst_loss = max(worst_loss, float((a[both] - b[both]).abs().max()) if both.any() else 0.0)
    worst_param = max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(engines[0].params, engines[1].params, strict=True))
    return {"task": task, "n": n, "window": width, "windows": [name for name, *_ in plan], "max_abs_loss_diff": worst_loss,
            "max_abs_param_diff": worst_param, "graph_replays": engines[0].graphs.replays, "graph_captures": engines[0].graphs.captures,
            "graph_failure": engines[0].graphs.failure}


def vector_vs_single(task: str, device: torch.device, n: int, window: int) -> dict[str, Any]:
    """Vector sub-env ``i`` against the single env seeded ``10 + i`` over two windows of fixed actions."""
    import gymnasium as gym

    kwargs = {"total_steps": 2 * window, "window_length": window, "device": str(device), "eval_every": 0}
    env_id = aees_gym.env_id(task)
    actions = [np.arange(n) % 9, (np.arange(n) * 5 + 2) % 9]
    envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    envs.reset(seed=10)
    vec = [envs.step(a) for a in actions]
    envs.close()
    loss_rel, reward_abs = 0.0, 0.0
    for i in range(n):
        env = gym.make(env_id, **kwargs)
        env.reset(seed=10 + i)
        single = [env.step(int(a[i])) for a in actions]
        env.close()
        ours, theirs = np.asarray(vec[0][4]["step_losses"][i]), np.asarray(single[0][4]["step_losses"])
        loss_rel = max(loss_rel, float(np.max(np.abs(ours - theirs) / np.abs(theirs))))
        reward_abs = max(reward_abs, *(abs(float(vec[w][1][i]) - float(single[w][1])) for w in range(2)))
    return {"task": task, "n": n, "window": window, "first_window_max_rel_loss_diff": loss_rel, "max_abs_reward_diff": reward_abs}


# ---------------------------------------------------------------- syncs
def single_env_syncs(task: str, device: torch.device, windows: int, window: int) -> dict[str, Any]:
    """Synchronising calls in ``windows`` env steps of the single env (after one warm-up window)."""
    import gymnasium as gym

    env = gym.make(aees_gym.env_id(task), device=str(device), eval_every=0, total_steps=(windows + 2) * window, window_length=window)
    _, info = env.reset(seed=0)
    action = 0
    env.step(action)
    with counting_cuda_syncs() as found:
        for _ in range(windows):
            env.step(action)
    env.close()
    return {"task": task, "windows": windows, "window_length": window, "syncs": len(found), "per_window": len(found) / windows,
            "calls": sorted(set(found))}


def batched_syncs(task: str, device: torch.device, n: int, windows: int, window: int, graphs: bool) -> dict[str, Any]:
    """Synchronising calls per ``run_window`` + the caller's loss read, after warm-up and capture."""
    runs = _engine(task, device, n, graphs, window_length=window)
    for _ in range(2):
        runs.run_window([1.0] * n, [0.0] * n, [window] * n).cpu()
    with counting_cuda_syncs() as found:
        for w in range(windows):
            runs.run_window([1.0 + 0.1 * w] * n, [0.0] * n, [window] * n).cpu()
    return {"task": task, "n": n, "graphs": graphs, "windows": windows, "syncs": len(found), "per_window": len(found) / windows,
            "graph_replays": runs.graphs.replays, "calls": sorted(set(found))}


def vector_env_syncs(task: str, device: torch.device, n: int, steps: int, window: int) -> dict[str, Any]:
    import gymnasium as gym

    envs = gym.make_vec(aees_gym.env_id(task), num_envs=n, vectorization_mode="vector_entry_point", device=str(device),
                        eval_every=0, total_steps=(steps + 2) * window, window_length=window)
    envs.reset(seed=0)
    action = np.zeros(n, dtype=np.int64)
    envs.step(action)
    with counting_cuda_syncs() as found:
        for _ in range(steps):
            envs.step(action)
    envs.close()
    return {"task": task, "n": n, "steps": steps, "syncs": len(found), "per_step": len(found) / steps, "calls": sorted(set(found))}


# ---------------------------------------------------------------- speed
def engine_rate(task: str, device: torch.device, n: int, window: int, graphs: bool, min_s: float) -> dict[str, Any]:
    """Optimizer steps/s of one engine (all rows, fixed-width windows, one loss read each)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    runs = _engine(task, device, n, graphs, window_length=window)

    def one() -> None:
        runs.run_window([1.0] * n, [0.0] * n, [window] * n).cpu()

    one(), one()  # warm-up, capture
    steps, started = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - started < min_s:
        one()
        steps += n * window
    seconds = time.perf_counter() - started
    out = {"task": task, "n": n, "window": window, "graphs": graphs, "steps_per_s": steps / seconds, "seconds": seconds,
           "graph_replays": runs.graphs.replays}
    if device.type == "cuda":
        out["memory_mb_per_run"] = (torch.cuda.max_memory_allocated(device) - base) / n / 2**20
    return out


def versus_sequential(task: str, device: torch.device, n: int, n_sequential: int, min_s: float) -> dict[str, Any]:
    window = aees_gym.make_config(task).window_length
    overrides = {"eval_every": 0, "total_steps": 10**6, "device": str(device)}
    seq_steps, seq_s, *_ = sequential(task, overrides, device, min_s, n_sequential, 1)
    seq_rate = seq_steps / seq_s
    out: dict[str, Any] = {"task": task, "n": n, "window": window, "sequential_envs": n_sequential, "sequential_steps_per_s": seq_rate}
    for graphs in (False, True):
        rate = engine_rate(task, device, n, window, graphs, min_s)["steps_per_s"]
        out["graphs" if graphs else "eager"] = {"batched_steps_per_s": rate, "batched_over_sequential": rate / seq_rate}
    return out


def epoch(device: torch.device, tiny: bool) -> dict[str, Any]:
    args = argparse.Namespace(cpu_smoke=tiny or device.type != "cuda", steps=2 if tiny else 200, repeats=1 if tiny else 5,
                              model="resnet18", compile=False)
    s = gpu_epoch.settings_for(args)
    if not s.cpu_smoke:  # 200 steps need only 200 batches of data
        s = gpu_epoch.Settings(**{**s.__dict__, "n_train": s.steps * s.batch_size, "window_length": 100})
    with tempfile.TemporaryDirectory(prefix="aees_cifar_") as tmp:
        gpu_epoch.write_synthetic_cifar100(Path(tmp), s.n_train, 2 * s.batch_size)
        result = gpu_epoch.measure(s, Path(tmp), variants=("reference", "plain", "env"))
    return {"settings": s.__dict__, **result}


# ---------------------------------------------------------------- report
def _timed(name: str, fn: Callable[[], Any], log: dict[str, float]) -> Any:
    started = time.perf_counter()
    out = fn()
    log[name] = time.perf_counter() - started
    print(f"  {name}: {log[name]:.1f} s", flush=True)
    return out


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Each target of :data:`TARGETS` with its measured value (``None`` where its section did not run)."""
    measured: dict[str, float | None] = dict.fromkeys(TARGETS)

    def rows(key: str) -> list[dict[str, Any]]:
        value = result.get(key)
        return value if isinstance(value, list) else []

    for row in rows("scale"):
        if row["task"] == "Digits" and row["n"] == 4096 and row["graphs"]:
            measured["digits_n4096_steps_per_s"] = row["steps_per_s"]
    for row in rows("versus_sequential"):
        if row["task"] == "DigitsCNN" and row["n"] == 256:
            measured["digitscnn_n256_over_sequential"] = row["graphs"]["batched_over_sequential"]
    ratios = result["epoch"].get("round_ratios", {}) if isinstance(result.get("epoch"), dict) else {}
    if ratios:
        measured["task_step_over_reference"] = ratios["plain_over_reference"]["median"]
        measured["env_over_task_loop"] = ratios["env_over_plain"]["median"]
    syncs = result.get("syncs")
    if isinstance(syncs, dict) and "single_env" in syncs:
        measured["single_env_syncs_per_window"] = max(r["per_window"] for r in syncs["single_env"])
        measured["batched_syncs_per_window"] = max(r["per_window"] for r in syncs["batched"])
    out = {}
    for name, (op, goal) in TARGETS.items():
        value = measured[name]
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        out[name] = {"goal": f"{op} {goal:g}", "measured": value, "met": met}
    return out


def _section(result: dict[str, Any], key: str, fn: Callable[[], Any], path: Path, deadline: float) -> None:
    """Run one section into ``result[key]``; an error or the time budget is recorded, not fatal.

    The JSON is rewritten after every section, so a run stopped at its time limit keeps what is done.
    """
    if time.perf_counter() > deadline:
        result[key] = "skipped: the run's time budget (--budget-s) was used up"
    else:
        try:
            result[key] = fn()
        except Exception as exc:  # a broken section must not lose the others' figures
            result[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
            print(f"  {key} failed: {exc}", flush=True)
    atomic_write_json(path, result)


def run(tiny: bool, path: Path, budget_s: float) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(1)
    deadline = time.perf_counter() + budget_s
    log: dict[str, float] = {}
    small = tiny or not cuda
    result: dict[str, Any] = {"mode": "tiny" if small else "full", "device": str(device), "environment": host_metadata(str(device)),
                              "seconds": log}
    tasks = ("Digits", "DigitsCNN")

    def equivalence() -> dict[str, Any]:
        n, w = (3, 4) if small else (16, 20)
        return {
            "graph_vs_eager": [_timed(f"graph vs eager {t}", lambda t=t: graph_vs_eager(t, device, n, w), log) for t in tasks],
            "vector_vs_single": [_timed(f"vector vs single {t}", lambda t=t: vector_vs_single(t, device, 2 if small else 3, w), log)
                                 for t in tasks],
        }

    def syncs() -> dict[str, Any] | str:
        if not cuda:
            return "not run: needs CUDA (set_sync_debug_mode counts CUDA synchronisations)"
        w, n = 50, 4 if small else 64
        return {
            "single_env": [_timed(f"syncs single {t}", lambda t=t: single_env_syncs(t, device, 4, w), log) for t in tasks],
            "batched": [_timed(f"syncs batched {t} graphs={g}", lambda t=t, g=g: batched_syncs(t, device, n, 4, w, g), log)
                        for t in tasks for g in (False, True)],
            "vector_env": [_timed("syncs vector Digits", lambda: vector_env_syncs("Digits", device, 4 if small else 16, 3, w), log)],
        }

    min_s = 0.01 if small else 1.5

    def scale() -> list[dict[str, Any]]:
        grid = [("Digits", (2, 4) if small else (256, 1024, 4096, 16384)), ("DigitsCNN", (2,) if small else (256, 1024))]
        rows = []
        for t, ns in grid:
            for n in ns:
                for g in (False, True):
                    if time.perf_counter() > deadline:
                        return rows
                    rows.append(_timed(f"scale {t} N={n} graphs={g}", lambda t=t, n=n, g=g: engine_rate(t, device, n, 4 if small else 20, g, min_s), log))
        return rows

    def versus() -> list[dict[str, Any]]:
        n = 2 if small else 256
        return [_timed(f"vs sequential {t}", lambda t=t: versus_sequential(t, device, n, 2 if small else 32, min_s), log) for t in tasks]

    _section(result, "equivalence", equivalence, path, deadline)
    _section(result, "syncs", syncs, path, deadline)
    _section(result, "versus_sequential", versus, path, deadline)
    _section(result, "epoch", lambda: _timed("epoch", lambda: epoch(device, small), log), path, deadline)
    _section(result, "scale", scale, path, deadline)
    _section(result, "targets", lambda: targets(result) if not small else "not judged: tiny mode", path, float("inf"))
    return result


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 10 ** (digits - 1) else f"{value:.{digits}g}"


def markdown(result: dict[str, Any]) -> str:
    """The docs' GPU table from a ``gpu_check.json`` result (what ``--table`` prints)."""
    env = result.get("environment", {})
    lines = [f"Device: {env.get('cuda_device', result.get('device'))}, torch {env.get('torch', '?')}, mode {result.get('mode')}.", ""]
    if isinstance(result.get("targets"), dict):
        lines += ["| target | goal | measured | met |", "| --- | --- | --- | --- |"]
        lines += [f"| {k} | {t['goal']} | {_fmt(t['measured'], 4)} | {'yes' if t['met'] else ('—' if t['met'] is None else 'no')} |"
                  for k, t in result["targets"].items()]
        lines.append("")
    if isinstance(result.get("scale"), list):
        lines += ["| task | N | window | eager steps/s | CUDA-graph steps/s |", "| --- | --- | --- | --- | --- |"]
        cells: dict[tuple[str, int, int], dict[bool, float]] = {}
        for row in result["scale"]:
            cells.setdefault((row["task"], row["n"], row["window"]), {})[row["graphs"]] = row["steps_per_s"]
        lines += [f"| {t} | {n:,} | {w} | {_fmt(v.get(False))} | {_fmt(v.get(True))} |" for (t, n, w), v in cells.items()]
        lines.append("")
    if isinstance(result.get("versus_sequential"), list):
        lines += ["| task | N | sequential steps/s | batched eager (× seq.) | batched graphs (× seq.) |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['task']} | {r['n']} | {_fmt(r['sequential_steps_per_s'])} | {_fmt(r['eager']['batched_steps_per_s'])} "
                  f"({_fmt(r['eager']['batched_over_sequential'])}×) | {_fmt(r['graphs']['batched_steps_per_s'])} "
                  f"({_fmt(r['graphs']['batched_over_sequential'])}×) |" for r in result["versus_sequential"]]
        lines.append("")
    syncs = result.get("syncs")
    if isinstance(syncs, dict) and "single_env" in syncs:
        lines += ["| synchronising calls | per window |", "| --- | --- |"]
        lines += [f"| single env {r['task']} | {r['per_window']:g} |" for r in syncs["single_env"]]
        lines += [f"| batched {r['task']} ({'graphs' if r['graphs'] else 'eager'}) | {r['per_window']:g} |" for r in syncs["batched"]]
        lines += [f"| vector env {r['task']} (per step) | {r['per_step']:g} |" for r in syncs["vector_env"]]
        lines.append("")
    epoch = result.get("epoch")
    if isinstance(epoch, dict) and "round_ratios" in epoch:
        lines += ["| CIFAR-100 step | ms/step | ratio per round: median (range) |", "| --- | --- | --- |"]
        ratios = epoch["round_ratios"]
        shown = {"reference": None, "plain": "plain_over_reference", "env": "env_over_plain"}
        for name, key in shown.items():
            r = ratios.get(key) if key else None
            spread = f"{r['median']:.3f} ({r['min']:.3f}–{r['max']:.3f}, {len(r['per_round'])} rounds)" if r else "—"
            lines.append(f"| {name} | {epoch['ms_per_step'][name]:.2f} | {spread} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run; automatic without CUDA)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--budget-s", type=float, default=270.0, help="start no new section (or scale cell) after this many seconds")
    parser.add_argument("--table", type=Path, default=None, help="print the Markdown table of this JSON and exit")
    args = parser.parse_args(argv)
    if args.table is not None:
        result = json.loads(args.table.read_text())
        print(markdown(result), end="")
        return result
    started = time.perf_counter()
    result = run(args.tiny, args.out, args.budget_s)
    result["total_seconds"] = time.perf_counter() - started
    atomic_write_json(args.out, result)
    if isinstance(result["targets"], dict):
        for name, t in result["targets"].items():
            shown = "—" if t["measured"] is None else f"{t['measured']:.4g}"
            print(f"{name:<34}{t['goal']:>12}{shown:>14}  {'met' if t['met'] else 'NOT met'}")
    print(f"wrote {args.out} in {result['total_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
