"""The leaderboard over an instance family: tuned references chosen on the tuning split, then scored on test."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from aees_gym.envs.families import InstanceFamily, architecture_menu, register_family
from aees_gym.suite import SuiteConfigError
from aees_gym.suite.leaderboard import parse_leaderboard, plan_set
from aees_gym.suite.leaderboard_tuning import parse_board_tuning
from experiments.leaderboard import main

FAMILY = register_family(InstanceFamily(
    "tiny-board-v1", "tests only", "MLP",
    architecture_menu(dataset=[{"dataset": "synthetic", "separation": 1.0}], width=[8], depth=[1], batch_size=[16], optimizer=["adamw", "sgd"]),
    windows=(2, 3), window_length=5, n_tuning=4, n_test=3, seed=9,
), overwrite=True)

BOARD = """\
executor = "batched"
n_boot = 200
results_dir = "runs"
reference = "tuned constant"
[[sets]]
name = "tiny-board-v1"
[[agents]]
name = "random"
[[agents]]
name = "fixed"
label = "tuned constant"
tuning = { lr_factors = [0.3, 3], by = "optimizer" }
[[agents]]
name = "ducb"
label = "ducb (tuned c)"
tuning = { agent_grid = { c = [0.1, 1.0] } }
[[agents]]
name = "sb3"
label = "PPO (later)"
kwargs = { algo = "ppo" }
training = { total_timesteps = 64, seed = 7, n_envs = 4, vec_env = "batched" }
"""


def test_tuned_references_are_chosen_on_the_tuning_split_then_scored_on_every_test_instance(tmp_path: Path):
    board = tmp_path / "board.toml"
    board.write_text(BOARD)
    res, out, archive = tmp_path / "res", tmp_path / "board.md", tmp_path / "archive"
    before = plan_set(parse_leaderboard(__import__("tomllib").loads(BOARD)), "tiny-board-v1", res)
    assert set(before.untuned()) == {"tuned constant", "ducb (tuned c)"} and not before.runs_of("tuned constant")
    assert main([str(board), "--results-dir", str(res), "--out", str(out), "--no-learners", "--export", str(archive)]) == 0
    record = json.loads((res / "leaderboard" / "tiny-board-v1" / "tuning" / "tuned_constant.json").read_text())
    assert set(record["choices"]) == {"optimizer=adamw", "optimizer=sgd"}
    assert record["budget"]["runs"] == 2 * len(FAMILY.tuning)  # 2 points × each group's tuning instances
    after = plan_set(parse_leaderboard(__import__("tomllib").loads(BOARD)), "tiny-board-v1", res)
    assert not after.untuned()
    tuned = after.runs_of("tuned constant")
    assert [r.task_label for r in tuned] == [i.name for i in FAMILY.test]
    for run in tuned:  # every test run of one optimizer gets that optimizer's chosen LR, whatever its own base LR
        chosen = record["choices"][f"optimizer={run.env_overrides['optimizer']}"]["point"]["env"]["base_lr"]
        assert run.env_overrides["base_lr"] == chosen
    assert {r.agent_kwargs["c"] for r in after.runs_of("ducb (tuned c)")} <= {0.1, 1.0}
    tuning_names = {i.name for i in FAMILY.tuning}
    assert not tuning_names & {r.task_label for r in after.plan.runs}  # tuning instances never score
    table = out.read_text()
    assert "Discriminative power of the fixed cells" in table and "Test split: 3 runs" in table
    assert "## `tiny-board-v1` — test split (3 runs = 3 sampled configurations, bootstrap over instances)" in table
    assert "every test instance is its own sampled configuration" in table  # the page says how a family's runs group
    assert "| PPO (later) |" in table and "pending: trained 0 of 64 windows" in table
    rows = [json.loads(line) for line in gzip.decompress((archive / "runs.jsonl.gz").read_bytes()).decode().splitlines()]
    assert len(rows) == len(after.plan.runs) - len(after.runs_of("PPO (later)")) and (archive / "tuning" / "tiny-board-v1" / "tuned_constant.json").is_file()
    assert (archive / "leaderboard.md").read_text() == table


def test_bad_tuning_tables_and_sets_without_a_tuning_split_are_refused():
    with pytest.raises(SuiteConfigError, match="unknown key"):
        parse_board_tuning("t", {"lr_factor": [1]})
    with pytest.raises(SuiteConfigError, match="positive numbers"):
        parse_board_tuning("t", {"lr_factors": []})
    with pytest.raises(SuiteConfigError, match="nothing to tune"):
        parse_board_tuning("t", {})
    spec = parse_leaderboard({"sets": [{"name": "synthetic-mix-v0"}],
                              "agents": [{"name": "random"}, {"name": "fixed", "label": "tuned", "tuning": {"lr_factors": [1.0]}}]})
    with pytest.raises(SuiteConfigError, match="has no tuning split"):
        plan_set(spec, "synthetic-mix-v0", Path("unused"))
    with pytest.raises(SuiteConfigError, match="registered families"):
        parse_leaderboard({"sets": [{"name": "no-such-family-v1"}], "agents": [{"name": "random"}]})


def test_a_point_that_diverges_on_some_instances_can_lose_but_never_vetoes_the_choice(tmp_path: Path):
    board = tmp_path / "board.toml"
    board.write_text(BOARD.replace("lr_factors = [0.3, 3]", "lr_factors = [1, 100000]").replace('label = "ducb (tuned c)"', 'label = "ducb (c grid)"'))
    res = tmp_path / "res"
    assert main([str(board), "--results-dir", str(res), "--out", str(tmp_path / "b.md"), "--no-learners"]) == 0
    record = json.loads((res / "leaderboard" / "tiny-board-v1" / "tuning" / "tuned_constant.json").read_text())
    for group, choice in record["choices"].items():
        huge = next(row for row in choice["table"] if row["point"]["env"]["base_lr"] > 1)
        assert huge["mean"] is not None  # its diverged runs count as their instance's worst value ...
        assert choice["point"]["env"]["base_lr"] < 1, group  # ... so the sane LR wins instead of no choice at all
    assert "diverged run counts" in record["rule"]


def test_an_agent_env_may_replace_a_family_instance_optimizer_but_a_bad_one_is_refused_at_load():
    def board(optimizer: object) -> dict:
        return {"sets": [{"name": "tiny-board-v1"}],
                "agents": [{"name": "random"}, {"name": "fixed", "label": "own step", "env": {"optimizer": optimizer, "base_lr": 1.0}}]}

    spec = parse_leaderboard(board("prodigy"), "<b>")
    runs = plan_set(spec, "tiny-board-v1", Path("unused")).runs_of("own step")
    assert [(r.env_overrides["optimizer"], r.env_overrides["base_lr"]) for r in runs] == [("prodigy", 1.0)] * len(FAMILY.test)
    with pytest.raises(SuiteConfigError, match=r"agents\[1\]\.env \(own step\) on set 'tiny-board-v1' \(MLP\): .*no-such-opt"):
        parse_leaderboard(board("no-such-opt"), "<b>")
    with pytest.raises(SuiteConfigError, match=r"sets\[0\]\.env .*cannot be overridden"):  # a set's env may not redefine its instances
        parse_leaderboard({**board("prodigy"), "sets": [{"name": "tiny-board-v1", "env": {"base_lr": 0.1}}]}, "<b>")
