"""The text tasks' LSTM as batched rows: row i reset with seed s is the single env reset with seed s.

The data is a Rotten Tomatoes corpus written in the real on-disk format (the bz2 CSV that
``aees-gym data prepare rotten_tomatoes`` puts down), with a tiny vocabulary and LSTM.
"""

from __future__ import annotations

import bz2

import numpy as np
import pytest
import torch

import aees_gym  # noqa: F401  (registers the ids)
from aees_gym import make_config
from aees_gym.tasks.batched import BatchedClassificationRuns, batchable_tasks, batching_problem
from aees_gym.tasks.batched.text_nets import lstm_layer

WORDS = ("good", "bad", "great", "awful", "film", "plot", "the", "a", "fun", "dull", "moving", "boring", "cast", "score")
TINY = {"embed_dim": 8, "hidden": 8, "vocab_size": 40, "min_freq": 1, "max_length": 12, "batch_size": 8,
        "total_steps": 30, "window_length": 10}
# Per row: (seed, actions per window); the default grid's action = lr_idx * 3 + noise_idx.
ROWS = [(3, [4, 6, 0]), (7, [6, 2, 8])]


@pytest.fixture(scope="module")
def rotten_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = "".join(f'{"fresh" if i % 2 else "rotten"},"{" ".join(rng.choice(WORDS, rng.integers(1, 14)))}"\n' for i in range(240))
    root = tmp_path_factory.mktemp("rotten")
    (root / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(f"category,text\n{rows}plot,A plot row.\n".encode()))
    return root


@pytest.mark.parametrize("extra", [{"dropout": 0.3}, {"layers": 2, "label_noise": 0.2}], ids=["dropout", "two-layers-noisy"])
def test_lstm_rows_reproduce_the_single_env(rotten_dir, extra, rows_match_single_envs):
    overrides = {**TINY, "data_dir": str(rotten_dir), **extra}
    config = make_config("RottenTomatoes", **overrides)
    runs = BatchedClassificationRuns(config, len(ROWS))
    singles = rows_match_single_envs("aees_gym/RottenTomatoes-v0", overrides, runs, config, ROWS)
    for i, env in enumerate(singles):
        single_params = dict(env.training_run.model.named_parameters())
        for name, value in runs.row_state_dict(i).items():
            key = next(k for k in single_params if k.endswith(name))
            torch.testing.assert_close(value, single_params[key].detach(), rtol=1e-3, atol=1e-5)
        want, got_metrics = env.training_run.evaluate(), runs.evaluate([i])[0]
        assert set(got_metrics) == set(want)
        for key, value in want.items():
            assert got_metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key


def test_lstm_layer_backward_is_the_exact_gradient():
    gen = torch.Generator().manual_seed(0)
    n, b, t, i, h = 2, 3, 4, 3, 2
    inputs = [torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
              for shape in ((n, b, t, i), (n, 4 * h, i), (n, 4 * h, h), (n, 4 * h), (n, 4 * h))]
    assert torch.autograd.gradcheck(lstm_layer, inputs)
    lstm = torch.nn.LSTM(i, h, batch_first=True).double()  # and the forward is nn.LSTM's, row by row
    for row in range(n):
        with torch.no_grad():
            for p, value in zip(lstm.parameters(), (inputs[1][row], inputs[2][row], inputs[3][row], inputs[4][row]), strict=True):
                p.copy_(value)
        torch.testing.assert_close(lstm_layer(*inputs)[row], lstm(inputs[0][row])[0])


def test_vector_env_sub_envs_match_single_envs(rotten_dir, vector_beside_single_envs):
    overrides = {**TINY, "data_dir": str(rotten_dir), "dropout": 0.2}
    vec, singles = vector_beside_single_envs("aees_gym/RottenTomatoes-v0", overrides, seed=5)
    for actions in ([4, 7], [1, 5]):
        _, rewards, _, _, _ = vec.step(np.array(actions))
        for i, env in enumerate(singles):
            assert rewards[i] == pytest.approx(env.step(actions[i])[1], rel=1e-4, abs=1e-6)


def test_text_rows_that_stay_single_env_name_async(rotten_dir):
    assert {"RottenTomatoes", "NewsTweets", "IMDB", "SST2", "AGNews"} <= set(batchable_tasks())
    minilm = make_config("RottenTomatoes", model="minilm", data_dir=str(rotten_dir))
    dropout_between_layers = make_config("RottenTomatoes", layers=2, dropout=0.1, data_dir=str(rotten_dir))
    for config in (minilm, dropout_between_layers):
        problem = batching_problem(config)
        assert problem is not None and 'vectorization_mode="async"' in problem
        with pytest.raises(ValueError, match="async"):
            BatchedClassificationRuns(config, 2)
