"""Hyperparameter sweeps, throughput measurements and archiving of learned-controller trainings.

* :func:`sweep` — a declared budget: ``n_configs`` configurations (the defaults first, then seeded
  draws from :data:`SEARCH_SPACES`), each trained ``windows`` windows and scored once on the
  validation instances (training configurations, unseen seeds — never the test split); the table
  and the best configuration go to ``sweep.json``.
* :func:`measure_throughput` — windows per second of a training on one thread, for a fixed time.
* :func:`archive` — copies a training's compact files (spec, summary, curves, exported policy) into
  ``results/``; models, checkpoints and replay buffers stay under ``runs/``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.learned_training import TrainingSpec, train

__all__ = ["ARCHIVED_FILES", "SEARCH_SPACES", "archive", "measure_throughput", "sample_configs", "sweep"]

_DQN_SPACE = {
    "learning_rate": [3e-5, 1e-4, 3e-4], "gradient_steps": [4, 8, 16], "gamma": [0.95, 0.99],
    "exploration_fraction": [0.1, 0.3], "target_update_interval": [250, 1000],
}
#: Values each hyperparameter may take in a sweep, per algorithm.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "ppo": {"learning_rate": [1e-4, 3e-4, 1e-3], "n_steps": [16, 32, 64], "ent_coef": [0.0, 0.01, 0.03], "gamma": [0.95, 0.99],
            "n_epochs": [5, 10]},
    "sac": {"learning_rate": [1e-4, 3e-4, 1e-3], "gradient_steps": [4, 8, 16], "gamma": [0.95, 0.99], "batch_size": [128, 256],
            "tau": [0.005, 0.02]},
    "dqn": _DQN_SPACE,
    "qrdqn": _DQN_SPACE,
}
#: What :func:`archive` copies: small files only.
ARCHIVED_FILES = ("spec.json", "summary.json", "curve.json", "policy.npz", "policy.json", "sweep.json")


def sample_configs(algo: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct configurations: ``{}`` (the defaults) first, then seeded draws from the algorithm's space."""
    space = SEARCH_SPACES[algo]
    total = int(np.prod([len(v) for v in space.values()]))
    if not 1 <= n <= total + 1:
        raise ValueError(f"a sweep of {algo} has 1 to {total + 1} configurations, got {n}.")
    rng = np.random.default_rng(seed)
    configs: list[dict[str, Any]] = [{}]
    while len(configs) < n:
        draw = {name: values[int(rng.integers(len(values)))] for name, values in space.items()}
        if draw not in configs:
            configs.append(draw)
    return configs


def sweep(base: TrainingSpec, n_configs: int, windows: int, out_dir: Path | str = "runs/learned") -> dict[str, Any]:
    """Train ``n_configs`` configurations of ``base.algo`` for ``windows`` windows each; rank them by validation score.

    Finished configurations are skipped on a rerun (each is a :func:`train` of its own folder).
    Writes and returns ``<out_dir>/sweep-<base.name>/sweep.json``.
    """
    from aees_gym.core.fileio import atomic_write_json

    folder = Path(out_dir) / f"sweep-{base.name}"
    rows = []
    for k, config in enumerate(sample_configs(base.algo, n_configs, base.seed)):
        spec = dataclasses.replace(base, algo_kwargs={**base.algo_kwargs, **config}, windows=windows, validate_every=0,
                                   note=f"sweep configuration {k} of {n_configs}")
        summary = train(spec, folder / f"config{k}")  # a finished configuration is read back, not trained again
        rows.append({"config": k, "algo_kwargs": config, "validation": summary["validation"], "windows": summary["windows_trained"]})
    ranked = sorted(rows, key=lambda r: -r["validation"]["score"])
    result = {
        "base": base.to_json(), "budget": {"configurations": n_configs, "windows_each": windows, "windows_total": n_configs * windows},
        "scored_on": "validation instances (training configurations, unseen seeds); never the test split",
        "search_space": SEARCH_SPACES[base.algo], "rows": rows, "best": ranked[0],
    }
    atomic_write_json(folder / "sweep.json", result)
    return result


def measure_throughput(spec: TrainingSpec, seconds: float) -> dict[str, Any]:
    """Train ``spec`` for about ``seconds`` (in a temporary folder) and report its windows per second.

    ``windows_per_s`` counts from the first window to the end; ``learning_windows_per_s`` only from
    the window where the algorithm starts its updates (``learning_starts`` for off-policy ones).
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from aees_gym.core.threads import apply_torch_threads
    from agents.learned_training import _task_of_set, preflight, training_env_kwargs
    from agents.sb3 import SB3Agent

    preflight(spec)
    apply_torch_threads(spec.torch_threads)
    hyper = spec.hyperparameters()
    starts = int(hyper["algo_kwargs"].get("learning_starts", 0))
    marks: dict[str, tuple[float, int]] = {}

    class StopAfter(BaseCallback):
        def _on_step(self) -> bool:
            now, done = time.perf_counter(), int(self.model.num_timesteps)
            marks.setdefault("first", (now, done))
            if done >= starts:
                marks.setdefault("learning", (now, done))
            marks["last"] = (now, done)
            return now - marks["first"][0] < seconds

    agent = SB3Agent(spec.algo, policy_kwargs=hyper["policy_kwargs"], algo_kwargs=hyper["algo_kwargs"])
    agent.learn(_task_of_set(spec.instance_set), 10**9, seed=spec.seed, n_envs=spec.n_envs, env_kwargs=training_env_kwargs(spec),
                vec_env="batched", callback=StopAfter(), progress_bar=False)

    def rate(start: str) -> float | None:
        (t0, w0), (t1, w1) = marks[start], marks["last"]
        return (w1 - w0) / (t1 - t0) if start in marks and t1 > t0 else None

    return {"algo": spec.algo, "track": spec.track, "instance_set": spec.instance_set, "n_envs": spec.n_envs,
            "torch_threads": spec.torch_threads, "seconds": marks["last"][0] - marks["first"][0], "windows": marks["last"][1],
            "windows_per_s": rate("first"), "learning_windows_per_s": rate("learning") if "learning" in marks else None,
            "hyperparameters": hyper}


def archive(folder: Path | str, results_dir: Path | str = "results/learned") -> Path:
    """Copy the compact files of a training (or sweep) folder to ``results_dir/<folder name>/``; returns that folder.

    Raises:
        FileNotFoundError: If ``folder`` holds none of :data:`ARCHIVED_FILES`.
    """
    folder = Path(folder)
    found = [p for p in folder.rglob("*") if p.name in ARCHIVED_FILES and p.is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} holds none of {list(ARCHIVED_FILES)}; train first (runs/learned/<name>).")
    target = Path(results_dir) / folder.name
    for path in found:
        destination = target / path.relative_to(folder)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination.with_suffix(destination.suffix + ".tmp"))
        destination.with_suffix(destination.suffix + ".tmp").replace(destination)  # atomic per file
    return target
