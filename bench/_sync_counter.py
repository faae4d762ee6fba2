"""Count host-sync and clone calls on ``torch.Tensor``, and measure peak CPU-allocator bytes.

Host syncs are counted as Python-level calls of the ``Tensor`` methods that read a value back to
the host (``item``, ``tolist``, ``cpu``, ``numpy``, ``float()``/``int()``/``bool()``). On a CPU they
cost little, but each one is a device→host synchronisation on a GPU, so their count per optimizer
step is what decides whether a controller stalls the accelerator. Calls made from C++ are not seen;
that is fine because the controllers under test are written in Python.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SYNC_METHODS: tuple[str, ...] = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__")
CLONE_NAMES: tuple[str, ...] = ("Tensor.clone", "torch.clone")


@dataclass(frozen=True)
class StepCounts:
    """Calls attributed to one optimizer step (from the previous step's end to this step's end)."""

    syncs: int
    clones: int
    clone_bytes: int


@dataclass
class CallCounter:
    """Context manager that patches ``torch.Tensor`` to count sync and clone calls while active.

    Attributes:
        by_name: Calls per patched name (``item``, ``__float__``, ``Tensor.clone`` …).
        clone_bytes: Bytes of all tensors cloned while active.
        marks: Running totals (syncs, clones, clone bytes) recorded by :meth:`mark`.
    """

    sync_methods: Sequence[str] = SYNC_METHODS
    by_name: collections.Counter[str] = field(default_factory=collections.Counter)
    clone_bytes: int = 0
    marks: list[StepCounts] = field(default_factory=list)
    _restore: list[Callable[[], None]] = field(default_factory=list)

    @property
    def syncs(self) -> int:
        return sum(self.by_name[name] for name in self.sync_methods)

    @property
    def clones(self) -> int:
        return sum(self.by_name[name] for name in CLONE_NAMES)

    def mark(self) -> None:
        """Record the running totals (call at each optimizer-step boundary)."""
        self.marks.append(StepCounts(self.syncs, self.clones, self.clone_bytes))

    def per_step(self) -> list[StepCounts]:
        """Calls between consecutive marks; calls after the last mark are added to the last step."""
        if not self.marks:
            return []
        totals = [StepCounts(0, 0, 0), *self.marks[:-1], StepCounts(self.syncs, self.clones, self.clone_bytes)]
        return [
            StepCounts(b.syncs - a.syncs, b.clones - a.clones, b.clone_bytes - a.clone_bytes)
            for a, b in zip(totals[:-1], totals[1:], strict=True)
        ]

    def __enter__(self) -> CallCounter:
        for name in self.sync_methods:
            self._patch_method(name, name)
        self._patch_method("clone", "Tensor.clone", count_bytes=True)
        original_clone = torch.clone

        def counting_clone(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            self.by_name["torch.clone"] += 1
            self.clone_bytes += tensor.numel() * tensor.element_size()
            return original_clone(tensor, *args, **kwargs)

        torch.clone = counting_clone
        self._restore.append(lambda: setattr(torch, "clone", original_clone))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._restore:
            self._restore.pop()()

    def _patch_method(self, attr: str, key: str, *, count_bytes: bool = False) -> None:
        cls = torch.Tensor
        # Most methods live on the C base class; restoring must not leave a copy on torch.Tensor.
        own = attr in cls.__dict__
        saved = cls.__dict__.get(attr)
        original = getattr(cls, attr)

        def counting(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.by_name[key] += 1
            if count_bytes:
                self.clone_bytes += tensor.numel() * tensor.element_size()
            return original(tensor, *args, **kwargs)

        setattr(cls, attr, counting)
        self._restore.append(lambda: setattr(cls, attr, saved) if own else delattr(cls, attr))


@contextmanager
def marking_optimizer_steps(counter: CallCounter, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Mark ``counter`` after every ``optimizer.step()`` so calls can be attributed per step."""
    handle = optimizer.register_step_post_hook(lambda *_: counter.mark())
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class MemoryPeak:
    """CPU-allocator bytes over a profiled block, relative to its start."""

    peak_bytes: int
    end_bytes: int


def peak_allocated_bytes(block: Callable[[], Any]) -> MemoryPeak:
    """Peak and final live tensor bytes allocated by ``block`` (``torch.profiler`` memory events).

    Every allocation and free of the CPU allocator inside the block is replayed in time order; frees
    of blocks allocated before the profile are not reported by the profiler, so the running sum only
    tracks what ``block`` allocated.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        block()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return MemoryPeak(peak_bytes=peak, end_bytes=live)


@contextmanager
def counting_cuda_syncs() -> Iterator[list[str]]:
    """Count the synchronising CUDA calls made inside the block (``torch.cuda.set_sync_debug_mode``).

    Yields a list that fills with one ``file:line`` per synchronising call (a device→host read, a copy
    from pageable host memory, an explicit synchronise, …), counted by PyTorch itself, C++ calls
    included. Needs CUDA.
    """
    import warnings

    if not torch.cuda.is_available():
        raise RuntimeError("counting CUDA syncs needs a CUDA device; none is available here.")
    found: list[str] = []
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every call, not once per source line
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode(previous)
            # Where: the Python line whose torch call synchronised (the warning's frame).
            found.extend(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
