"""Baseline leaderboard over instance-set test splits: ``python -m experiments.leaderboard``.

Reads ``experiments/leaderboard.toml``. For every set: trains each offline learner once on the
train split (``gym.make(..., instance_set=SET, split="train")``), runs every agent and every fixed
grid cell on every test instance through the suite's ``run_one`` (resumable: one result file per
run under ``results/leaderboard/<set>/``), then writes ``results/leaderboard.md``.

Scoring: the configured ``final_metrics`` value of each run (higher is better), normalised per test
configuration (task + overrides, all its seeds) so that the random agent's mean is 0 and the mean
of the best fixed cell in hindsight (the cell with the best mean on that configuration) is 1; the
table gives the IQM of the normalised scores with a 95% stratified-bootstrap CI (strata =
configurations) and the raw mean of the metric.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aees_gym.core.fileio import atomic_write_text
from aees_gym.core.grid import candidate_name
from aees_gym.envs.instances import InstanceSet, get_instance_set
from aees_gym.reporting.stats import iqm, normalized_score, stratified_bootstrap_ci
from aees_gym.suite import RunSpec, SuitePlan, agent_registry, execute, inspect_existing, run_one, stable_hash, train_agent
from aees_gym.suite.results import RunResult, write_result

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "leaderboard.toml"
RANDOM, BEST_FIXED = "random", "best fixed cell (hindsight)"


def fixed_cells(instance_set: InstanceSet) -> list[dict[str, Any]]:
    grid = instance_set.test[0].config().grid
    return [
        {"name": "fixed", "label": f"fixed {candidate_name(lr, noise)}", "kwargs": {"lr_multiplier": lr, "noise_std": noise}}
        for lr in grid.lr_multipliers for noise in grid.noise_stds
    ]


def train_learners(conf: dict[str, Any], instance_set: InstanceSet, suite_dir: Path) -> list[dict[str, Any]]:
    """Train each learner on the train split once; returns agent entries that load the models."""
    entries = []
    for learner in conf.get("learners", []):
        settings = {k: learner[k] for k in ("agent", "kwargs", "total_timesteps", "seed", "n_envs")}
        path = suite_dir / "models" / f"{stable_hash({'set': instance_set.name, **settings})}.zip"
        training = {**settings, "seeds": [learner["seed"]], "instance_set": instance_set.name, "split": "train"}
        if not path.exists():
            print(f"training {learner['label']} on {instance_set.name}/train ({learner['total_timesteps']} windows)", flush=True)
            train_agent(
                learner["agent"], instance_set.train[0].task, path, total_timesteps=learner["total_timesteps"],
                seed=learner["seed"], n_envs=learner["n_envs"], agent_kwargs=learner["kwargs"],
                env_overrides={"instance_set": instance_set.name, "split": "train"},
            )
        entries.append({"name": learner["agent"], "label": learner["label"], "kwargs": learner["kwargs"],
                        "model_path": str(path), "training": training})
    return entries


def plan_runs(instance_set: InstanceSet, agents: list[dict[str, Any]]) -> list[RunSpec]:
    runs = []
    for inst in instance_set.test:
        for agent in agents:
            overrides = {**inst.env_overrides, **agent_registry.agent_env_overrides(agent_registry.load_agent_class(agent["name"]))}
            runs.append(RunSpec(
                suite=f"leaderboard/{instance_set.name}", task=inst.task, task_label=inst.name, agent=agent["name"],
                agent_label=agent.get("label", agent["name"]), seed=inst.seed, env_overrides=overrides,
                agent_kwargs=agent.get("kwargs", {}), model_path=agent.get("model_path"), training=agent.get("training"),
            ))
    return runs


def run_missing(runs: list[RunSpec], suite_dir: Path, executor: str, workers: int) -> list[RunResult]:
    state = inspect_existing(SuitePlan(tuple(runs), ()), suite_dir)
    results = dict(state.finished)
    print(f"{len(state.finished)} finished runs reused, {len(state.pending)} to run", flush=True)
    for done, (index, outcome) in enumerate(execute(run_one, state.pending, executor=executor, workers=workers), 1):
        if not isinstance(outcome, RunResult):
            raise RuntimeError(f"run {state.pending[index].task_label} / {state.pending[index].agent_label} crashed: {outcome}")
        write_result(outcome, suite_dir)
        results[outcome.run_id] = outcome
        if done % 10 == 0 or done == len(state.pending):
            print(f"  {done}/{len(state.pending)} runs", flush=True)
    failed = [r for r in results.values() if r.status == "error"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed, e.g. {failed[0].agent_label}: {failed[0].error}")
    return [results[r.run_id] for r in runs]


def score_table(results: list[RunResult], metric: str, agent_order: list[str], n_boot: int) -> list[dict[str, Any]]:
    """One row per agent: IQM of per-configuration normalised scores with its CI, and the raw mean."""
    raw: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))  # agent → config → scores
    for r in results:
        value = (r.final_metrics or {}).get(metric)
        config = r.task_label.rsplit("#", 1)[0]  # the instance name without its seed
        raw[r.agent_label][config].append(float("nan") if value is None else float(value))
    configs = sorted(raw[RANDOM])
    fixed = [a for a in raw if a.startswith("fixed ")]
    for c in configs:  # best fixed cell in hindsight, per configuration
        best = max(fixed, key=lambda a: np.nanmean(raw[a][c]))
        raw[BEST_FIXED][c] = raw[best][c]
    # A configuration where random ties the best fixed cell has no scale to normalise by.
    scaled = [c for c in configs if np.nanmean(raw[BEST_FIXED][c]) != np.nanmean(raw[RANDOM][c])]
    rows = []
    for agent in [*agent_order, BEST_FIXED]:
        normalised = {}
        for c in scaled:
            low, high = np.nanmean(raw[RANDOM][c]), np.nanmean(raw[BEST_FIXED][c])
            # A run without the metric (diverged before evaluating) scores like random.
            normalised[c] = normalized_score(np.nan_to_num(np.asarray(raw[agent][c]), nan=low), low, high)
        point, lo, hi = stratified_bootstrap_ci(normalised, iqm, n_boot=n_boot)
        rows.append({"agent": agent, "iqm": point, "ci": (lo, hi), "raw_mean": float(np.nanmean([v for c in configs for v in raw[agent][c]])),
                     "runs": sum(len(raw[agent][c]) for c in configs)})
    return rows


def markdown(sections: list[tuple[InstanceSet, list[dict[str, Any]], dict[str, Any]]], metric: str) -> str:
    lines = ["# Leaderboard", "", "<!-- Generated by `python -m experiments.leaderboard` (config: experiments/leaderboard.toml). -->", "",
             f"Score: final `{metric}` of each test run, normalised per test configuration so that random = 0 and the best",
             "fixed grid cell in hindsight = 1; IQM over the test runs with a 95% stratified-bootstrap CI. Offline learners",
             "trained on the train split only; no test configuration or seed is seen in training.", ""]
    for s, rows, notes in sections:
        lines += [f"## `{s.name}` — test split ({len(s.test)} instances)", "", s.description + ".", "",
                  f"| agent | normalised IQM | 95% CI | mean {metric} | runs |", "|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: -r["iqm"]):
            lines.append(f"| {r['agent']} | {r['iqm']:.2f} | [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] | {r['raw_mean']:.4f} | {r['runs']} |")
        lines += ["", *(f"- {k}: {v}" for k, v in notes.items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "leaderboard.md")
    args = parser.parse_args(argv)
    conf = tomllib.loads(args.config.read_text())
    torch.set_num_threads(1)  # in-process training envs share the cores with the evaluation workers
    results_dir = ROOT / conf.get("results_dir", "results") / "leaderboard"
    sections = []
    for name in conf["sets"]:
        instance_set = get_instance_set(name)
        suite_dir = results_dir / name
        learners = train_learners(conf, instance_set, suite_dir)
        agents = [*conf["agents"], *fixed_cells(instance_set), *learners]
        results = run_missing(plan_runs(instance_set, agents), suite_dir, conf.get("executor", "local"), conf.get("workers", 2))
        order = [a.get("label", a["name"]) for a in agents]
        rows = score_table(results, conf.get("metric", "val_accuracy"), order, conf.get("n_boot", 2000))
        notes = {f"{e['label']} training": f"{e['training']['total_timesteps']} windows on the train split "
                 f"({len(instance_set.train)} instances), seed {e['training']['seed']}" for e in learners}
        sections.append((instance_set, rows, notes))
    atomic_write_text(args.out, markdown(sections, conf.get("metric", "val_accuracy")) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
