"""The training loops the overhead benchmark compares, on the same model, data and batches.

Every variant trains a fresh copy of one task's :class:`~aees_gym.tasks.TrainingRun` and uses its
``train_step`` (next on-device batch, ``zero_grad``, forward, backward), so the only difference
between variants is what happens around ``optimizer.step()``:

* ``plain``: ``optimizer.step()``.
* ``control``: :class:`aees_gym.EpisodeControl` with a fixed candidate (``begin_window`` each window).
* ``env``: ``gymnasium.make("aees_gym/<Task>-v0")`` stepped with a fixed action.
* ``pulseopt``: the reference implementation, ``pulseopt.AEES`` (adaptive bandit over the grid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import gymnasium as gym
import torch
from torch import nn

import aees_gym
from aees_gym import CandidateGrid, EnvConfig, EpisodeControl, TaskSpec
from aees_gym.tasks import RunSeeds, TrainingRun
from aees_gym.tasks.classification import ClassificationData, build_classification_run

WINDOW = 50
LR_CANDIDATES = (0.5, 1.0, 2.0)
NOISE_CANDIDATES = (0.0, 0.005)
GRID = CandidateGrid(LR_CANDIDATES, NOISE_CANDIDATES)
SEED = 0
MLP_TASK = "OverheadMLP784"


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: the registered task that builds it and a description."""

    key: str
    task: str
    description: str


MODELS: dict[str, ModelSpec] = {
    "mlp784": ModelSpec("mlp784", MLP_TASK, "MLP 784-256-10, batch 128, AdamW, random data"),
    "digits": ModelSpec("digits", "Digits", "Digits-v0: MLP 64-128-10, batch 64, AdamW, sklearn digits"),
}


@lru_cache(maxsize=1)
def _random_mnist_shaped_data() -> ClassificationData:
    gen = torch.Generator().manual_seed(SEED)
    x_train, x_val = torch.randn(4096, 784, generator=gen), torch.randn(512, 784, generator=gen)
    y_train, y_val = torch.randint(10, (4096,), generator=gen), torch.randint(10, (512,), generator=gen)
    return ClassificationData(x_train, y_train, x_val, y_val, 10)


def _build_mlp784(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    return build_classification_run(
        _random_mnist_shaped_data(),
        lambda: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)),
        config,
        seeds,
    )


MLP_TASK_SPEC = TaskSpec(
    name=MLP_TASK,
    description="Benchmark model: MLP 784-256-10 on fixed random MNIST-shaped data",
    build=_build_mlp784,
    defaults={"total_steps": 1000, "window_length": WINDOW, "batch_size": 128, "optimizer": "adamw", "base_lr": 1e-3},
    data="4,096 N(0, 1) vectors of 784 features with uniform random labels (seed 0)",
    model="MLP 784-256-10 (ReLU)",
)


def register_bench_task() -> None:
    """Register the 784-256-10 task (idempotent) so every variant, the env included, can build it."""
    aees_gym.register_task(MLP_TASK_SPEC)


def bench_config(model: str, total_steps: int) -> EnvConfig:
    """The model's task config for a run of ``total_steps`` with the benchmark grid, window and no evaluation."""
    register_bench_task()
    return aees_gym.make_config(
        MODELS[model].task, total_steps=total_steps, window_length=WINDOW, grid=GRID, eval_every=0
    )


def build_run(model: str, total_steps: int) -> TrainingRun:
    config = bench_config(model, total_steps)
    return aees_gym.get_task(config.task).build(config, RunSeeds.derive(SEED))


class Variant(Protocol):
    """A training loop that can run any number of optimizer steps (a multiple of the window for envs)."""

    optimizer: torch.optim.Optimizer

    def run(self, n_steps: int) -> None: ...


class PlainLoop:
    """``train_step()`` then ``optimizer.step()``; no scheduler."""

    def __init__(self, run: TrainingRun) -> None:
        self.train_step, self.optimizer = run.train_step, run.optimizer

    def run(self, n_steps: int) -> None:
        train_step, step = self.train_step, self.optimizer.step
        for _ in range(n_steps):
            train_step()
            step()


class PlainNoiseLoop:
    """The plain loop plus the same seeded Gaussian gradient noise, written inline.

    The cheapest way to draw the noise (``normal_(0, σ)`` into preallocated buffers, one
    ``_foreach_add_``), so ``control σ>0 / plain_noise`` isolates what the controller adds beyond
    the noise it is asked to generate.
    """

    def __init__(self, run: TrainingRun, noise_std: float) -> None:
        self.train_step, self.optimizer, self.noise_std = run.train_step, run.optimizer, noise_std
        self.params = [p for g in run.optimizer.param_groups for p in g["params"]]
        self.generators = [torch.Generator(device=p.device).manual_seed(SEED + i) for i, p in enumerate(self.params)]
        self.buffers = [torch.empty_like(p) for p in self.params]

    def run(self, n_steps: int) -> None:
        train_step, step, std = self.train_step, self.optimizer.step, self.noise_std
        for _ in range(n_steps):
            train_step()
            for buf, gen in zip(self.buffers, self.generators, strict=True):
                buf.normal_(0.0, std, generator=gen)
            torch._foreach_add_([p.grad for p in self.params], self.buffers)
            step()


class ControlLoop:
    """The plain loop under :class:`EpisodeControl`, holding one candidate for every window."""

    def __init__(self, run: TrainingRun, config: EnvConfig, action: int) -> None:
        self.train_step, self.optimizer, self.action = run.train_step, run.optimizer, action
        self.control = EpisodeControl(run.optimizer, config, seed=SEED)

    def run(self, n_steps: int) -> None:
        control, train_step, action = self.control, self.train_step, self.action
        for _ in range(n_steps):
            if control.needs_action:
                control.begin_window(action)
            control.step_end(train_step())


class EnvLoop:
    """``AEESEnv`` through ``gymnasium.make`` (default wrappers included), one fixed action."""

    def __init__(self, model: str, total_steps: int, action: int) -> None:
        config = bench_config(model, total_steps)
        self.env = gym.make(aees_gym.env_id(config.task), config=config)
        self.env.reset(seed=SEED)
        self.optimizer = self.env.unwrapped.training_run.optimizer
        self.action = action

    def run(self, n_steps: int) -> None:
        if n_steps % WINDOW:
            raise ValueError(f"The env runs whole windows: n_steps must be a multiple of {WINDOW}, got {n_steps}.")
        env, action = self.env, self.action
        for _ in range(n_steps // WINDOW):
            _, _, terminated, _, _ = env.step(action)
            if terminated:
                raise RuntimeError("The env's run ended inside the benchmark; raise its total_steps.")


class PulseoptLoop:
    """The reference: ``pulseopt.AEES`` (adaptive, lr ×{0.5, 1, 2}, noise {0, 0.005}, window 50, seed 0)."""

    def __init__(self, run: TrainingRun) -> None:
        import pulseopt  # test-only reference dependency (the 'dev' extra)

        self.train_step, self.optimizer = run.train_step, run.optimizer
        self.aees = pulseopt.AEES(
            run.optimizer,
            lr_candidates=list(LR_CANDIDATES),
            noise_candidates=list(NOISE_CANDIDATES),
            episode_length=WINDOW,
            seed=SEED,
        )
        self.global_step = 0
        self.noisy_steps = 0  # the bandit picks σ > 0 only part of the time; reported next to its timing

    def run(self, n_steps: int) -> None:
        aees, train_step = self.aees, self.train_step
        for _ in range(n_steps):
            candidate = aees.step_start(self.global_step)
            self.noisy_steps += candidate.noise_std > 0.0
            aees.step_end(train_step())
            self.global_step += 1


def variant_factories(model: str, total_steps: int) -> dict[str, Callable[[], Variant]]:
    """Name → zero-argument builder of a fresh variant, in table order (``plain`` first)."""
    config = bench_config(model, total_steps)
    noisy, quiet = GRID.index_of(1.0, 0.005), GRID.index_of(1.0, 0.0)
    return {
        "plain": lambda: PlainLoop(build_run(model, total_steps)),
        "plain_noise0.005": lambda: PlainNoiseLoop(build_run(model, total_steps), 0.005),
        "control_sigma0.005": lambda: ControlLoop(build_run(model, total_steps), config, noisy),
        "control_sigma0": lambda: ControlLoop(build_run(model, total_steps), config, quiet),
        "env_sigma0.005": lambda: EnvLoop(model, total_steps, noisy),
        "env_sigma0": lambda: EnvLoop(model, total_steps, quiet),
        "pulseopt": lambda: PulseoptLoop(build_run(model, total_steps)),
    }


VARIANT_LABELS: dict[str, str] = {
    "plain": "plain PyTorch loop",
    "plain_noise0.005": "plain loop + inline noise σ=0.005",
    "control_sigma0.005": "EpisodeControl lr×1 σ=0.005",
    "control_sigma0": "EpisodeControl lr×1 σ=0",
    "env_sigma0.005": "AEESEnv lr×1 σ=0.005",
    "env_sigma0": "AEESEnv lr×1 σ=0",
    "pulseopt": "pulseopt.AEES (reference)",
}

# Variants held to the targets (≤ 1.03× plain, no per-step host sync, no clones).
TARGETED = ("control_sigma0.005", "control_sigma0", "env_sigma0.005", "env_sigma0")
# Noisy variants are also compared with the plain loop doing the same noise inline.
NOISE_BASELINE = "plain_noise0.005"
NOISY = ("control_sigma0.005", "env_sigma0.005")


def describe(model: str) -> dict[str, Any]:
    spec = MODELS[model]
    return {"task": spec.task, "description": spec.description, "window_length": WINDOW, "grid": GRID.to_dict()}
