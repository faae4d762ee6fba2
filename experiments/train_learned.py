"""Train, sweep, export and measure learned LR controllers (see docs/learned-controller.md).

    python experiments/train_learned.py check --algo sac --track continuous
    python experiments/train_learned.py train --algo ppo --track relative --set digits-budget-v0 --reward heldout \
        --seeds 0 1 2 --windows 500000                       # resumable: rerun the same command after a kill
    python experiments/train_learned.py sweep --algo dqn --configs 8 --windows 20000
    python experiments/train_learned.py export runs/learned/<training> agents/policies/learned-continuous.npz --note "..."
    python experiments/train_learned.py throughput --algos ppo sac dqn --seconds 60
    python experiments/train_learned.py guard results/learned/<training> --threshold 0   # the guard, on validation runs

Outputs go under ``--out`` (default ``runs/learned``); ``--archive DIR`` (e.g. ``results/learned``)
also copies each training's compact files (spec, summary, curves, exported policy) there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import torch

from agents.learned_policy import export_sb3
from agents.learned_sweep import archive, measure_throughput, sweep
from agents.learned_training import TrainingSpec, constant_policy, export_policy, preflight, train, validate

_DEFAULT_TRACK = {"ppo": "relative", "sac": "continuous", "dqn": "relative", "qrdqn": "relative"}


def _spec(args: argparse.Namespace, algo: str | None = None, seed: int | None = None) -> TrainingSpec:
    algo = algo or args.algo
    return TrainingSpec(
        algo=algo, track=args.track or _DEFAULT_TRACK[algo], instance_set=args.set, reward=args.reward,
        seed=args.seeds[0] if seed is None else seed, windows=args.windows, n_envs=args.n_envs,
        algo_kwargs=json.loads(args.algo_kwargs), policy_kwargs=json.loads(args.policy_kwargs),
        validate_every=args.validate_every, torch_threads=args.threads, note=args.note,
    )


def _common(parser: argparse.ArgumentParser, windows: int) -> None:
    parser.add_argument("--algo", default="ppo", choices=sorted(_DEFAULT_TRACK))
    parser.add_argument("--track", default=None, help="relative or continuous (default: relative; continuous for sac)")
    parser.add_argument("--set", default="digits-budget-v0", help="instance set (or family) whose train split is trained on")
    parser.add_argument("--reward", default="heldout", help="heldout (default) or aees for comparison")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one training each)")
    parser.add_argument("--windows", type=int, default=windows, help="windows per training (all runs together)")
    parser.add_argument("--n-envs", type=int, default=64, help="runs trained at once in the batched env")
    parser.add_argument("--validate-every", type=int, default=50_000, help="windows between validation scores (0: end only)")
    parser.add_argument("--algo-kwargs", default="{}", help="JSON hyperparameters over the defaults")
    parser.add_argument("--policy-kwargs", default="{}", help="JSON policy settings over the default 64x64 MLP")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--note", default="", help="free text recorded in the provenance")
    parser.add_argument("--out", type=Path, default=Path("runs/learned"))
    parser.add_argument("--archive", type=Path, default=None, help="also copy compact results here (e.g. results/learned)")


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _common(commands.add_parser("check", help="check that a training can start (packages, set, reward)"), 500_000)
    _common(commands.add_parser("train", help="train (or resume) one training per seed"), 500_000)
    p_sweep = commands.add_parser("sweep", help="declared-budget hyperparameter sweep scored on validation instances")
    _common(p_sweep, 20_000)
    p_sweep.add_argument("--configs", type=int, default=8)
    p_export = commands.add_parser("export", help="export a finished training's model as a shippable policy file")
    p_export.add_argument("run", type=Path, help="the training's folder (runs/learned/<name>)")
    p_export.add_argument("policy", type=Path, help="the .npz to write (its .json provenance goes beside it)")
    p_export.add_argument("--note", default="", help="what this policy is, for its provenance")
    p_export.add_argument("--training-commit", default=None, help="commit the training ran at, when its summary does not record it")
    p_export.add_argument("--guard", type=float, default=None,
                          help="record this divergence-guard threshold as the policy's default (validated with it too)")
    p_tp = commands.add_parser("throughput", help="windows/s of each algorithm's training on one thread")
    _common(p_tp, 10**9)
    p_tp.add_argument("--algos", nargs="+", default=["ppo", "sac", "dqn"], choices=sorted(_DEFAULT_TRACK))
    p_tp.add_argument("--seconds", type=float, default=60.0)
    p_guard = commands.add_parser("guard", help="score trainings' policies with the divergence guard on their validation runs")
    p_guard.add_argument("trainings", type=Path, nargs="+", help="archived training folders (results/learned/<training>)")
    p_guard.add_argument("--threshold", type=float, default=0.0, help="held-out log-loss level above which the guard acts")
    p_guard.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(getattr(args, "threads", 1))
    try:
        return _run(args)
    except (RuntimeError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> Any:
    from aees_gym.core.fileio import atomic_write_json

    if args.command == "check":
        preflight(_spec(args))
        print("ready: every package, the instance set and the reward are there.")
        return None
    if args.command == "export":
        from aees_gym.envs.tracks import track_overrides
        from agents.sb3 import SB3Agent

        spec = TrainingSpec.from_json(json.loads((args.run / "spec.json").read_text()))
        summary = json.loads((args.run / "summary.json").read_text())
        model = SB3Agent.load(args.run / "model.zip").model
        spec = dataclasses.replace(spec, note=args.note or spec.note)
        policy = export_sb3(model)
        validation = validate(policy, spec)  # scored again by this code, exactly as the file will act
        reference = validate(constant_policy(spec, policy.n_inputs), spec)  # the base LR left alone, same runs
        extra = {"training_git_commit": summary.get("git_commit") or args.training_commit or "not recorded",
                 "validation_constant_x1": reference}
        if args.guard is not None:  # the agent's default guard; its score on the same validation runs beside the plain one
            from agents.learned_guard import check_guard, guard_policy

            threshold = check_guard(args.guard)
            guarded = guard_policy(policy, list(track_overrides(spec.track)["context"]["features"]), track_overrides(spec.track), threshold)
            extra |= {"guard": threshold, "validation_guarded": validate(guarded, spec)}  # type: ignore[arg-type]
        path = export_policy(model, spec, args.policy, windows=summary["windows_trained"], validation=validation, extra=extra)
        print(f"wrote {path} and {path.with_suffix('.json')}")
        return path
    if args.command == "guard":
        from agents.learned_guard import guard_validation

        records = []
        for folder in args.trainings:
            record = guard_validation(folder, args.threshold)
            atomic_write_json(folder / "guard_validation.json", record)
            print(f"{folder.name}: validation {record['unguarded']['score']:.4f} -> {record['guarded']['score']:.4f} with the guard "
                  f"(threshold {args.threshold:g}); wrote {folder / 'guard_validation.json'}")
            records.append(record)
        return records
    if args.command == "throughput":
        rows = [measure_throughput(_spec(args, algo=algo), args.seconds) for algo in args.algos]
        for row in rows:
            print(f"{row['algo']:>6} {row['track']:<10} {row['windows_per_s']:8.1f} windows/s "
                  f"({row['learning_windows_per_s'] or float('nan'):.1f} once learning) over {row['seconds']:.0f} s")
        atomic_write_json(args.out / "throughput.json", {"rows": rows})
        if args.archive is not None:
            atomic_write_json(args.archive / "throughput.json", {"rows": rows})
        return rows
    if args.command == "sweep":
        result = sweep(_spec(args), args.configs, args.windows, args.out)
        best = result["best"]
        print(f"best of {args.configs}: configuration {best['config']} {best['algo_kwargs']} score {best['validation']['score']:.4f}")
        if args.archive is not None:
            archive(args.out / f"sweep-{_spec(args).name}", args.archive)
        return result
    summaries = []
    for seed in args.seeds:
        spec = _spec(args, seed=seed)
        summary = train(spec, args.out)
        print(f"{spec.name}: {summary['windows_trained']} windows, validation score {summary['validation']['score']:.4f}")
        if args.archive is not None:
            archive(args.out / spec.name, args.archive)
        summaries.append(summary)
    return summaries


if __name__ == "__main__":
    main()
