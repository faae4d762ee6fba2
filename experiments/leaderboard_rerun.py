"""Rerun some archived leaderboard test runs through the current code and compare them with the archive.

    python -m experiments.leaderboard_rerun experiments/leaderboard_v1.toml --set digits-mlp-v1 --instances 8 \
        --labels random heuristic "tuned constant" --archived runs --json results/leaderboard_v1/rerun_check.json

The selected runs (the first ``--instances`` test instances × ``--labels``, or every planned label) run
with the leaderboard's own planning and executor into a temporary folder (the tuned entries' recorded
choices copied there first, so nothing is tuned again); each is compared with the archived run of the
same run id under ``--archived`` (read only). Bit-identical means equal final metrics and equal
per-window rewards. Exit 1 when any differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from aees_gym.core.fileio import atomic_write_text
from aees_gym.suite.leaderboard import LEADERBOARD_DIR, evaluate, load_leaderboard, plan_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", required=True, help="instance set or family")
    parser.add_argument("--instances", type=int, default=4, help="the first N test instances")
    parser.add_argument("--labels", nargs="*", default=None, help="agent labels (default: every planned one)")
    parser.add_argument("--archived", type=Path, default=Path("runs"), help="results folder holding leaderboard/<set>/ (read only)")
    parser.add_argument("--json", type=Path, default=None, help="write the comparison here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_leaderboard(args.config)
    archived = args.archived / LEADERBOARD_DIR / args.set
    with tempfile.TemporaryDirectory(prefix="leaderboard-rerun-") as tmp:
        suite = Path(tmp) / LEADERBOARD_DIR / args.set
        (suite / "tuning").mkdir(parents=True)
        for record in (archived / "tuning").glob("*.json"):
            if not record.stem.isalnum() or len(record.stem) != 16:  # the tuned entries' choices, not their sweep runs
                shutil.copy(record, suite / "tuning" / record.name)
        plan = plan_set(spec, args.set, Path(tmp))
        names = [i.name for i in plan.instance_set.test][: args.instances]
        runs = [r for r in plan.plan.runs if r.task_label in names and (args.labels is None or r.agent_label in args.labels)
                and (archived / f"{r.run_id}.json").is_file()]
        evaluate(plan, runs, spec, lambda m: print(m, flush=True))
        rows = []
        for r in runs:
            old, new = (json.loads((folder / f"{r.run_id}.json").read_text(encoding="utf-8")) for folder in (archived, suite))
            same = old["final_metrics"] == new["final_metrics"] and [w["reward"] for w in old["windows"]] == [w["reward"] for w in new["windows"]]
            rows.append({"instance": r.task_label, "agent": r.agent_label, "identical": same, "windows": len(new["windows"]),
                         "val_accuracy": [old["final_metrics"].get("val_accuracy"), new["final_metrics"].get("val_accuracy")],
                         "batched_runs": [(old.get("runtime") or {}).get("batched_runs"), (new.get("runtime") or {}).get("batched_runs")]})
    identical = sum(row["identical"] for row in rows)
    print(f"{identical} of {len(rows)} reruns bit-identical to the archive (final metrics and per-window rewards)")
    if args.json:
        atomic_write_text(args.json, json.dumps({"set": args.set, "config": str(args.config), "identical": identical, "runs": len(rows),
                                                 "rows": rows}, indent=1) + "\n")
    return 0 if rows and identical == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
