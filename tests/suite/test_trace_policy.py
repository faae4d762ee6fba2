"""experiments/trace_policy.py: a row's runs replayed window by window, matching the leaderboard's own runs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from aees_gym.envs.families import InstanceFamily, architecture_menu, register_family
from aees_gym.envs.tracks import CONTROLLER_FEATURES, RELATIVE_LR_BOUNDS
from aees_gym.suite.leaderboard import finished_runs, load_leaderboard, plan_set
from experiments.leaderboard import main as leaderboard_main
from experiments.trace_policy import main

FAMILY = register_family(InstanceFamily(
    "tiny-trace-v1", "tests only", "MLP",
    architecture_menu(dataset=[{"dataset": "synthetic", "separation": 1.0}], width=[8], depth=[1], batch_size=[16], optimizer=["adamw"]),
    windows=(3, 4), window_length=5, n_tuning=2, n_test=2, seed=12,
), overwrite=True)

BOARD = """\
executor = "serial"
n_boot = 200
[[sets]]
name = "tiny-trace-v1"
[[agents]]
name = "random"
[[agents]]
name = "learned"
label = "shipped"
"""


@pytest.fixture
def board(tmp_path: Path) -> Path:
    path = tmp_path / "board.toml"
    path.write_text(BOARD)
    return path


def test_the_trace_replays_the_rows_runs_and_records_what_the_policy_saw(board: Path, tmp_path: Path, capsys):
    res = tmp_path / "res"
    assert leaderboard_main([str(board), "--results-dir", str(res), "--out", str(tmp_path / "board.md"), "--only", "shipped"]) == 0
    out = tmp_path / "trace.json"
    assert main([str(board), "--set", "tiny-trace-v1", "--label", "shipped", "--runs", "2", "--out", str(out)]) == 0
    trace = json.loads(out.read_text())
    assert trace["label"] == "shipped" and trace["agent"] == "learned" and len(trace["runs"]) == 2

    plan = plan_set(load_leaderboard(board), "tiny-trace-v1", res)
    finished, _, _ = finished_runs(plan)
    for run, spec in zip(trace["runs"], plan.runs_of("shipped"), strict=True):
        result = finished[spec.run_id]
        assert run["instance"] == spec.task_label and run["seed"] == spec.seed
        # Same settings, seed and thread count: the replay ends where the leaderboard's run ended.
        assert run["final_metrics"]["val_accuracy"] == result.final_metrics["val_accuracy"]
        assert len(run["windows"]) == len(result.windows)
        assert [w["effective_lr"] for w in run["windows"]] == pytest.approx([w["effective_lr"] for w in result.windows], rel=1e-4)
        assert run["features"] == list(CONTROLLER_FEATURES)
        first = dict(zip(run["features"], run["windows"][0]["observation"], strict=True))
        assert first["progress"] == 0.0 and first["last_lr"] == -1.0
        scale = 1.0
        for window in run["windows"]:
            # The continuous track's action is the per-window step of a persistent, clamped LR scale.
            scale = min(max(scale * window["action"]["lr_multiplier"], RELATIVE_LR_BOUNDS[0]), RELATIVE_LR_BOUNDS[1])
            assert window["lr_scale"] == pytest.approx(scale, rel=1e-3)
        progress = [w["observation"][CONTROLLER_FEATURES.index("progress")] for w in run["windows"]]
        assert progress == sorted(progress) and all(math.isfinite(w["loss_last"]) for w in run["windows"])


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "nobody"], "no agent of .* has that label; its labels are \\['random', 'shipped'\\]"),
    (["--label", "shipped", "--runs", "0"], "--runs must be at least 1"),
    (["--label", "shipped", "--set", "digits-mlp-v1"], "set 'digits-mlp-v1' is not in"),
])
def test_bad_arguments_are_named_and_nothing_is_written(board: Path, tmp_path: Path, capsys, args, message):
    out = tmp_path / "trace.json"
    full = [str(board), "--set", "tiny-trace-v1", "--out", str(out), *args]
    assert main(full) == 2
    assert out.exists() is False
    assert re.search(message, capsys.readouterr().err)


def test_an_interrupted_trace_keeps_the_runs_finished_before(board: Path, tmp_path: Path, monkeypatch):
    import experiments.trace_policy as tracer

    real, calls = tracer.trace_run, []

    def interrupted_on_the_second(spec):
        calls.append(spec.task_label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(tracer, "trace_run", interrupted_on_the_second)
    out = tmp_path / "trace.json"
    with pytest.raises(KeyboardInterrupt):
        main([str(board), "--set", "tiny-trace-v1", "--label", "shipped", "--runs", "2", "--out", str(out)])
    kept = json.loads(out.read_text())
    assert [r["instance"] for r in kept["runs"]] == calls[:1] and kept["runs"][0]["windows"]
