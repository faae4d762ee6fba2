"""The learned-controller training driver: specs, preflight, a tiny real training, sweeps and archiving."""

from __future__ import annotations

import json

import numpy as np
import pytest

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym.envs.tracks import make_track_env
from agents.learned import LearnedAgent
from agents.learned_sweep import archive, sample_configs, sweep
from agents.learned_training import TrainingSpec, preflight, train, validation_set

TINY = {"instance_set": "synthetic-mix-v0", "windows": 64, "n_envs": 8, "curve_every": 16, "validate_every": 32,
        "algo_kwargs": {"n_steps": 8, "batch_size": 32}, "policy_kwargs": {"net_arch": {"pi": [16], "vf": [16]}}}


def test_spec_round_trips_through_json_and_checks_its_fields():
    spec = TrainingSpec(algo="sac", track="continuous", seed=3, algo_kwargs={"tau": 0.02})
    assert TrainingSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.hyperparameters()["algo_kwargs"]["tau"] == 0.02
    with pytest.raises(ValueError, match="needs the 'relative' track"):
        TrainingSpec(algo="dqn", track="continuous")
    with pytest.raises(ValueError, match="windows must be a positive integer"):
        TrainingSpec(windows=0)
    with pytest.raises(KeyError, match="unknown TrainingSpec keys"):
        TrainingSpec.from_json({"algorithm": "ppo"})


def test_preflight_names_every_problem_before_anything_runs():
    with pytest.raises(RuntimeError, match="no-such-set"):
        preflight(TrainingSpec(instance_set="no-such-set"))
    with pytest.raises(RuntimeError, match="reward 'bogus' is not registered"):
        preflight(TrainingSpec(reward="bogus"))
    preflight(TrainingSpec())  # the default training can start here


def test_validation_instances_are_training_configurations_with_unseen_seeds():
    from aees_gym.envs.instances import get_instance_set

    parent = get_instance_set("synthetic-mix-v0")
    members = get_instance_set(validation_set("synthetic-mix-v0", (500, 501))).split("train")
    assert {m.configuration for m in members} == {i.configuration for i in parent.split("train")}
    assert {m.seed for m in members} == {500, 501} and len(members) == 2 * len(parent.split("train"))
    with pytest.raises(ValueError, match="used by"):
        validation_set("synthetic-mix-v0", (0,))


@pytest.mark.slow
def test_a_tiny_real_training_writes_curves_and_a_policy_the_agent_ships(tmp_path):
    spec = TrainingSpec(**TINY)
    summary = train(spec, tmp_path)
    folder = tmp_path / spec.name
    assert summary["windows_trained"] == 64 and 0.0 <= summary["validation"]["score"] <= 1.0
    curve = json.loads((folder / "curve.json").read_text())
    assert [p["windows"] for p in curve["reward_curve"]] == [16, 32, 48, 64]
    assert [p["windows"] for p in curve["validation_curve"]] == [32, 64]
    assert not (folder / "checkpoint.zip").exists()  # removed once the training finished
    assert train(spec, tmp_path) == summary  # a finished training is read back, not trained again
    agent = LearnedAgent(policy=folder / "policy.npz")
    assert agent.provenance["training_seed"] == 0 and agent.provenance["windows_trained"] == 64
    env = make_track_env("Synthetic-v0", "relative", total_steps=40, window_length=20, n_train=256, n_val=128)
    obs, info = env.reset(seed=0)
    agent.reset(seed=0, observation_space=env.observation_space, action_space=env.action_space, info=info)
    assert 0 <= agent.act(obs, info) < env.action_space.n
    copied = archive(folder, tmp_path / "results")
    assert sorted(p.name for p in copied.iterdir()) == ["curve.json", "policy.json", "policy.npz", "spec.json", "summary.json"]
    # Exported with a guard: the sidecar records it and its validation, and the agent runs with it unless told not to.
    from experiments.train_learned import main

    shipped = main(["export", str(folder), str(tmp_path / "shipped.npz"), "--guard", "0"])
    guarded = LearnedAgent(policy=shipped)
    assert guarded.guard == 0.0 and guarded.provenance["validation_guarded"]["runs"] == summary["validation"]["runs"]
    assert LearnedAgent(policy=shipped, guard=None).guard is None and agent.guard is None
    assert LearnedAgent.run_record(shipped)["guard"] == 0.0 and "guard" not in LearnedAgent.run_record(shipped, guard=None)


def test_sweep_configurations_are_the_defaults_then_distinct_seeded_draws():
    configs = sample_configs("dqn", 8, seed=0)
    assert configs[0] == {} and len({json.dumps(c, sort_keys=True) for c in configs}) == 8
    assert configs == sample_configs("dqn", 8, seed=0) and configs != sample_configs("dqn", 8, seed=1)
    with pytest.raises(ValueError, match="configurations"):
        sample_configs("ppo", 0, seed=0)


@pytest.mark.slow
def test_a_tiny_sweep_ranks_its_configurations_on_validation_scores(tmp_path):
    result = sweep(TrainingSpec(**TINY), n_configs=2, windows=32, out_dir=tmp_path)
    scores = [r["validation"]["score"] for r in result["rows"]]
    assert result["budget"]["windows_total"] == 64 and result["best"]["validation"]["score"] == max(scores)
    assert all(np.isfinite(scores))


def test_a_family_trains_through_the_batched_sb3_env_and_validates_on_its_tuning_split():
    from aees_gym.envs.families import get_family
    from agents.learned_training import training_env_kwargs, validation_groups
    from agents.sb3.vec import BatchedVecEnv

    spec = TrainingSpec(algo="dqn", instance_set="digits-mlp-v1", n_envs=16)
    groups = validation_groups(spec)
    assert sorted(i.name for _, split, members in groups for i in members) == sorted(i.name for i in get_family("digits-mlp-v1").tuning)
    assert {split for _, split, _ in groups} == {"tuning"}
    venv = BatchedVecEnv("MLP", 16, training_env_kwargs(spec))
    venv.seed(0)
    obs = venv.reset()
    obs, rewards, dones, infos = venv.step(np.full(16, 2))
    assert obs.shape == (16, 9) and len(venv.parts) == len(get_family("digits-mlp-v1").architectures)
    assert all(info["action_mode"] == "relative" for info in infos)
    venv.close()


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_checkpoint_and_its_curves_continue(tmp_path, monkeypatch):
    import agents.learned_training as learned_training
    from agents.sb3 import checkpoint as sb3_checkpoint

    monkeypatch.setattr(sb3_checkpoint, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint at every rollout start (0 and 64)
    spec = TrainingSpec(**{**TINY, "windows": 128})
    real, calls = learned_training.validate, []

    def killed_at_the_third(policy, s):
        calls.append(1)
        if len(calls) == 3:  # window 96: the process dies between two checkpoints
            raise KeyboardInterrupt
        return real(policy, s)

    monkeypatch.setattr(learned_training, "validate", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        train(spec, tmp_path)
    folder = tmp_path / spec.name
    assert (folder / "checkpoint.zip").is_file() and not (folder / "summary.json").exists()
    assert json.loads((folder / "curve.json").read_text())["reward_curve"][-1]["windows"] == 96
    monkeypatch.setattr(learned_training, "validate", real)
    summary = train(spec, tmp_path)
    assert summary["resumed_at"] == 64 and summary["windows_trained"] == 128
    curve = json.loads((folder / "curve.json").read_text())
    assert [p["windows"] for p in curve["reward_curve"]] == [16, 32, 48, 64, 80, 96, 112, 128]  # no point twice
    assert [p["windows"] for p in curve["validation_curve"]] == [32, 64, 96, 128]
