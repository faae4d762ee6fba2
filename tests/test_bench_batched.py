"""Smoke test of bench/batched.py: a ``--quick`` run writes a JSON with every cell and field.

No speed is asserted (speed is the benchmark's output, not a test condition).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts at the repository root, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import batched  # noqa: E402

ROW_FIELDS = {
    "task", "env_id", "threads", "n", "plain_steps_per_s", "sequential_steps_per_s", "batched_steps_per_s",
    "batched_over_sequential", "batched_over_plain", "sequential_over_plain", "flops_per_step", "batched_flops_per_s",
    "plain_flops_per_s", "matmul_peak_flops_per_s", "batched_fraction_of_peak", "batched_memory_mb_per_run",
    "sequential_memory_mb_per_run", "rates_per_round", "cpu_time_rates_per_round", "batched_over_sequential_cpu_time",
    "batched_steps_per_cpu_s", "batched_fraction_of_peak_cpu_time",
}


@pytest.mark.slow
def test_quick_run_writes_every_cell_with_its_fields(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "batched.json"
    try:
        batched.main(["--quick", "--out", str(out), "--conditions", "test run"])
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert data["benchmark"] == "batched" and data["device"] == "cpu" and data["quick"] is True
    assert data["conditions"] == "test run"
    assert [(r["task"], r["n"], r["threads"]) for r in data["rows"]] == [(t, n, 1) for t in batched.TASKS for n in (1, 2)]
    for row in data["rows"]:
        assert set(row) == ROW_FIELDS
        for key in ROW_FIELDS - {"task", "env_id", "rates_per_round", "cpu_time_rates_per_round"}:
            assert isinstance(row[key], int | float) and math.isfinite(row[key]), key
        assert row["flops_per_step"] > 0 and row["matmul_peak_flops_per_s"] > 0 and row["batched_steps_per_s"] > 0
        assert row["batched_flops_per_s"] == pytest.approx(row["flops_per_step"] * row["batched_steps_per_s"])
        for per_round in (row["rates_per_round"], row["cpu_time_rates_per_round"]):
            assert {k: len(v) for k, v in per_round.items()} == {"plain": 1, "sequential": 1, "batched": 1}
    assert data["targets"]["goal"] == batched.CPU_TARGET and data["targets"]["measured"] is None  # no N=64 cell in --quick
    assert {"torch", "load_average_1_5_15", "torch_num_threads"} <= set(data["machine"])
    table = capsys.readouterr().out
    assert table.count("| aees_gym/Digits") == 4 and "batched ÷ sequential, wall" in table


def test_bad_arguments_are_refused_with_the_valid_range(capsys):
    with pytest.raises(SystemExit):
        batched.parse_args(["--ns", "0"])
    assert "positive integers" in capsys.readouterr().err
