"""GPT2-v0 as batched rows: row i reset with seed s is the single env reset with seed s (dropout on).

The corpus is Rotten Tomatoes snippets in the real on-disk format (the bz2 CSV of ``aees-gym data
prepare rotten_tomatoes``); the model a tiny from-scratch GPT-2 with its own trained BPE.
"""

from __future__ import annotations

import bz2

import gymnasium as gym
import numpy as np
import pytest
import torch

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym import make_config
from aees_gym.tasks.batched import BatchedLanguageRuns, batched_runs, batching_problem

SUBJECTS = ("the cat", "a dog", "the old man", "my sister", "the small bird")
VERBS = ("sat on", "looked at", "walked to", "found", "painted")
OBJECTS = ("the mat", "a red house", "the river", "the garden")
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 300, "max_length": 16, "dropout": 0.1, "batch_size": 4,
        "total_steps": 30, "window_length": 10, "val_tokens": 512, "eval_every": 0}
ROWS = [(3, [4, 6, 0]), (7, [6, 2, 8])]  # (seed, action per window) on the default grid


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    rng = np.random.default_rng(0)

    def paragraph():
        return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ." for _ in range(rng.integers(1, 4)))

    root = tmp_path_factory.mktemp("rotten_lm")
    rows = "".join(f'{"fresh" if i % 2 else "rotten"},"{paragraph()}"\n' for i in range(300))
    (root / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(f"category,text\n{rows}".encode()))
    return {**TINY, "data_dir": str(root), "tokenizer_dir": str(root / "tok")}


def test_gpt2_rows_reproduce_the_single_env(overrides, rows_match_single_envs):
    config = make_config("GPT2", **overrides)
    runs = batched_runs(config, len(ROWS))
    assert isinstance(runs, BatchedLanguageRuns)
    singles = rows_match_single_envs("aees_gym/GPT2-v0", overrides, runs, config, ROWS)
    for i, env in enumerate(singles):
        single_params = dict(env.training_run.model.named_parameters())
        for name, value in runs.row_state_dict(i).items():
            torch.testing.assert_close(value, single_params[name].detach(), rtol=1e-3, atol=1e-5)
        want, got_metrics = env.training_run.evaluate(), runs.evaluate([i])[0]
        assert set(got_metrics) == {"val_loss", "val_perplexity", "val_accuracy"} == set(want)
        for key, value in want.items():
            assert got_metrics[key] == pytest.approx(value, rel=1e-4), key


def test_vector_env_gpt2_sub_envs_match_single_envs(overrides, vector_beside_single_envs):
    kwargs = {**overrides, "eval_every": 2, "grid": {"lr_multipliers": [0.5, 1.0], "noise_stds": [0.0, 0.01], "momenta": [0.0, 0.9]}}
    vec, singles = vector_beside_single_envs("aees_gym/GPT2-v0", kwargs, seed=1)
    for actions in ([3, 6], [1, 4]):
        _, rewards, _, _, infos = vec.step(np.array(actions))
        for i, env in enumerate(singles):
            _, reward, _, _, info = env.step(actions[i])
            assert rewards[i] == pytest.approx(reward, rel=1e-4, abs=1e-6)
            assert infos["momentum"][i] == info["momentum"]
            assert "eval" not in info  # GPT2 keeps no reward-validation part: the agent sees no metric mid-run
        assert "eval" not in infos
    for i, env in enumerate(singles):  # the second window evaluated the scoring part (eval_every=2), kept for the final metrics
        want = env.unwrapped._score_curve[-1]
        got = vec.unwrapped._rows[i].eval_curve[-1]
        assert got["step"] == want["step"]
        assert got["val_perplexity"] == pytest.approx(want["val_perplexity"], rel=1e-4)


def test_gpt2_runs_that_stay_single_env_say_why(overrides):
    for extra, match in (({"model_name": "gpt2"}, "async"), ({"reward": {"name": "heldout"}}, "held-out"), ({"label_noise": 0.1}, "labels")):
        config = make_config("GPT2", **{**overrides, **extra})
        problem = batching_problem(config)
        assert problem is not None and match in problem
        with pytest.raises(ValueError, match=match):
            batched_runs(config, 2)


def test_gpt2_vector_env_refuses_validation_features_as_the_single_env(overrides):
    kwargs = {**overrides, "context": {"features": ["progress", "val_loss"]}}
    with pytest.raises(ValueError, match="reward-validation part"):
        gym.make("aees_gym/GPT2-v0", **kwargs).reset(seed=0)
    with pytest.raises(ValueError, match="reward-validation part"):
        gym.make_vec("aees_gym/GPT2-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
