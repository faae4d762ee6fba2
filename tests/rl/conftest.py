import pytest

# Tiny real runs; one torch thread keeps them fast and stable on a shared 2-core machine.
TINY = {"total_steps": 40, "window_length": 20, "n_train": 256, "n_val": 128}



@pytest.fixture
def tiny():
    """Overrides that make Synthetic-v0 a two-window run on a small data set."""
    return dict(TINY)
