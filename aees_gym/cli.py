"""The ``aees-gym`` command: list, check, run, suite, report, train-agent, data.

Exit codes scripts can trust: 0 success; 1 a run, training or env check failed (results of the
other runs are still written); 2 a usage or configuration error (nothing was run).

This module builds the parser and runs a command; the commands themselves, their argument checks and
the exit codes live in :mod:`aees_gym.cli_commands` (re-exported here).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aees_gym.cli_commands import (  # noqa: F401 (re-exported: their home before the split)
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    cmd_check,
    cmd_data,
    cmd_list,
    cmd_report,
    cmd_run,
    cmd_suite,
    cmd_train_agent,
    parse_assignment,
)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aees-gym", description=__doc__.splitlines()[0].replace("``", ""),
                                     epilog="Exit codes: 0 ok, 1 a run/check/training failed, 2 usage or configuration error.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="tasks, env ids and agents with one-line descriptions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    kv = {"action": "append", "metavar": "KEY=VALUE"}
    p = sub.add_parser("check", help="run Gymnasium's (and, if installed, SB3's) env checker on an env")
    p.add_argument("env_id", help="e.g. aees_gym/Digits-v0 or Digits")
    p.add_argument("--set", help="env override (TOML value), e.g. total_steps=60", **kv)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="one training run driven by one agent")
    p.add_argument("--task", required=True, help="task name or env id")
    p.add_argument("--agent", required=True, help="agent entry-point name (see `aees-gym list`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", help="env override, e.g. base_lr=3e-3 or grid={lr_multipliers=[1.0],noise_stds=[0.0]}", **kv)
    p.add_argument("--agent-kw", help="agent keyword argument, e.g. lr_multiplier=2.0", **kv)
    p.add_argument("--model", help="trained model of an offline learner (from train-agent)")
    p.add_argument("--label", help="agent label stored in the result")
    p.add_argument("--suite", default="adhoc", help="suite name stored in the result (default: adhoc)")
    p.add_argument("--out", type=Path, help="also write the RunResult JSON into this folder")
    p.add_argument("--json", action="store_true", help="print the full RunResult JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("suite", help="run a suite config (only missing or failed runs)")
    p.add_argument("config", type=Path, help="suite TOML, e.g. experiments/smoke.toml")
    p.add_argument("--executor", choices=("serial", "local", "batched", "ray"), help="override the config's executor")
    p.add_argument("--workers", type=int, help="override the config's workers")
    p.add_argument("--results-dir", type=Path, help="parent folder of the suite folder (default: config's results_dir)")
    p.add_argument("--ray-address", help="Ray cluster address ('auto' for a `ray start` cluster; default ray.init())")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.add_argument("--progress-windows", action="store_true", help="progress inside each run (serial executor)")
    p.add_argument("--report", action="store_true", help="write the report (tables and plots) afterwards")
    p.add_argument("--archive", action="store_true",
                   help="write into the archive (default --results-dir results) and fold the results into runs.jsonl.gz")
    p.set_defaults(func=cmd_suite)

    p = sub.add_parser("report", help="Markdown/CSV tables and PNG plots of a results folder")
    p.add_argument("results_dir", help="a suite's results folder (or a folder of suites)")
    p.add_argument("--out", type=Path, help="output folder (default: RESULTS_DIR/report; runs/NAME/report for the archive)")
    p.add_argument("--archive", action="store_true", help="allow writing the report inside the archive (results/)")
    p.add_argument("--baseline", help="agent label to compare against (default: fixed at lr ×1.0, σ 0)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("train-agent", help="train an offline learner (e.g. sb3) and save it")
    p.add_argument("--agent", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--total-timesteps", type=int, required=True, help="env steps (windows) of training")
    p.add_argument("--seed", type=int, default=1000, help="first training seed (evaluate on other seeds)")
    p.add_argument("--n-envs", type=int, default=1)
    p.add_argument(
        "--vec-env", choices=("batched", "subproc", "dummy"),
        help="how the n envs run: batched (one process, one stacked computation; batchable tasks), subproc or dummy",
    )
    p.add_argument("--set", help="env override", **kv)
    p.add_argument("--agent-kw", help="agent keyword argument, e.g. algo=ppo", **kv)
    p.add_argument("--learn-kw", help="extra keyword argument of learn()", **kv)
    p.add_argument("--out", type=Path, required=True, help="model file, e.g. models/ppo-digits.zip")
    p.set_defaults(func=cmd_train_agent)

    p = sub.add_parser("data", help="prepare data sets before timed runs")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = data_sub.add_parser("prepare", help="obtain a data set under --data-dir")
    q.add_argument("name", nargs="?", help="data set name (omit to list them)")
    q.add_argument("--data-dir", type=Path, default=Path("data"))
    q.set_defaults(func=cmd_data)
    q = data_sub.add_parser("list", help="data sets that can be prepared")
    q.set_defaults(func=cmd_data, name=None)
    return parser


def interrupt_once(signum: int, frame: Any) -> None:
    """First Ctrl-C or SIGTERM: raise KeyboardInterrupt and ignore further ones while the work stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aees-gym`` console script; returns the exit code."""
    from aees_gym.core.fileio import FileCheckError
    from aees_gym.suite.executors import ExecutorError
    from aees_gym.suite.extras import MissingDataError
    from aees_gym.suite.orchestrate import SuiteInterrupted
    from aees_gym.suite.outputs import OutputError
    from aees_gym.suite.suite_file import SuiteConfigError

    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = {s: signal.signal(s, interrupt_once) for s in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        return int(args.func(args))
    except (UsageError, SuiteConfigError, ExecutorError, ImportError, OutputError, MissingDataError, FileCheckError) as exc:
        # A missing extra or an unreachable cluster is a setup problem: nothing was run.
        print(f"aees-gym {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SuiteInterrupted as exc:
        print(exc, file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted: 0 results kept; rerun to resume", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
