"""The machine and software a run or a benchmark used: the one place host metadata (and the UTC time stamp) is made."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
from typing import Any

import gymnasium
import numpy
import torch

from aees_gym.core.version import __version__


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second, the stamp every result and report file uses."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def host_metadata(device: str | None = None) -> dict[str, Any]:
    """Software versions, the machine, the torch thread count and (for CUDA) the device name."""
    meta: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "aees_gym": __version__,
        "device": device,
        "date_utc": utc_now(),
    }
    if device is not None and device.startswith("cuda"):
        meta["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return meta
