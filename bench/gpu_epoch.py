"""One CIFAR-100 epoch: a hand-written reference loop, the task's bare loop and the run under ``AEESEnv``, side by side.

Both variants build the run with the ``CIFAR100-v0`` task (CIFAR ResNet-18, batch 128, fused AdamW,
bf16 autocast, channels_last, uint8 images on the GPU with on-device crop+flip), so model, batches
and kernels are identical; only the loop differs. The plain loop calls ``train_step(); optimizer.step()``;
the env runs 200-step windows under the chosen candidate (×1 LR, no noise, and ×1 LR with σ=0.005).
The reference (:func:`time_reference`) is the limit: the same network and step written out by hand
on uint8 images already on the device, with no task, env or data-order code at all. Each round runs
every variant once; the JSON gives per-round ratios (task/reference, env/task) with their range.
Time under the env is the env's own training time (``final_metrics["train_time_s"]``), so the final
validation pass is not counted; each window ends with its one host read, so GPU work is included.

    python bench/gpu_epoch.py                 # on a CUDA machine: one epoch (390 steps) per variant
    python bench/gpu_epoch.py --cpu-smoke     # anywhere: ResNet-8, 30 steps, 1 torch thread

Without CUDA the reduced CPU version runs automatically and the JSON says so. Real CIFAR-100 files
are read from ``--data-dir`` when present; otherwise random pixels are written in the real pickle
format to a temporary folder (speed does not depend on pixel values), also recorded in the JSON.
Writes ``results/bench/gpu_epoch.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aees_gym.core.fileio import atomic_write_text
from aees_gym.core.hostinfo import host_metadata

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench" / "gpu_epoch.json"


@dataclass(frozen=True)
class Settings:
    """One benchmark configuration."""

    device: str
    model: str
    batch_size: int
    steps: int
    window_length: int
    warmup_steps: int
    repeats: int
    n_train: int
    compile: bool
    cpu_smoke: bool


def settings_for(args: argparse.Namespace) -> Settings:
    cpu = args.cpu_smoke or not torch.cuda.is_available()
    if cpu:
        return Settings("cpu", "resnet8", 32, args.steps or 30, 10, 3, args.repeats or 2, 1024, args.compile, True)
    n_train = 50_000
    return Settings("cuda", args.model, 128, args.steps or n_train // 128, 200, 20, args.repeats or 5, n_train, args.compile, False)


def write_synthetic_cifar100(root: Path, n_train: int, n_test: int) -> None:
    """Random pixels and labels in the real ``cifar-100-python`` pickle layout."""
    from aees_gym.tasks.vision import CIFAR100_COARSE

    rng = np.random.default_rng(0)
    coarse = np.asarray(CIFAR100_COARSE)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, n)
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": fine.tolist(), "coarse_labels": coarse[fine].tolist()}
        path = root / "cifar-100-python" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(batch, protocol=4))


def overrides(s: Settings, data_dir: Path) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir), "model": s.model, "batch_size": s.batch_size, "device": s.device, "compile": s.compile,
        "n_train": s.n_train, "n_val": 2 * s.batch_size, "window_length": s.window_length, "eval_every": 0,
    }


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_plain(s: Settings, data_dir: Path, seed: int) -> float:
    """Seconds for ``s.steps`` optimizer steps of the task's run in a bare loop (after a warm-up)."""
    from aees_gym import get_task, make_config
    from aees_gym.tasks.base import RunSeeds

    config = make_config("CIFAR100", total_steps=s.steps, **overrides(s, data_dir))
    run = get_task("CIFAR100").build(config, RunSeeds.derive(seed))
    for _ in range(s.warmup_steps):
        run.train_step()
        run.optimizer.step()
    sync(s.device)
    started = time.perf_counter()
    for _ in range(s.steps):
        run.train_step()
        run.optimizer.step()
    sync(s.device)
    return time.perf_counter() - started


def time_reference(s: Settings, data_dir: Path, seed: int) -> float:
    """Seconds for ``s.steps`` steps of a hand-written loop: the limit for the task's step.

    The same network (CIFAR ResNet-18 of :mod:`aees_gym.tasks.models`), batch, augmentation
    (random crop + flip as batched tensor ops), bf16 autocast, channels_last and fused AdamW, on
    synthetic uint8 images already on the device; batches are drawn on the device, nothing is read
    back, and no env, task object, scheduler or data loader is involved.
    """
    import torch.nn.functional as F

    from aees_gym.tasks.image_pipeline import random_crop, random_flip
    from aees_gym.tasks.models import build_model

    device = torch.device(s.device)
    cuda = device.type == "cuda"
    gen = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (s.n_train, 3, 32, 32), dtype=torch.uint8, device=device, generator=gen)
    labels = torch.randint(0, 100, (s.n_train,), device=device, generator=gen)
    mean = torch.tensor([0.507, 0.487, 0.441], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.267, 0.256, 0.276], device=device).view(1, 3, 1, 1)
    torch.manual_seed(seed)
    net = build_model(s.model, 100).to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    if s.compile:
        net = torch.compile(net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-4, fused=cuda)

    def step() -> None:
        idx = torch.randint(0, s.n_train, (s.batch_size,), device=device, generator=gen)
        x = random_flip(random_crop(images[idx], 4, gen), gen)
        x = ((x.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last if cuda else torch.contiguous_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(s.warmup_steps):
        step()
    sync(s.device)
    started = time.perf_counter()
    for _ in range(s.steps):
        step()
    sync(s.device)
    return time.perf_counter() - started


def time_env(s: Settings, data_dir: Path, seed: int, noise: float) -> float:
    """The env's training seconds for ``s.steps`` optimizer steps with candidate (×1, ``noise``)."""
    import gymnasium as gym

    import aees_gym  # noqa: F401  (registers the ids)

    env = gym.make("aees_gym/CIFAR100-v0", total_steps=s.steps, **overrides(s, data_dir))
    _, info = env.reset(seed=seed)
    action = info["candidate_grid"].index_of(1.0, noise)
    run = env.unwrapped.training_run
    for _ in range(s.warmup_steps):  # same warm-up as the plain loop, outside the env's clock
        run.train_step()
        run.optimizer.step()
    sync(s.device)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(action)
    return float(env.unwrapped.runtime_metrics()["train_time_s"])


ALL_VARIANTS = ("reference", "plain", "env", "env_noise_0.005")


def measure(s: Settings, data_dir: Path, variants: tuple[str, ...] = ALL_VARIANTS) -> dict[str, Any]:
    """Every variant once per round (order rotated each round); medians and per-round ratios with their spread."""
    runners = {"reference": lambda r: time_reference(s, data_dir, r), "plain": lambda r: time_plain(s, data_dir, r),
               "env": lambda r: time_env(s, data_dir, r, 0.0), "env_noise_0.005": lambda r: time_env(s, data_dir, r, 0.005)}
    unknown = [v for v in variants if v not in runners]
    if unknown or "plain" not in variants:
        raise ValueError(f"variants must include 'plain' and come from {list(runners)}; got {list(variants)}.")
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(s.repeats):
        names = list(variants)
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every round
            seconds[name].append(runners[name](r))
    median = {k: statistics.median(v) for k, v in seconds.items()}
    # Ratios within a round (same machine state), then their median and range over the rounds.
    pairs = {f"{k}_over_plain": (k, "plain") for k in variants if k not in ("plain", "reference")}
    if "reference" in variants:
        pairs["plain_over_reference"] = ("plain", "reference")
    ratios = {name: [a / b for a, b in zip(seconds[num], seconds[den], strict=True)] for name, (num, den) in pairs.items()}
    return {
        "seconds": seconds,
        "median_seconds": median,
        "ms_per_step": {k: 1000 * v / s.steps for k, v in median.items()},
        "images_per_s": {k: s.steps * s.batch_size / v for k, v in median.items()},
        "ratio_vs_plain": {k: v / median["plain"] for k, v in median.items() if k != "plain"},
        "round_ratios": {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "per_round": v} for k, v in ratios.items()},
    }


def environment() -> dict[str, Any]:
    return host_metadata("cuda" if torch.cuda.is_available() else "cpu")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="folder with cifar-100-python/ (else synthetic)")
    parser.add_argument("--cpu-smoke", action="store_true", help="reduced CPU run (automatic without CUDA)")
    parser.add_argument("--model", default="resnet18", choices=["resnet18", "resnet8", "vgg16"])
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps per variant (default: one epoch / 30 on CPU)")
    parser.add_argument("--repeats", type=int, default=0, help="timed rounds per variant (default 5 on CUDA, 2 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    s = settings_for(args)
    if s.cpu_smoke:
        torch.set_num_threads(1)  # 2 shared cores: one thread gives stable timings
    real = (args.data_dir / "cifar-100-python" / "train").is_file() and (args.data_dir / "cifar-100-python" / "test").is_file()
    with tempfile.TemporaryDirectory(prefix="aees_cifar_") as tmp:
        data_dir = args.data_dir if real else Path(tmp)
        if not real:
            write_synthetic_cifar100(data_dir, s.n_train, 2 * s.batch_size)
        result = measure(s, data_dir)
    payload = {
        "benchmark": "one CIFAR-100 epoch, plain loop vs AEESEnv",
        "mode": "cpu-smoke (no CUDA or --cpu-smoke: ResNet-8, few steps; not the GPU figure)" if s.cpu_smoke else "cuda",
        "data": f"real CIFAR-100 files in {args.data_dir}" if real else "random pixels in the CIFAR-100 pickle format (speed only)",
        "settings": asdict(s),
        **result,
        "environment": environment(),
    }
    write_json(args.out, payload)
    print(f"{payload['mode']}: {s.steps} steps of {s.model}, batch {s.batch_size}, window {s.window_length}")
    print(f"{'variant':<18}{'ms/step':>10}{'images/s':>12}{'× plain':>10}")
    for name, ms in result["ms_per_step"].items():
        ratio = result["ratio_vs_plain"].get(name, 1.0)
        print(f"{name:<18}{ms:>10.2f}{result['images_per_s'][name]:>12.0f}{ratio:>10.3f}")
    for name, r in result["round_ratios"].items():
        print(f"{name}: median {r['median']:.3f} (range {r['min']:.3f}–{r['max']:.3f} over {len(r['per_round'])} rounds)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
