"""A window's plan — per-step LRs, which rows step, batch indices — packed into one host buffer.

The batched engine builds the plan on the host and sends it to the device as **one** copy. On a
GPU the buffer is pinned and the copy ``non_blocking``, so it is queued on the stream like a kernel
and the host never waits for the device; a fresh buffer each window comes from the caching host
allocator, which reuses a block only once the copy that read it has run. On CPU the plan's tensors
are the buffer itself (no copy at all).

Layout, in int64 slots: ``[W·N]`` LRs (float64 bit patterns), ``[W·N]`` active flags (0/1),
``[W·N·B]`` batch indices, ``[N]`` momenta (float64 bit patterns; read only when the window has a
momentum axis). Every per-window input of the steps travels here, so a window needs no other
host-to-device copy (and a CUDA graph, which re-reads its static plan buffer, reads nothing stale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class WindowPlan:
    """Device views of one window's plan."""

    lr: torch.Tensor  #: ``[W, N]`` float64 learning rates
    active: torch.Tensor  #: ``[W, N]`` bool, whether row ``n`` takes step ``w``
    index: torch.Tensor  #: ``[W, N, B]`` int64 batch indices
    momentum: torch.Tensor  #: ``[N]`` float64 momenta of a momentum axis (zeros without one)


@dataclass(frozen=True)
class HostPlan:
    """The packed host buffer and numpy views to fill it."""

    buffer: torch.Tensor
    lr: np.ndarray
    active: np.ndarray
    index: np.ndarray
    momentum: np.ndarray


def plan_size(width: int, n: int, batch: int) -> int:
    """int64 slots of a packed plan."""
    return width * n * (2 + batch) + n


def host_plan(width: int, n: int, batch: int, device: torch.device) -> HostPlan:
    """A zeroed host buffer for a window's plan, pinned when ``device`` is a GPU."""
    size = plan_size(width, n, batch)
    if device.type == "cuda":
        buffer = torch.zeros(size, dtype=torch.int64, pin_memory=True)
        flat = buffer.numpy()  # host memory: no device read
    else:
        flat = np.zeros(size, dtype=np.int64)
        buffer = torch.from_numpy(flat)
    wn = width * n
    return HostPlan(
        buffer,
        flat[:wn].view(np.float64).reshape(width, n),
        flat[wn : 2 * wn].reshape(width, n),
        flat[2 * wn : -n].reshape(width, n, batch),
        flat[-n:].view(np.float64),
    )


def unpack(packed: torch.Tensor, width: int, n: int, batch: int) -> WindowPlan:
    """Views of a packed plan (on any device); ``active`` is the one derived tensor."""
    wn = width * n
    return WindowPlan(
        packed[:wn].view(torch.float64).view(width, n),
        packed[wn : 2 * wn].view(width, n) != 0,
        packed[2 * wn : -n].view(width, n, batch),
        packed[-n:].view(torch.float64),
    )


def send(host: HostPlan, device: torch.device, into: torch.Tensor | None = None) -> torch.Tensor:
    """The packed plan on ``device`` in one copy that never blocks the host.

    ``into``: a device buffer to copy into (a CUDA graph's static input); else a new one.
    """
    if device.type != "cuda":
        return host.buffer if into is None else into.copy_(host.buffer)
    if into is None:
        return host.buffer.to(device, non_blocking=True)
    return into.copy_(host.buffer, non_blocking=True)
