"""Executors: run a top-level function over items serially, in a spawned process pool, or on Ray.

All three call the same function on the same picklable items and yield ``(index, outcome)`` as
items finish; ``outcome`` is the function's return value or the exception that escaped it (a
crashed worker process, a lost Ray task). Every worker runs torch with one thread, and so does the
serial executor while it runs, so the three give identical numbers.

Interrupts: pool workers ignore SIGINT (a Ctrl-C in the terminal reaches the whole process group;
only the parent decides). When the consumer stops early — a ``KeyboardInterrupt`` while waiting,
or the generator closed — queued items are cancelled and running workers are terminated at once
(a worker would otherwise finish its current run, minutes of training, before the pool shuts
down); Ray tasks in flight are cancelled. What was already yielded is the caller's to keep.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from aees_gym.core.threads import init_worker, single_thread

T = TypeVar("T")
R = TypeVar("R")
Outcome = tuple[int, Any]


def _serial(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[Outcome]:
    with single_thread():
        for index, item in enumerate(items):
            try:
                yield index, fn(item)
            except Exception as exc:
                yield index, exc


def _pool_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    init_worker()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and terminate the running workers now (no waiting for their current item)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        # Work items still buffered for the pipe would never be read once the workers are gone; without
        # this, the pool's clean-up (and the interpreter's exit) waits on that flush, under load for minutes.
        call_queue.cancel_join_thread()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _local(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[Outcome]:
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pool_worker)
    finished = False
    try:
        pending = {pool.submit(fn, item): index for index, item in enumerate(items)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                exc = future.exception()
                yield index, exc if exc is not None else future.result()
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted or closed early
            stop_pool(pool)


def _ray_call(fn: Callable[[T], R], item: T) -> R:
    init_worker()
    return fn(item)


def import_ray() -> Any:
    """Import Ray or raise an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the 'ray' executor needs Ray; install the 'ray' extra: pip install 'aees-gym[ray]'") from exc
    return ray


class ExecutorError(RuntimeError):
    """An executor could not start (e.g. no Ray cluster at the given address)."""


def connect_ray(address: str | None) -> Any:
    """Import Ray and connect (``None``: ``ray.init()``, a local Ray or ``$RAY_ADDRESS``; ``"auto"``: the ``ray start`` cluster).

    Raises:
        ImportError: Without Ray (names the extra).
        ExecutorError: If no cluster answers at ``address``.
    """
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorError(
                f"could not start or join Ray at address {address!r}: {exc}. Start a cluster with `ray start --head` and pass "
                "--ray-address auto, or omit --ray-address to start a local Ray."
            ) from exc
    return ray


def _ray(fn: Callable[[T], R], items: Sequence[T], workers: int, address: str | None) -> Iterator[Outcome]:
    ray = connect_ray(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
    fn_ref = ray.put(fn)
    queue = list(enumerate(items))
    in_flight: dict[Any, int] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                index, item = queue.pop(0)
                in_flight[remote.remote(fn_ref, item)] = index
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                index = in_flight.pop(ref)
                try:
                    yield index, ray.get(ref)
                except Exception as exc:  # RayTaskError, WorkerCrashedError, …
                    yield index, exc
    finally:
        for ref in in_flight:  # interrupted or closed early: stop the tasks still running
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that just finished cannot be cancelled; nothing to stop
                pass


def execute(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    executor: str = "serial",
    workers: int = 1,
    ray_address: str | None = None,
) -> Iterator[Outcome]:
    """Yield ``(index, result_or_exception)`` for every item, in completion order.

    Args:
        fn: A picklable top-level function (``run_one``, ``train_one``).
        items: Its arguments.
        executor: ``serial``, ``local`` (spawned process pool) or ``ray``.
        workers: Processes (``local``) or tasks in flight (``ray``); ignored by ``serial``.
        ray_address: ``None`` for ``ray.init()`` (a local Ray), ``"auto"`` or ``"ray://host:10001"``
            for an existing cluster.

    Raises:
        ValueError: For an unknown executor or ``workers < 1``.
        ImportError: For ``ray`` when Ray is not installed (names the extra).
        ExecutorError: For ``ray`` when no cluster answers at ``ray_address``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if not items:
        return iter(())
    if executor == "serial":
        return _serial(fn, items)
    if executor == "local":
        return _local(fn, items, min(workers, len(items)))
    if executor == "ray":
        connect_ray(ray_address)  # fail before any work starts, not at the first result
        return _ray(fn, items, workers, ray_address)
    raise ValueError(f"executor={executor!r} is not valid; choose one of ['serial', 'local', 'ray'].")
