"""Smoke tests of bench/overhead.py: the counters really count, and a tiny run has the full structure.

No timing is asserted (speed is the benchmark's output, not a test condition).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts at the repository root, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import _variants as V  # noqa: E402
from bench import overhead  # noqa: E402
from bench._sync_counter import CallCounter, marking_optimizer_steps, peak_allocated_bytes  # noqa: E402


def test_call_counter_counts_known_sync_and_clone_calls_then_restores_torch():
    t = torch.tensor([1.5, 2.5])
    original_clone = torch.clone
    with CallCounter() as counter:
        t[0].item()
        float(t[1])
        t.tolist()
        bool(t[0] > 0)
        torch.clone(t)
        t.clone()
    assert counter.by_name["item"] == 1
    assert counter.by_name["__float__"] == 1
    assert counter.by_name["tolist"] == 1
    assert counter.by_name["__bool__"] == 1
    assert counter.syncs == 4
    assert counter.clones == 2
    assert counter.clone_bytes == 2 * t.numel() * t.element_size()
    # Restored: the methods are the C implementations again and nothing counts any more.
    assert "item" not in torch.Tensor.__dict__ and "clone" not in torch.Tensor.__dict__
    assert torch.clone is original_clone
    t[0].item()
    assert counter.syncs == 4


def test_counter_attributes_calls_to_optimizer_steps():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.1)
    with CallCounter() as counter, marking_optimizer_steps(counter, opt):
        for step in range(3):
            p.grad = torch.ones_like(p)
            if step == 1:
                p.sum().item()  # the one extra host sync, in the second step
            opt.step()
    syncs = [c.syncs for c in counter.per_step()]
    assert len(syncs) == 3
    assert syncs[1] - syncs[0] == 1 and syncs[2] == syncs[0]


def test_peak_allocated_bytes_sees_a_transient_allocation():
    def block() -> None:
        big = torch.empty(1_000_000)  # 4 MB, freed before the block returns
        del big

    peak = peak_allocated_bytes(block)
    assert peak.peak_bytes >= 4_000_000
    assert peak.end_bytes < peak.peak_bytes


def test_settings_reject_partial_windows():
    with pytest.raises(ValueError, match="multiple of the 50-step window"):
        overhead.BenchSettings(steps=60)


@pytest.mark.slow
def test_mlp784_task_builds_the_benchmark_model_and_env():
    run = V.build_run("mlp784", total_steps=200)
    shapes = [tuple(p.shape) for p in run.model.parameters()]
    assert shapes == [(256, 784), (256,), (10, 256), (10,)]
    assert isinstance(run.optimizer, torch.optim.AdamW)
    env_loop = V.EnvLoop("mlp784", total_steps=200, action=V.GRID.index_of(1.0, 0.005))
    env_loop.run(V.WINDOW)
    assert env_loop.env.unwrapped.control.history.steps_done == V.WINDOW
    with pytest.raises(ValueError, match="multiple of 50"):
        env_loop.run(30)


@pytest.mark.slow
def test_quick_run_on_digits_writes_the_full_report(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    assert overhead.main(["--quick", "--models", "digits", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"torch", "torch_threads", "cpu_count", "date_utc", "shared_machine"} <= set(data["machine"])
    assert "profiler" in data["methods"]["memory"]
    variants = data["models"]["digits"]["variants"]
    assert list(variants) == list(V.variant_factories("digits", 100))
    n_param_tensors = 4  # Linear(64,128) and Linear(128,10): two weights, two biases
    param_bytes = (64 * 128 + 128 + 128 * 10 + 10) * 4
    for name, entry in variants.items():
        assert len(entry["timing"]["wall"]["seconds_per_step"]) == overhead.QUICK.repeats
        assert entry["timing"]["cpu"]["median_s_per_step"] > 0
        calls = entry["calls"]
        if name.startswith(("control", "env")):
            # One loss transfer per window, none in a typical step, and no clones.
            assert calls["added_syncs_per_step_median"] == 0
            assert calls["added_syncs_per_window"] == pytest.approx(1.0)
            assert calls["added_clones_per_step"] == 0
            assert set(entry["meets_targets"]) >= {"time_cpu", "syncs", "clones"}
    # The reference reads the loss and one update norm per parameter tensor, and clones every parameter.
    assert variants["pulseopt"]["calls"]["added_syncs_per_step_mean"] == pytest.approx(1 + n_param_tensors)
    assert variants["pulseopt"]["calls"]["added_clones_per_step"] == pytest.approx(n_param_tensors)
    assert variants["pulseopt"]["calls"]["added_clone_bytes_per_step"] == pytest.approx(param_bytes)
    # σ > 0 keeps one noise buffer per gradient alive; σ = 0 allocates none.
    assert variants["control_sigma0.005"]["memory"]["extra_end_bytes"] >= param_bytes
    assert variants["control_sigma0"]["memory"]["extra_end_bytes"] < param_bytes
    assert "vs_plain_noise_cpu" in variants["control_sigma0.005"]["timing"]
    alone = data["models"]["digits"]["controller_alone"]
    assert set(alone["added_us_per_step"]) == {"control_sigma0", "control_sigma0.005", "inline_noise0.005"}
    assert set(alone["implied_ratio"]) == set(alone["added_us_per_step"])
    table = capsys.readouterr().out
    assert "| plain PyTorch loop |" in table and "EpisodeControl lr×1 σ=0.005" in table
