import os

import pytest
import torch

# Parallel test workers share 2 cores; more than one torch thread each oversubscribes them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def tiny_digits_kwargs():
    """Overrides that keep a Digits run to a handful of windows."""
    return {"total_steps": 120, "window_length": 40}
