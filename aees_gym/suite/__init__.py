"""Comparison suites: tasks × agents × seeds → one RunResult JSON per run.

>>> from aees_gym.suite import load_suite, run_suite
>>> outcome = run_suite(load_suite("experiments/smoke.toml"), results_dir="results")  # doctest: +SKIP

Parts: :mod:`~aees_gym.suite.suite_file` (TOML → :class:`SuiteSpec`), :mod:`~aees_gym.suite.plan`
(variants, training jobs, :class:`RunSpec` s), :mod:`~aees_gym.suite.one_run` (:func:`run_one`),
:mod:`~aees_gym.suite.training` (offline learners), :mod:`~aees_gym.suite.executors`
(serial / local / ray) and :mod:`~aees_gym.suite.orchestrate` (:func:`run_suite`: resume and write).
"""

from aees_gym.core.hostinfo import host_metadata
from aees_gym.suite.executors import ExecutorError, execute
from aees_gym.suite.one_run import error_result, run_one
from aees_gym.suite.orchestrate import SuiteOutcome, inspect_existing, run_suite
from aees_gym.suite.plan import SuitePlan, TrainJob, plan_suite
from aees_gym.suite.run_spec import RunSpec, canonical_json, stable_hash
from aees_gym.suite.suite_file import (
    EXECUTORS,
    AgentEntry,
    SuiteConfigError,
    SuiteSpec,
    SweepSpec,
    TaskEntry,
    TaskVariant,
    TrainingSpec,
    load_suite,
    parse_suite,
    task_variants,
)
from aees_gym.suite.training import TrainOutcome, train_agent, train_one

__all__ = [
    "EXECUTORS", "AgentEntry", "ExecutorError", "RunSpec", "SuiteConfigError", "SuiteOutcome", "SuitePlan", "SuiteSpec",
    "SweepSpec", "TaskEntry", "TaskVariant", "TrainJob", "TrainOutcome", "TrainingSpec", "canonical_json",
    "error_result", "execute", "host_metadata", "inspect_existing", "load_suite", "parse_suite", "plan_suite",
    "run_one", "run_suite", "stable_hash", "task_variants", "train_agent", "train_one",
]
