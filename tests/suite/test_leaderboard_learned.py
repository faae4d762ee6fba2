"""Leaderboard rows of learned policies trained outside it: their own track, pending while missing, seed groups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aees_gym.envs.families import InstanceFamily, architecture_menu, register_family
from aees_gym.envs.tracks import TRACKS
from aees_gym.reporting.leaderboard import SAMPLED, BoardRow, raw_scores, set_rows
from aees_gym.reporting.rows import task_metric
from aees_gym.reporting.seed_groups import seed_group_markdown, seed_group_stats
from aees_gym.reporting.stats import iqm
from aees_gym.suite import SuiteConfigError
from aees_gym.suite.leaderboard import finished_runs, load_leaderboard, parse_leaderboard, plan_set
from aees_gym.suite.results import RunResult
from agents.learned import LearnedAgent
from experiments.leaderboard import main

SHIPPED = Path(__file__).resolve().parents[2] / "agents" / "policies" / "learned-relative.npz"
FAMILY = register_family(InstanceFamily(
    "tiny-learned-v1", "tests only", "MLP",
    architecture_menu(dataset=[{"dataset": "synthetic", "separation": 1.0}], width=[8], depth=[1], batch_size=[16], optimizer=["adamw"]),
    windows=(2, 3), window_length=5, n_tuning=2, n_test=2, seed=11,
), overwrite=True)


def _board(folder: Path) -> str:
    rows = "".join(f"""
[[agents]]
name = "learned"
label = "PPO (heldout) s{seed}"
kwargs = {{ policy = "{folder / f'ppo-relative-heldout-tiny-learned-v1-s{seed}' / 'policy.npz'}" }}
seed_group = "PPO (heldout)"
""" for seed in (0, 1, 2))
    return f"""\
executor = "batched"
n_boot = 200
[[sets]]
name = "tiny-learned-v1"
[[agents]]
name = "random"
{rows}"""


def _archive_policy(folder: Path, seed: int) -> Path:
    """The placeholder policy in the place a training archives its policy (``<folder>/<training>/policy.npz``)."""
    target = folder / f"ppo-relative-heldout-tiny-learned-v1-s{seed}" / "policy.npz"
    target.parent.mkdir(parents=True)
    shutil.copy(SHIPPED, target)
    shutil.copy(SHIPPED.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_learned_rows_run_with_their_policys_track_and_a_missing_policy_is_a_pending_row(tmp_path: Path, capsys):
    learned = tmp_path / "learned"
    for seed in (0, 1):  # seed 2's training has not written its policy yet
        _archive_policy(learned, seed)
    board, res, out = tmp_path / "board.toml", tmp_path / "res", tmp_path / "board.md"
    board.write_text(_board(learned))
    assert main([str(board), "--results-dir", str(res), "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "PPO (heldout) s2: pending, policy file" in log

    plan = plan_set(load_leaderboard(board), "tiny-learned-v1", res)
    track = LearnedAgent(policy=learned / "ppo-relative-heldout-tiny-learned-v1-s0" / "policy.npz").env_overrides
    finished, pending, _ = finished_runs(plan)
    assert not pending and set(plan.waiting) == {"PPO (heldout) s2"} and not plan.runs_of("PPO (heldout) s2")
    for label in ("PPO (heldout) s0", "PPO (heldout) s1"):
        runs = plan.runs_of(label)
        assert [r.task_label for r in runs] == [i.name for i in FAMILY.test]
        for run in runs:
            result = finished[run.run_id]
            assert result.status == "ok", result.error
            # The policy's own track: its grid (5 relative steps × 2 noise stds), action mode and 9-feature observation.
            assert result.config["action_mode"] == "relative" == track["action_mode"]
            assert result.config["grid"]["lr_multipliers"] == pytest.approx(track["grid"]["lr_multipliers"])
            assert result.config["context"]["features"] == list(track["context"]["features"])
            assert {w["action"] for w in result.windows} <= set(range(10))
            assert result.runtime["batched_runs"] == 2  # both policies of one instance trained as rows of one batched env
            assert result.training["sha256"] and result.training["reward"] == "heldout"
    table = out.read_text()
    assert "pending: policy file" in table and "ppo-relative-heldout-tiny-learned-v1-s2/policy.npz does not exist yet" in table
    assert "train_learned.py train --algo ppo --track relative --set tiny-learned-v1 --reward heldout --seeds 2" in table
    shipped_set = json.loads(SHIPPED.with_suffix(".json").read_text())["provenance"]["instance_set"]
    assert shipped_set != "tiny-learned-v1" and f"transfer: trained on {shipped_set}" in table  # the shipped policy saw another set
    assert "| PPO (heldout) | 2 of 3 |" in table

    # Rerunning reads everything back; once seed 2's policy exists, only its runs run.
    assert main([str(board), "--results-dir", str(res), "--out", str(out)]) == 0
    assert "running" not in capsys.readouterr().out
    _archive_policy(learned, 2)
    assert main([str(board), "--results-dir", str(res), "--out", str(out), "--only", "PPO (heldout) s2"]) == 0
    assert f"running {len(FAMILY.test)} test runs" in capsys.readouterr().out
    assert "| PPO (heldout) | 3 of 3 |" in out.read_text()


def test_a_suite_needs_the_policy_file_and_a_bad_seed_group_is_refused(tmp_path: Path):
    from aees_gym.suite.suite_file import parse_suite

    with pytest.raises(SuiteConfigError, match="policy file .*missing.npz does not exist yet"):
        parse_suite({"name": "s", "seeds": [0], "tasks": [{"name": "Digits"}], "agents": [{"name": "learned", "kwargs": {"policy": str(tmp_path / "missing.npz")}}]})
    with pytest.raises(SuiteConfigError, match="seed_group"):
        parse_leaderboard({"sets": [{"name": "tiny-learned-v1"}], "agents": [{"name": "random", "seed_group": ""}]})


def _result(label: str, instance: str, value: float) -> RunResult:
    return RunResult("x", "s", "MLP", instance, "aees_gym/MLP-v0", "fixed", label, 0, "ok", final_metrics={"val_accuracy": value})


def test_the_seed_group_line_is_the_mean_and_spread_of_per_seed_iqms_beside_their_ci_widths():
    rng = np.random.default_rng(0)
    instances = [f"fam#test{i:03d}" for i in range(12)]
    # Three training seeds: one far better than the others, so the spread across seeds dwarfs one seed's CI.
    per_seed = {"A s0": 0.60, "A s1": 0.62, "A s2": 0.90}
    values = {label: [mean + 0.01 * rng.standard_normal() for _ in instances] for label, mean in per_seed.items()}
    results = [_result(label, inst, v) for label, vs in values.items() for inst, v in zip(instances, vs, strict=True)]
    results += [_result(label, inst, 0.5 + 0.1 * rng.random()) for label in ("random", "fixed lr1_n0") for inst in instances]

    scores = raw_scores(results, task_metric("MLP"), ["fixed lr1_n0"], n_boot=300, grouping=SAMPLED)
    rows = [BoardRow(label, "heldout", "—", scores[label], None) for label in per_seed]
    rows.append(BoardRow("A s3", "heldout", "—", None, "pending: policy file missing"))
    [stat] = seed_group_stats({**{label: "A" for label in per_seed}, "A s3": "A"}, rows)
    iqms = [iqm(np.array(values[label])) for label in per_seed]
    assert stat.scored == tuple(per_seed) and stat.labels[-1] == "A s3"
    assert stat.mean_iqm == pytest.approx(np.mean(iqms))  # the mean of per-seed IQMs, not the IQM of the pooled runs
    assert abs(stat.mean_iqm - iqm(np.concatenate(list(values.values())))) > 0.01
    assert (stat.low, stat.high) == pytest.approx((min(iqms), max(iqms)))
    assert stat.sd == pytest.approx(np.std(iqms, ddof=1))
    widths = [scores[label].high - scores[label].low for label in per_seed]
    assert stat.mean_ci_width == pytest.approx(np.mean(widths)) and stat.high - stat.low > 5 * stat.mean_ci_width
    [line] = [line for line in seed_group_markdown([stat], "val_accuracy") if line.startswith("| A |")]
    assert line == (f"| A | 3 of 4 | {np.mean(iqms):.4f} | {min(iqms):.4f} – {max(iqms):.4f} | {np.std(iqms, ddof=1):.4f} | "
                    f"{np.mean(widths):.4f} |")
    [alone] = seed_group_stats({"A s0": "B"}, rows)
    assert np.isnan(alone.sd) and alone.mean_ci_width == pytest.approx(widths[0])
    assert seed_group_stats({"A s3": "C"}, rows)[0].scored == ()


def test_set_rows_of_a_waiting_policy_say_why(tmp_path: Path):
    board = parse_leaderboard(json.loads(json.dumps({"sets": [{"name": "tiny-learned-v1"}], "agents": [
        {"name": "random"}, {"name": "learned", "label": "L", "kwargs": {"policy": str(tmp_path / "nope" / "policy.npz")}}]})))
    plan = plan_set(board, "tiny-learned-v1", tmp_path / "res")
    [row] = [r for r in set_rows(plan, {}, {}) if r.label == "L"]
    assert row.score is None and row.pending.startswith("pending: policy file") and "nope/policy.npz" in row.pending
    assert row.training == "policy not written yet"


def test_box_policies_on_the_continuous_track_run_as_rows_of_one_batched_env(tmp_path: Path):
    from stable_baselines3 import SAC

    from aees_gym.envs.tracks import make_track_env, track_overrides
    from agents.learned_policy import export_sb3, save_policy

    env = make_track_env("Synthetic-v0", "continuous", total_steps=20, window_length=10, n_train=64, n_val=32, torch_threads=1)
    policy = export_sb3(SAC("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [8]}))  # untrained: any Box policy
    env.close()
    provenance = {"algo": "sac", "track": "continuous", "reward": "heldout", "instance_set": "tiny-learned-v1", "training_seed": 0,
                  "windows_trained": 10, "env_overrides": track_overrides("continuous")}
    rows = ""
    for seed in (0, 1):
        path = save_policy(policy, tmp_path / f"sac-continuous-heldout-tiny-learned-v1-s{seed}" / "policy.npz", provenance)
        rows += f'[[agents]]\nname = "learned"\nlabel = "SAC s{seed}"\nkwargs = {{ policy = "{path}" }}\n'
    board = tmp_path / "board.toml"
    board.write_text(f'executor = "batched"\nn_boot = 100\n[[sets]]\nname = "tiny-learned-v1"\n[[agents]]\nname = "random"\n{rows}')
    assert main([str(board), "--results-dir", str(tmp_path / "res"), "--out", str(tmp_path / "t.md")]) == 0
    plan = plan_set(load_leaderboard(board), "tiny-learned-v1", tmp_path / "res")
    finished, pending, _ = finished_runs(plan)
    assert not pending
    grid = {float(m) for m in track_overrides("continuous")["grid"]["lr_multipliers"]}
    for run in plan.runs_of("SAC s0") + plan.runs_of("SAC s1"):
        result = finished[run.run_id]
        assert result.status == "ok" and result.runtime["batched_runs"] == 2
        assert result.config["action_mode"] == "relative" and len(result.config["context"]["features"]) == 9
        assert any(w["lr_multiplier"] not in grid for w in result.windows)  # exact Box steps, not grid cells
    assert "in distribution" in (tmp_path / "t.md").read_text()


def test_a_policy_without_its_provenance_waits_and_a_changed_policy_file_gets_new_runs(tmp_path: Path):
    path = _archive_policy(tmp_path, 0)
    board = parse_leaderboard({"sets": [{"name": "tiny-learned-v1"}], "agents": [
        {"name": "random"}, {"name": "learned", "label": "L", "kwargs": {"policy": str(path)}}]})
    before = {r.run_id for r in plan_set(board, "tiny-learned-v1", tmp_path / "res").runs_of("L")}
    path.write_bytes(path.read_bytes() + b"\0")  # a re-exported policy: other bytes, same place
    after = {r.run_id for r in plan_set(board, "tiny-learned-v1", tmp_path / "res").runs_of("L")}
    assert len(before) == len(after) == len(FAMILY.test) and not before & after
    path.with_suffix(".json").unlink()
    plan = plan_set(board, "tiny-learned-v1", tmp_path / "res")
    assert "provenance" in plan.waiting["L"] and not plan.runs_of("L")


def test_the_training_sentence_names_where_learners_trained_and_never_an_empty_train_split():
    from aees_gym.reporting.leaderboard import _training_sentence

    assert "the 24 train-split runs" in _training_sentence(tuple(range(24)), [])
    assert "drawn afresh" in _training_sentence(None, [])
    transfer = _training_sentence((), ["digits-mlp-v1"])
    assert "0 train-split" not in transfer and "no train split" in transfer
    assert "`digits-mlp-v1`'s train split" in transfer and "(transfer)" in transfer


@pytest.mark.parametrize("track", sorted(TRACKS))
def test_a_missing_policys_command_names_its_track_reward_and_set(track: str, tmp_path: Path):
    from agents.learned import missing_policy_reason

    folder = tmp_path / f"sac-{track}-heldout-digits-mlp-v1-s4"
    reason = missing_policy_reason(folder / "policy.npz")
    assert f"--track {track} --set digits-mlp-v1 --reward heldout --seeds 4 " in reason
    assert f"--archive {tmp_path}" in reason
