"""On a GPU: one synchronising call per window, and CUDA-graph windows equal to eager ones.

Every test needs CUDA (skipped otherwise, reason "needs CUDA"); ``bench/gpu_check.py`` runs the
same checks at larger sizes and archives the counts. Sync calls are counted by PyTorch itself
(``torch.cuda.set_sync_debug_mode``), device-to-host reads and pageable host-to-device copies included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts at the repository root
    sys.path.insert(0, str(ROOT))

from bench import gpu_check  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("task", ["Digits", "DigitsCNN"])
def test_single_env_makes_one_sync_per_window(task):
    got = gpu_check.single_env_syncs(task, CUDA, windows=4, window=50)
    assert got["syncs"] == 4, got["calls"]


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("task", ["Digits", "DigitsCNN"])
def test_batched_engine_makes_one_sync_per_window(task, graphs):
    got = gpu_check.batched_syncs(task, CUDA, n=8, windows=3, window=20, graphs=graphs)
    assert got["syncs"] == 3, got["calls"]
    assert (got["graph_replays"] > 0) == graphs


def test_vector_env_makes_one_sync_per_step():
    got = gpu_check.vector_env_syncs("Digits", CUDA, n=4, steps=3, window=20)
    assert got["syncs"] == 3, got["calls"]


@pytest.mark.parametrize("task", ["Digits", "DigitsCNN"])
def test_cuda_graph_windows_equal_eager_windows(task):
    got = gpu_check.graph_vs_eager(task, CUDA, n=6, width=10)
    assert got["graph_failure"] is None
    assert got["graph_captures"] == 1 and got["graph_replays"] >= 3  # the uniform windows after the warm-up
    assert got["max_abs_loss_diff"] <= 1e-5 and got["max_abs_param_diff"] <= 1e-5


@pytest.mark.parametrize("task", ["Digits", "DigitsCNN"])
def test_vector_sub_env_reproduces_the_single_env_on_cuda(task):
    got = gpu_check.vector_vs_single(task, CUDA, n=3, window=20)
    assert got["first_window_max_rel_loss_diff"] < 1e-3 and got["max_abs_reward_diff"] < 1e-2
