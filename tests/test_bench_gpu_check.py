"""bench/gpu_check.py in its tiny mode (CPU without CUDA), so the GPU check script cannot rot.

No speed is asserted: figures are the script's output, read on a GPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts at the repository root
    sys.path.insert(0, str(ROOT))

from bench import gpu_check  # noqa: E402


@pytest.mark.slow
def test_tiny_gpu_check_writes_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--tiny", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["mode"] == "tiny"
    for row in result["equivalence"]["graph_vs_eager"]:
        assert row["max_abs_loss_diff"] <= 1e-5 and row["max_abs_param_diff"] <= 1e-5
    for row in result["equivalence"]["vector_vs_single"]:
        assert row["first_window_max_rel_loss_diff"] < 1e-5
    if torch.cuda.is_available():
        assert all(r["per_window"] <= 1 for r in result["syncs"]["single_env"] + result["syncs"]["batched"])
    else:
        assert result["syncs"].startswith("not run: needs CUDA")
    assert {(r["task"], r["graphs"]) for r in result["scale"]} == {(t, g) for t in ("Digits", "DigitsCNN") for g in (False, True)}
    assert all(r["steps_per_s"] > 0 for r in result["scale"])
    assert all(r["graphs"]["batched_over_sequential"] > 0 for r in result["versus_sequential"])
    assert set(result["epoch"]["round_ratios"]) == {"plain_over_reference", "env_over_plain"}
    table = gpu_check.markdown(result)
    assert "| Digits | 2 | 4 |" in table and "| plain |" in table
