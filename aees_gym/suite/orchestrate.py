"""``run_suite``: plan, resume, train offline learners, run, and write one result file per run.

Resume rule: a planned run is skipped when ``<run_id>.json`` — or, without that file, its line of
the suite's compact ``runs.jsonl.gz`` (:mod:`aees_gym.suite.archive`) — loads, validates and has
status ``ok`` or ``diverged``. A run whose file has status ``error`` is run again. A file that does not parse or
breaks the schema is reported by name, moved aside to ``<run_id>.json.corrupt`` (kept for
inspection; the report never reads it) and the run is repeated. Results are written by this process
as runs finish, each atomically, so a killed suite loses at most the runs in flight.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aees_gym.core.fileio import atomic_write_text, dumps_json
from aees_gym.core.hostinfo import utc_now
from aees_gym.core.threads import single_thread
from aees_gym.suite.archive import archive_path, compact, read_archive, suite_results
from aees_gym.suite.batched_executor import batched_ray_address
from aees_gym.suite.executors import connect_ray, execute
from aees_gym.suite.extras import check_suite_data, check_suite_extras
from aees_gym.suite.one_run import error_info, error_result, run_one
from aees_gym.suite.outputs import check_output_dir
from aees_gym.suite.plan import SuitePlan, TrainJob, plan_suite
from aees_gym.suite.progress import Progress
from aees_gym.suite.results import RESERVED_PREFIX, ResultFileError, RunResult, quarantine, read_result, result_path, write_result
from aees_gym.suite.run_spec import RunSpec
from aees_gym.suite.suite_file import SuiteSpec
from aees_gym.suite.training import TrainOutcome, train_one
from aees_gym.suite.tuning import TUNING_DIR, choose_base_lrs, sweep_runs, tuned_runs, write_tuning_record

MANIFEST = f"{RESERVED_PREFIX}manifest.json"
LAST_SESSION = f"{RESERVED_PREFIX}last_session.json"


class SuiteInterrupted(KeyboardInterrupt):
    """A suite stopped by Ctrl-C or SIGTERM; ``kept`` finished results are on disk and a rerun resumes."""

    def __init__(self, kept: int, suite_dir: Path) -> None:
        super().__init__(f"interrupted: {kept} results kept; rerun to resume")
        self.kept, self.suite_dir = kept, suite_dir


def count_finished(suite_dir: Path) -> int:
    """Finished (``ok`` or ``diverged``) results of a suite folder, loose or archived."""
    found, _ = suite_results(suite_dir)
    return sum(1 for r in found.values() if r.status in ("ok", "diverged"))


@dataclass(frozen=True)
class SuiteOutcome:
    """What one ``run_suite`` call did and the state of the suite afterwards."""

    suite_dir: Path
    planned: int
    reused: int
    ran: int
    statuses: dict[str, int]
    corrupt: tuple[Path, ...] = ()
    trained: int = 0
    training_failures: tuple[str, ...] = ()
    wall_clock_s: float = 0.0
    failed_runs: tuple[str, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        """0 when every planned run finished (``ok`` or ``diverged``), 1 when any is ``error``."""
        return 1 if self.failed_runs else 0


@dataclass(frozen=True)
class ExistingState:
    """Planned runs split by what is already on disk."""

    finished: dict[str, RunResult]
    pending: list[RunSpec]
    corrupt: list[tuple[Path, Path, str]]  # (original, moved to, reason)


def inspect_existing(plan: SuitePlan, suite_dir: Path) -> ExistingState:
    """Apply the resume rule to every planned run (moving corrupt files aside)."""
    finished: dict[str, RunResult] = {}
    pending: list[RunSpec] = []
    corrupt: list[tuple[Path, Path, str]] = []
    archived = read_archive(archive_path(suite_dir)).results if archive_path(suite_dir).exists() else {}
    for spec in plan.runs:
        path = result_path(suite_dir, spec.run_id)
        if not path.exists():
            kept = archived.get(spec.run_id)
            if kept is not None and kept.status in ("ok", "diverged"):
                finished[spec.run_id] = kept
            else:
                pending.append(spec)
            continue
        try:
            result = read_result(path)
        except ResultFileError as exc:
            corrupt.append((path, quarantine(path), str(exc)))
            pending.append(spec)
            continue
        if result.status in ("ok", "diverged"):
            finished[spec.run_id] = result
        else:
            pending.append(spec)
    return ExistingState(finished, pending, corrupt)


def _label(spec: RunSpec) -> str:
    return f"{spec.task_label} / {spec.agent_label} / seed {spec.seed}"


def _write_manifest(spec: SuiteSpec, plan: SuitePlan, suite_dir: Path) -> None:
    models = [_relative_to(Path(t.model_path), suite_dir) for t in plan.trainings]  # no machine's absolute paths
    manifest = {"suite": spec.name, "spec": asdict(spec), "run_ids": [r.run_id for r in plan.runs], "models": models}
    atomic_write_text(suite_dir / MANIFEST, dumps_json(manifest))


def _relative_to(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def _train(jobs: list[TrainJob], executor: str, workers: int, ray_address: str | None, progress: bool) -> dict[str, TrainOutcome]:
    bar = Progress(len(jobs), "training", unit="model", enabled=progress)
    outcomes: dict[str, TrainOutcome] = {}
    stream = execute(train_one, jobs, executor=executor, workers=workers, ray_address=ray_address)
    try:
        for index, outcome in stream:
            job = jobs[index]
            if isinstance(outcome, BaseException):
                outcome = TrainOutcome(job.model_path, False, 0.0, error_info(outcome))
            outcomes[job.model_path] = outcome
            status = "ok" if outcome.ok else f"FAILED: {outcome.error['message'] if outcome.error else '?'}"
            bar.advance(f"{job.task_label} / {job.agent_label}: {status}")
            if not outcome.ok:
                bar.write(f"training {job.agent_label} on {job.task_label} failed: {outcome.error['message'] if outcome.error else ''}")
    finally:
        _close(stream)
        bar.close()
    return outcomes


def run_suite(
    spec: SuiteSpec,
    *,
    results_dir: Path | str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    progress_windows: bool = False,
    log: Callable[[str], Any] | None = None,
    archive: bool = False,
) -> SuiteOutcome:
    """Run every missing or failed run of ``spec`` and write ``<results_dir>/<suite>/<run_id>.json``.

    Args:
        spec: The suite.
        results_dir: Parent folder of the suite folder (default ``spec.results_dir``).
        executor: ``serial``, ``local``, ``batched`` (runs sharing a task variant trained together in one
            batched env; :mod:`aees_gym.suite.batched_executor`) or ``ray`` (default ``spec.executor``).
        workers: Parallel workers (default ``spec.workers``).
        ray_address: Ray cluster address (``None``: the suite file's ``ray_address``, else for ``ray``
            ``ray.init()`` — a local Ray or ``$RAY_ADDRESS`` — and for ``batched`` ``$RAY_ADDRESS`` if set;
            ``"auto"``: the ``ray start`` cluster).
        progress: Show progress over runs.
        progress_windows: Also show progress within each run (serial executor only).
        log: Where notices (corrupt files, failures) go; default stderr.
        archive: Allow writing inside the archive (a folder marked by ``.aees-archive``, the
            repository's ``results/``) and fold the suite's result files into its compact
            ``runs.jsonl.gz`` at the end (:func:`aees_gym.suite.archive.compact`).

    Raises:
        MissingExtrasError: Before anything runs, if a planned task needs a module that is not installed.
        MissingDataError: Before anything runs, if a planned task's data is not on disk.
        ImportError, ExecutorError: Before the suite folder is created, if Ray is needed but not
            installed or no cluster answers.
        OutputError: Before anything runs, if the suite folder cannot be written or lies in the
            archive without ``archive=True``.
    """
    check_suite_extras(spec)  # a task's missing extra would make every one of its runs an error
    check_suite_data(spec)  # and so would its missing data
    started = time.perf_counter()
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    executor = executor or spec.executor
    workers = workers or spec.workers
    ray_address = ray_address if ray_address is not None else spec.ray_address
    suite_dir = (Path(results_dir if results_dir is not None else spec.results_dir) / spec.name).resolve()
    check_output_dir(suite_dir, what="suite folder", archive=archive)
    if executor == "ray" or (executor == "batched" and batched_ray_address(ray_address) is not None):
        connect_ray(ray_address if executor == "ray" else batched_ray_address(ray_address))  # no Ray, no folder
    suite_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(spec, suite_dir, executor, workers, ray_address, progress, progress_windows, say, archive, started)
    except KeyboardInterrupt:
        # Every finished result is already on disk (written as it arrived); the executors stopped their workers.
        raise SuiteInterrupted(count_finished(suite_dir), suite_dir) from None


def _run(spec: SuiteSpec, suite_dir: Path, executor: str, workers: int, ray_address: str | None, progress: bool,
         progress_windows: bool, say: Callable[[str], Any], archive: bool, started: float) -> SuiteOutcome:
    plan = plan_suite(spec, suite_dir)
    tuned = _tune(spec, suite_dir, executor, workers, ray_address, progress, say)
    plan = SuitePlan(plan.runs + tuned, plan.trainings)
    _write_manifest(spec, plan, suite_dir)
    state = inspect_existing(plan, suite_dir)
    for original, moved, reason in state.corrupt:
        say(f"corrupt result file {original.name}: {reason}; moved aside to {moved.name}, the run is repeated")

    needed = {s.model_path for s in state.pending if s.model_path is not None}
    jobs = [job for job in plan.trainings if job.model_path in needed and not Path(job.model_path).exists()]
    train_executor = executor if executor != "batched" else ("serial" if workers == 1 else "local")
    trained = _train(jobs, train_executor, workers, ray_address, progress) if jobs else {}

    results: dict[str, RunResult] = dict(state.finished)
    to_run: list[RunSpec] = []
    for run in state.pending:
        failure = trained.get(run.model_path or "")
        if failure is not None and not failure.ok:
            message = failure.error["message"] if failure.error else "unknown error"
            results[run.run_id] = error_result(run, RuntimeError(f"training of {run.agent_label} on {run.task_label} failed: {message}"))
            write_result(results[run.run_id], suite_dir)
        else:
            to_run.append(run)
    results.update(_evaluate(to_run, suite_dir, executor, workers, ray_address, progress, progress_windows))

    statuses = Counter(r.status for r in results.values())
    outcome = SuiteOutcome(
        suite_dir=suite_dir,
        planned=len(plan.runs),
        reused=len(state.finished),
        ran=len(to_run),
        statuses=dict(statuses),
        corrupt=tuple(moved for _, moved, _ in state.corrupt),
        trained=sum(1 for t in trained.values() if t.ok and not t.skipped),
        training_failures=tuple(p for p, t in trained.items() if not t.ok),
        wall_clock_s=time.perf_counter() - started,
        failed_runs=tuple(sorted(rid for rid, r in results.items() if r.status == "error")),
    )
    _write_last_session(outcome, executor, workers, suite_dir)
    if archive:
        compact(suite_dir)
    return outcome


def _tune(spec: SuiteSpec, suite_dir: Path, executor: str, workers: int, ray_address: str | None, progress: bool, say: Callable[[str], Any]) -> tuple[RunSpec, ...]:
    """Run (or reuse) the ``[tuning]`` sweep under ``<suite>/tuning/`` and return the tuned evaluation runs."""
    if spec.tuning is None:
        return ()
    tuning_dir = suite_dir / TUNING_DIR
    tuning_dir.mkdir(exist_ok=True)
    sweep = SuitePlan(tuple(sweep_runs(spec)), ())
    state = inspect_existing(sweep, tuning_dir)
    results = {**state.finished, **_evaluate(state.pending, tuning_dir, executor, workers, ray_address, progress, False)}
    choices = choose_base_lrs(spec, sweep.runs, results)
    write_tuning_record(tuning_dir, choices)
    for choice in choices:
        if choice.base_lr is None:
            say(f"tuning: every base LR failed or diverged on {choice.task_label}; '{spec.tuning.label}' is not evaluated there")
    return tuple(tuned_runs(spec, choices))


def _write_last_session(outcome: SuiteOutcome, executor: str, workers: int, suite_dir: Path) -> None:
    """What the latest ``run_suite`` call did and how long it took (the suite's wall clock is no run's)."""
    record = {
        "finished_at": utc_now(),
        "wall_clock_s": round(outcome.wall_clock_s, 1),
        "executor": executor,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "planned": outcome.planned,
        "reused": outcome.reused,
        "ran": outcome.ran,
        "models_trained": outcome.trained,
        "statuses": outcome.statuses,
    }
    atomic_write_text(suite_dir / LAST_SESSION, dumps_json(record))


def _evaluate(
    runs: list[RunSpec], suite_dir: Path, executor: str, workers: int, ray_address: str | None, progress: bool, progress_windows: bool
) -> dict[str, RunResult]:
    """Run ``runs`` and write each result as soon as it arrives (a crash loses only runs in flight)."""
    bar = Progress(len(runs), "runs", enabled=progress)
    if executor == "batched":
        from aees_gym.suite.batched_executor import execute_batched

        outcomes = execute_batched(runs, workers=workers, ray_address=ray_address, on_windows=bar.add_windows)
    elif progress_windows and executor == "serial":
        outcomes = _serial_with_windows(runs, bar)
    else:
        outcomes = execute(run_one, runs, executor=executor, workers=workers, ray_address=ray_address)
    results: dict[str, RunResult] = {}
    try:
        for index, outcome in outcomes:
            run = runs[index]
            result = outcome if isinstance(outcome, RunResult) else error_result(run, outcome)
            write_result(result, suite_dir)
            results[run.run_id] = result
            bar.advance(f"{_label(run)}: {result.status}")
            if result.status == "error":
                bar.write(f"run {result.run_id} ({_label(run)}) failed: {result.error['message'] if result.error else ''}")
    finally:
        _close(outcomes)  # on an interrupt: cancel queued runs and stop the workers now
        bar.close()
    return results


def _close(outcomes: Any) -> None:
    close = getattr(outcomes, "close", None)
    if close is not None:
        close()


def _serial_with_windows(runs: list[RunSpec], bar: Progress) -> Iterator[tuple[int, RunResult]]:
    with single_thread():
        for index, run in enumerate(runs):
            yield index, run_one(run, on_window=bar.window_callback(_label(run)))
