"""The torch-thread policy: the one place that decides how many threads a process's training uses.

On a few cores, parallel workers (vector-env copies, process pools, Ray workers, test workers) that
each use every core oversubscribe the CPU: a second busy process can slow a step 3×. So every
worker trains with one torch thread, and an env's ``torch_threads`` argument decides for envs:
``None`` (default) sets one thread when the env is built inside a ``multiprocessing`` worker and
leaves the main process alone; an integer sets that many threads in whatever process builds it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator

import torch


def in_worker_process() -> bool:
    """True inside a process started by ``multiprocessing`` (fork, spawn or forkserver)."""
    return multiprocessing.parent_process() is not None


def apply_torch_threads(threads: int | None) -> int:
    """Apply the env's ``torch_threads`` policy (see the module docstring); returns the thread count in use."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"torch_threads must be a positive integer or None (automatic), got {threads!r}.")
        torch.set_num_threads(threads)
    elif in_worker_process():
        torch.set_num_threads(1)
    return torch.get_num_threads()


def init_worker() -> None:
    """Process-pool / Ray / vector-env worker initializer: one torch thread per worker."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run a block with one torch thread (the same arithmetic as a pool worker), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
