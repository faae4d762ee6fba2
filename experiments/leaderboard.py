"""RL leaderboard over instance-set test splits: ``python -m experiments.leaderboard``.

Reads ``experiments/leaderboard.toml`` (format: :mod:`aees_gym.suite.leaderboard`). Runs every
missing piece — the online agents' and fixed cells' test runs first, then each offline learner
(trained on the train split, then run on the test split) — and rewrites ``results/leaderboard.md``
after each piece, with a "pending" row for whatever is not finished yet. Finished trainings (model
zips) and runs are kept, so a killed command loses only what was in flight; rerun it to go on.

    python -m experiments.leaderboard                      # everything, resuming, under runs/
    python -m experiments.leaderboard --archive            # the same in the archive (results/), compacted at the end
    python -m experiments.leaderboard --table-only         # only rewrite the table from what exists
    python -m experiments.leaderboard --quick              # seconds-long smoke test into a temporary folder
    python -m experiments.leaderboard --skip-unavailable   # leave agents with unregistered rewards pending
    python -m experiments.leaderboard --only "PPO (aees)"  # one agent's trainings and runs; start one per core
    python -m experiments.leaderboard experiments/leaderboard_v1.toml --no-learners   # families: references and online agents
    python -m experiments.leaderboard experiments/leaderboard_v1.toml --table-only --export results/leaderboard_v1

The table goes to ``<results_dir>/leaderboard.md``. ``--export DIR`` copies the compact outputs there:
the table, each tuned entry's record (grid, choice, search budget) and one row per finished test run
(agent, instance, seed, status, final metrics; gzip-compressed `runs.jsonl.gz`) — no per-window logs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import tempfile
from pathlib import Path

import torch

from aees_gym.cli import interrupt_once
from aees_gym.core.fileio import atomic_write_bytes, atomic_write_text
from aees_gym.reporting.leaderboard import leaderboard_table
from aees_gym.suite.archive import compact
from aees_gym.suite.leaderboard import (
    LEADERBOARD_DIR,
    check_labels,
    finished_runs,
    load_leaderboard,
    plan_set,
    run_leaderboard,
    unavailable_rewards,
)
from aees_gym.suite.outputs import OutputError, check_output_dir, check_output_file
from aees_gym.suite.suite_file import SuiteConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "leaderboard.toml"
#: Final metrics kept per run in an archive (what the table and a reader's re-analysis need).
ARCHIVED_METRICS = ("val_accuracy", "val_loss", "reward_val_accuracy", "reward_val_loss", "final_train_loss", "diverged", "steps_done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, help="the table (default RESULTS_DIR/leaderboard.md)")
    parser.add_argument("--results-dir", type=Path, help="parent of leaderboard/<set>/ (default: the file's results_dir; "
                                                         "results/ with --archive)")
    parser.add_argument("--archive", action="store_true", help="read and write the archive (results/): runs, table, and "
                                                               "each set's results folded into runs.jsonl.gz at the end")
    parser.add_argument("--quick", action="store_true", help="synthetic-mix-v0 only, learners trained 64 windows, into a temporary folder")
    parser.add_argument("--table-only", action="store_true", help="write the table from the results on disk; run nothing")
    parser.add_argument("--skip-unavailable", action="store_true", help="leave agents whose reward is not registered pending")
    parser.add_argument("--no-learners", action="store_true", help="run no training (rows of learners trained here stay pending; "
                                                                  "learned rows whose policy file exists still run)")
    parser.add_argument("--export", type=Path, metavar="DIR", help="also write the compact outputs (table, tuning records, one row per run) to DIR")
    parser.add_argument("--only", action="append", metavar="LABEL",
                        help="run only this agent's trainings and test runs (repeatable); processes with different "
                             "labels can share one results folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the batched training envs and the evaluation workers share the cores
    try:
        spec = load_leaderboard(args.config)
    except SuiteConfigError as exc:  # a bad file is one line and exit 2, like the aees-gym command
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        spec = spec.quick(args.results_dir or tempfile.mkdtemp(prefix="leaderboard-quick-"))
    default_dir = ROOT / "results" if args.archive else ROOT / spec.results_dir
    results_dir = args.results_dir or (default_dir if not Path(spec.results_dir).is_absolute() else Path(spec.results_dir))
    out = args.out or results_dir / "leaderboard.md"
    try:  # before anything runs: the archive only on request, and folders that can be written
        check_output_file(out, what="the table", archive=args.archive)
        if not args.table_only:
            check_output_dir(results_dir, what="results folder", archive=args.archive)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.only:
        try:
            check_labels(spec, args.only)
        except SuiteConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    missing = unavailable_rewards(spec)
    if missing and not (args.skip_unavailable or args.table_only):
        print(f"error: rewards not registered in this build: {missing} (agent label → reward; registered ones: "
              "aees_gym.core.reward.registered_rewards()). Register them, fix the names, or pass --skip-unavailable to run "
              "everything else and list those agents as pending.", file=sys.stderr)
        return 2
    source = args.config.resolve().relative_to(ROOT) if args.config.resolve().is_relative_to(ROOT) else args.config

    def write_table() -> None:
        plans = [plan_set(spec, name, results_dir, missing) for name in spec.sets]
        finished = {p.instance_set.name: finished_runs(p)[0] for p in plans}
        atomic_write_text(out, leaderboard_table(plans, finished, missing, str(source), spec.n_boot) + "\n")
        print(f"wrote {out}", flush=True)
        if args.export:
            export(args.export, out, plans, finished)

    failures = 0 if args.table_only else run_leaderboard(spec, results_dir, skip=missing, only=args.only, on_progress=write_table,
                                                         log=lambda m: print(m, flush=True), train_learners=not args.no_learners)
    write_table()
    if args.archive and not args.table_only:
        for name in spec.sets:
            compact(results_dir / LEADERBOARD_DIR / name)
    return 1 if failures else 0


def export(folder: Path, table: Path, plans: list, finished: dict) -> None:
    """The compact outputs in ``folder``: the table, tuning records and one JSON line per finished test run."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "leaderboard.md", table.read_text(encoding="utf-8"))
    lines = []
    for p in plans:
        for t in p.tuned:
            if t.record.is_file():
                atomic_write_text(folder / "tuning" / p.instance_set.name / t.record.name, t.record.read_text(encoding="utf-8"))
        for run in p.plan.runs:
            result = finished[p.instance_set.name].get(run.run_id)
            if result is not None:
                lines.append(json.dumps({"set": p.instance_set.name, "agent": run.agent_label, "instance": run.task_label, "seed": run.seed,
                                         "status": result.status,
                                         "final_metrics": {k: v for k, v in (result.final_metrics or {}).items() if k in ARCHIVED_METRICS},
                                         "wall_clock_s": (result.runtime or {}).get("wall_clock_s")}, sort_keys=True))
    # gzip without a timestamp: the archive stays small and a re-export of the same runs is byte-identical
    atomic_write_bytes(folder / "runs.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0))
    (folder / "runs.jsonl").unlink(missing_ok=True)  # the uncompressed form earlier exports wrote
    print(f"archived {len(lines)} runs to {folder}", flush=True)


def run(argv: list[str] | None = None) -> int:
    """``main`` with the first Ctrl-C/SIGTERM stopping at once: finished runs and models stay, one line, exit 130."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt_once)
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted: finished runs and trainings kept; rerun to resume", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(run())
