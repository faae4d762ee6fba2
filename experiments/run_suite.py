"""Run a suite config and write its report: ``python experiments/run_suite.py experiments/smoke.toml``.

A thin wrapper over ``aees-gym suite CONFIG --report``; every option of that command is accepted.
"""

from __future__ import annotations

import sys

from aees_gym.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["suite", *args, *([] if "--report" in args else ["--report"])]))
