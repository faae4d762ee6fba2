"""What a leaderboard row saw and did, window by window: ``python -m experiments.trace_policy``.

Replays test runs of one row of a leaderboard file (the same env settings, seed and agent as its
table cell: a learned policy's own track included) and writes, per window, the observation the agent
acted on (in the order of the run's ``features``), its action and the LR scale and effective LR that
followed. It is how docs/learned-controller.md explains where the shipped policy loses on a real task.

    python -m experiments.trace_policy experiments/transfer_v1.toml --set mnist-5k-cnn-v1 \\
        --label "SAC (heldout) s0" --runs 2 --out runs/traces/sac-mnist.json
    python -m experiments.trace_policy experiments/leaderboard_v1.toml --set digits-mlp-v1 \\
        --label "SAC (heldout) s0" --runs 2 --out runs/traces/sac-digits.json
    python -m experiments.trace_policy experiments/transfer_v1.toml --set mnist-5k-cnn-v1 \\
        --label "SAC (heldout) s0" --runs 4 --out results/learned/traces/sac-s0-mnist.json --archive

Runs are the set's first ``--runs`` test instances in order, on one CPU thread. A row the serial
executor ran (the transfer sets) replays exactly: same final metric as its table's run. A family row
ran as one row of a batched engine, whose float order differs, so its replay can end slightly apart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aees_gym.core.fileio import atomic_write_text
from aees_gym.core.grid import Candidate
from aees_gym.envs.episode import run_episode
from aees_gym.suite.leaderboard import load_leaderboard, plan_set
from aees_gym.suite.one_run import make_run_agent
from aees_gym.suite.outputs import OutputError, check_output_file
from aees_gym.suite.run_spec import RunSpec
from aees_gym.suite.suite_file import SuiteConfigError

#: Info keys copied into each traced window (what the action did to the run; in the `relative` and
#: `continuous` tracks ``lr_scale`` is the persistent scale after the window).
WINDOW_KEYS = ("lr_scale", "effective_lr", "noise_std", "loss_last", "diverged")


def _number(value: Any, digits: int = 5) -> Any:
    """A JSON number: 5 significant digits keep a trace small (final metrics are kept whole, ``digits=17``)."""
    if isinstance(value, bool) or value is None:
        return value
    number = float(value)
    return float(f"{number:.{digits}g}") if math.isfinite(number) else None


def _action(action: Any) -> Any:
    """A grid index as is; an exact candidate as its fields (the `continuous` track's per-window step)."""
    if isinstance(action, Candidate):
        return {"lr_multiplier": action.lr_multiplier, "noise_std": action.noise_std, "momentum": action.momentum}
    if isinstance(action, (int, np.integer)):
        return int(action)
    return np.asarray(action, dtype=float).tolist()


def trace_run(spec: RunSpec) -> dict[str, Any]:
    """One run of ``spec``, with the observation and outcome of every window."""
    import gymnasium as gym

    env = gym.make(spec.env_id, **spec.env_overrides)
    try:
        agent = make_run_agent(spec)
        trace = run_episode(env, agent, seed=spec.seed)
        names = env.unwrapped.feature_names
    finally:
        env.close()
    windows = [
        {"window": i, "observation": [_number(x) for x in obs],
         "action": _action(action), **{k: _number(info.get(k)) for k in WINDOW_KEYS}}
        for i, (obs, action, info) in enumerate(zip(trace.observations, trace.actions, trace.infos, strict=True))
    ]
    final = trace.infos[-1].get("final_metrics") or {}
    return {"instance": spec.task_label, "seed": spec.seed, "env_id": spec.env_id, "features": list(names), "windows": windows,
            "final_metrics": {k: _number(final.get(k), 17) for k in ("val_accuracy", "val_loss", "diverged")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a leaderboard file (experiments/leaderboard_v1.toml, …)")
    parser.add_argument("--set", required=True, help="instance set of the file")
    parser.add_argument("--label", required=True, help="row label (an agent of the file)")
    parser.add_argument("--runs", type=int, default=1, help="how many test instances, from the first (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (under runs/ unless --archive)")
    parser.add_argument("--archive", action="store_true", help="allow --out inside the results/ archive")
    args = parser.parse_args(argv)
    try:
        if args.runs < 1:
            raise SuiteConfigError(f"--runs must be at least 1, got {args.runs}.")
        spec = load_leaderboard(args.config)
        if args.set not in spec.sets:
            raise SuiteConfigError(f"set {args.set!r} is not in {args.config}; choose one of {sorted(spec.sets)}.")
        labels = [e.label for e in spec.entries]
        if args.label not in labels:
            raise SuiteConfigError(f"--label {args.label!r}: no agent of {args.config} has that label; its labels are {labels}.")
        check_output_file(args.out, what="the trace", archive=args.archive)
        with tempfile.TemporaryDirectory() as scratch:  # planning only; nothing is written there
            set_plan = plan_set(spec, args.set, Path(scratch))
        if args.label in set_plan.waiting:
            raise SuiteConfigError(f"{args.label!r} cannot run yet: {set_plan.waiting[args.label]}")
        runs = set_plan.runs_of(args.label)[: args.runs]
        if not runs:
            raise SuiteConfigError(f"{args.label!r} has no test runs in set {args.set!r} (a tuned row: trace its chosen settings with a fixed row).")
    except (SuiteConfigError, OutputError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    data: dict[str, Any] = {"config": str(args.config), "set": args.set, "label": args.label, "agent": runs[0].agent,
                            "agent_kwargs": runs[0].agent_kwargs, "runs": []}
    for run in runs:  # the file is rewritten after every run: Ctrl-C keeps the runs traced so far
        data["runs"].append(trace_run(run))
        atomic_write_text(args.out, json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n")
        print(f"{run.task_label} seed {run.seed}: final {data['runs'][-1]['final_metrics']}")
    print(f"wrote {args.out} ({len(data['runs'])} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
