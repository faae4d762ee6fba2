"""GPT2-v0 on data written in the real on-disk formats.

A tiny GPT-2 with a byte-level BPE tokenizer sits in the Hugging Face hub-cache layout
(``hub/models--gpt2/snapshots/<rev>/`` + ``refs/main``) and is loaded *by name* ``gpt2`` offline.
WikiText-2 is written as hub-layout parquet (``wikitext-2-raw-v1/train-00000-of-00001.parquet``) and
with ``save_to_disk``; the Rotten Tomatoes corpus as the bz2 CSV ``aees-gym data prepare`` puts down.
"""

from __future__ import annotations

import bz2
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from hf_cache import save_in_hub_cache

import aees_gym
from aees_gym.envs.registration import env_id
from aees_gym.tasks.language import GPT2Options, bpe_encoder, lm_metrics, load_corpus, train_bpe

SUBJECTS = ("the cat", "a dog", "the old man", "my sister", "the small bird", "a teacher")
VERBS = ("sat on", "looked at", "walked to", "found", "painted", "liked")
OBJECTS = ("the mat", "a red house", "the river", "the garden", "a green door", "the market")
TINY = {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 300, "max_length": 32, "dropout": 0.0}
SMALL = {"batch_size": 4, "total_steps": 90, "window_length": 30, "eval_every": 0}
CHECK = {"batch_size": 4, "total_steps": 20, "window_length": 5}
REVISION = "0123456789abcdef0123456789abcdef01234567"


def sentences(rng: np.random.Generator, n: int) -> list[str]:
    """Paragraph lines of a small grammar: real words in a pattern a tiny model learns in a few windows."""
    return [" ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ." for _ in range(rng.integers(1, 4)))
            for _ in range(n)]


def wikitext_lines(rng: np.random.Generator, n: int) -> list[str]:
    """WikiText's raw line format: ' = Heading = ' lines, blank lines, paragraphs, each ending in a newline."""
    lines: list[str] = []
    for i, para in enumerate(sentences(rng, n)):
        if i % 10 == 0:
            lines += ["", f" = Section {i // 10} = \n", ""]
        lines.append(f" {para} \n")
    return lines


@dataclass(frozen=True)
class Corpus:
    root: Path
    parquet_repo: Path
    disk: Path
    rotten_dir: Path
    train_lines: list[str]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("gpt2_corpus")
    rng = np.random.default_rng(0)
    splits = {"train": wikitext_lines(rng, 300), "validation": wikitext_lines(rng, 40), "test": wikitext_lines(rng, 40)}
    config_dir = root / "wikitext_repo" / "wikitext-2-raw-v1"
    config_dir.mkdir(parents=True)
    for split, lines in splits.items():
        Dataset.from_dict({"text": lines}).to_parquet(str(config_dir / f"{split}-00000-of-00001.parquet"))
    # Another configuration beside it, as in the hub repo; it must not leak into wikitext-2-raw-v1.
    (root / "wikitext_repo" / "wikitext-103-raw-v1").mkdir()
    Dataset.from_dict({"text": ["unrelated text"] * 5}).to_parquet(
        str(root / "wikitext_repo" / "wikitext-103-raw-v1" / "train-00000-of-00001.parquet"))
    DatasetDict({s: Dataset.from_dict({"text": lines}) for s, lines in splits.items()}).save_to_disk(str(root / "disk"))
    rotten = root / "rotten"
    rotten.mkdir()
    rows = "".join(f'{"fresh" if i % 2 else "rotten"},"{s}"\n' for i, s in enumerate(sentences(rng, 400)))
    (rotten / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(f"category,text\n{rows}plot,A plot row.\n".encode()))
    return Corpus(root, root / "wikitext_repo", root / "disk", rotten, splits["train"])


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, corpus) -> Path:
    """HF_HOME holding a tiny ``gpt2`` (1 layer, width 32) and its BPE tokenizer in the hub-cache layout."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = train_bpe([line.strip() for line in corpus.train_lines if line.strip()], 400)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", model_max_length=64)
    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                        eos_token_id=0)
    home = tmp_path_factory.mktemp("hf_home_gpt2")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    save_in_hub_cache(home, "gpt2", REVISION, model, fast)
    return home



def go_offline(monkeypatch, home: Path, datasets_cache: Path) -> None:
    """HF_HOME → ``home``, everything offline (the libraries copy these into constants at import, so set both)."""
    import datasets.config
    import huggingface_hub.constants as hub

    for name, value in (("HF_HOME", str(home)), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    for module, name, value in (
        (hub, "HF_HOME", str(home)), (hub, "HF_HUB_CACHE", str(home / "hub")), (hub, "HF_HUB_OFFLINE", True),
        (datasets.config, "HF_HUB_OFFLINE", True), (datasets.config, "HF_DATASETS_OFFLINE", True),
        (datasets.config, "HF_DATASETS_CACHE", datasets_cache),
    ):
        monkeypatch.setattr(module, name, value)


@pytest.fixture(autouse=True)
def hf_offline(monkeypatch, hf_home, tmp_path):
    go_offline(monkeypatch, hf_home, tmp_path / "datasets_cache")


def wikitext(corpus: Corpus, tmp_path: Path, **extra) -> dict:
    return {"dataset": "wikitext-2-raw-v1", "dataset_path": str(corpus.parquet_repo), "tokenizer_dir": str(tmp_path), **TINY, **extra}


def windows(env, n: int, seed: int = 0) -> list[tuple[float, float, float]]:
    env.reset(seed=seed)
    trace = []
    for _ in range(n):
        obs, reward, _, _, info = env.step(env.unwrapped.grid.nearest(1.0, 0.0))
        assert env.observation_space.contains(obs) and math.isfinite(info["loss_first"]) and math.isfinite(info["loss_last"])
        trace.append((reward, info["loss_first"], info["loss_last"]))
    return trace


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("variant", ["scratch-parquet", "pretrained-save_to_disk"])
def test_perplexity_drops_over_three_windows(variant, corpus, tmp_path):
    if variant == "scratch-parquet":
        options, lr = wikitext(corpus, tmp_path), 0.3
    else:
        options, lr = {"dataset": "wikitext-2-raw-v1", "dataset_path": str(corpus.disk), "model_name": "gpt2", "max_length": 32}, 0.3
    env = gym.make("aees_gym/GPT2-v0", **SMALL, base_lr=lr, **options)
    env.reset(seed=0)
    run = env.unwrapped.training_run
    before = run.evaluate()
    assert math.isfinite(before["val_loss"]) and before["val_perplexity"] == pytest.approx(math.exp(before["val_loss"]))
    for _ in range(2):
        env.step(env.unwrapped.grid.nearest(1.0, 0.0))
    *_, terminated, _, info = env.step(env.unwrapped.grid.nearest(1.0, 0.0))
    final = info["final_metrics"]
    assert terminated and final["val_perplexity"] == pytest.approx(math.exp(final["val_loss"]))
    assert final["val_perplexity"] < 0.7 * before["val_perplexity"] and final["val_accuracy"] > before["val_accuracy"]
    assert run.description["seq_len"] == 32 and run.flops_per_step > 0
    if variant == "pretrained-save_to_disk":
        assert run.description["model_source"] == "gpt2" and run.description["n_params"] == sum(
            p.numel() for p in type(run.model).from_pretrained("gpt2", local_files_only=True).parameters())
    else:
        assert run.description["vocab_size"] == 300 and run.description["model_source"] is None


def test_same_seed_same_trajectory_with_dropout(corpus, tmp_path):
    options = wikitext(corpus, tmp_path, dropout=0.1)
    small = {**SMALL, "total_steps": 40, "window_length": 20, "base_lr": 0.1}
    first = windows(gym.make("aees_gym/GPT2-v0", **small, **options), 2, seed=3)
    assert windows(gym.make("aees_gym/GPT2-v0", **small, **options), 2, seed=3) == first
    assert windows(gym.make("aees_gym/GPT2-v0", **small, **options), 2, seed=4) != first


def test_env_checkers_pass(corpus, tmp_path):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    options = wikitext(corpus, tmp_path)
    gym_check_env(gym.make("aees_gym/GPT2-v0", **CHECK, **options).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make("aees_gym/GPT2-v0", **CHECK, **options).unwrapped, warn=False)


def test_default_corpus_is_the_prepared_rotten_tomatoes_file(corpus, tmp_path):
    spec = aees_gym.get_task("GPT2")
    env = gym.make(env_id(spec.name), **{**spec.smoke_overrides, **TINY, "train_tokens": 2000, "val_tokens": 300},
                   data_dir=str(corpus.rotten_dir))
    assert len(windows(env, 2)) == 2
    run = env.unwrapped.training_run
    assert run.description["train_tokens"] == 2000 and run.description["val_tokens"] == 300  # packed: budgets are exact
    assert run.description["n_train"] == math.ceil(2000 / 32)
    cached = list((corpus.rotten_dir / "gpt2_tokenizers").glob("rotten_tomatoes-bpe300-*.json"))
    assert len(cached) == 1  # trained once on the training split, cached under the data dir
    train, val = load_corpus(GPT2Options(data_dir=str(corpus.rotten_dir)))
    assert (len(train), len(val)) == (360, 40) and "A plot row." not in train + val


# ---------------------------------------------------------------------------- tokens and metrics
def test_wikitext_lines_are_read_without_blanks_or_other_configurations(corpus):
    train, val = load_corpus(GPT2Options(dataset="wikitext-2-raw-v1", dataset_path=str(corpus.parquet_repo)))
    expected = [line.strip() for line in corpus.train_lines if line.strip()]
    assert train == expected and "unrelated text" not in train and len(val) == 44
    assert load_corpus(GPT2Options(dataset="wikitext-2-raw-v1", dataset_path=str(corpus.disk))) == (train, val)


def test_bpe_is_deterministic_and_reloads_from_its_cache(corpus, tmp_path):
    texts = [line.strip() for line in corpus.train_lines if line.strip()]
    assert train_bpe(texts, 300).to_str() == train_bpe(texts, 300).to_str()
    opts = GPT2Options(vocab_size=300, tokenizer_dir=str(tmp_path))
    fresh = bpe_encoder(texts, opts)
    (path,) = tmp_path.glob("*.json")
    cached = bpe_encoder(texts, opts)
    assert path.exists() and cached.encode(texts[:20]) == fresh.encode(texts[:20]) and fresh.eos_id == 0
    assert bpe_encoder(texts[:-1], opts).name != fresh.name  # other texts, other cache file


def test_padding_is_masked_out_of_loss_and_accuracy(corpus, tmp_path):
    env = gym.make("aees_gym/GPT2-v0", **SMALL, **wikitext(corpus, tmp_path, pack=False, val_tokens=None))
    env.reset(seed=0)
    run = env.unwrapped.training_run
    from aees_gym.tasks.language import load_token_tables

    tables = load_token_tables(env.unwrapped.config.options)
    lengths = tables.val_lengths
    assert int(lengths.min()) < tables.val_ids.shape[1]  # rows really are padded
    width = tables.val_ids.shape[1]
    short = [i for i, n in enumerate(lengths.tolist()) if n < width]  # longer texts are truncated, EOS and all
    assert short and all(int(tables.val_ids[i, lengths[i] - 1]) == tables.eos_id for i in short)  # text + EOS
    padded = lm_metrics(run.model, tables.val_ids, lengths, batch=64)
    totals = [0.0, 0.0, 0]
    for ids, n in zip(tables.val_ids, lengths.tolist(), strict=True):  # each row alone, unpadded
        alone = lm_metrics(run.model, ids[None, :n], torch.tensor([n]), batch=1)
        totals[0] += alone["val_loss"] * (n - 1)
        totals[1] += alone["val_accuracy"] * (n - 1)
        totals[2] += n - 1
    assert padded["val_loss"] == pytest.approx(totals[0] / totals[2], rel=1e-5)
    assert padded["val_accuracy"] == pytest.approx(totals[1] / totals[2], rel=1e-6)


def test_task_declares_perplexity_as_its_lower_is_better_metric():
    spec = aees_gym.get_task("GPT2")
    assert (spec.metric, spec.higher_is_better, env_id(spec.name)) == ("val_perplexity", False, "aees_gym/GPT2-v0")
    assert (aees_gym.get_task("Digits").metric, aees_gym.get_task("Digits").higher_is_better) == ("val_accuracy", True)
    c = spec.default_config()  # the theory's demo: batch 2, max length 64, SGD momentum 0.9
    assert (c.batch_size, c.optimizer, c.momentum, c.options.max_length, c.options.model_name) == (2, "sgd", 0.9, 64, None)


# ---------------------------------------------------------------------------- bad input
def test_missing_rotten_tomatoes_names_the_folder_and_the_prepare_command(tmp_path):
    env = gym.make("aees_gym/GPT2-v0", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        env.reset(seed=0)
    assert str(tmp_path) in str(err.value) and f"aees-gym data prepare rotten_tomatoes --data-dir {tmp_path}" in str(err.value)


@pytest.mark.parametrize("layout", ["absent", "empty"])
def test_missing_wikitext_names_the_folder_and_the_files(layout, tmp_path):
    if layout == "empty":
        (tmp_path / "wikitext-2-raw-v1").mkdir()
    env = gym.make("aees_gym/GPT2-v0", data_dir=str(tmp_path), dataset="wikitext-2-raw-v1")
    with pytest.raises(FileNotFoundError) as err:
        env.reset(seed=0)
    message = str(err.value)
    assert str(tmp_path / "wikitext-2-raw-v1") in message and "train-00000-of-00001.parquet" in message
    assert "validation-00000-of-00001.parquet" in message and "aees-gym data prepare wikitext-2-raw-v1" in message


def test_missing_gpt2_weights_name_the_cache_folder_and_the_fix(monkeypatch, corpus, tmp_path):
    empty = tmp_path / "empty_home"
    go_offline(monkeypatch, empty, tmp_path / "datasets_cache")
    env = gym.make("aees_gym/GPT2-v0", **SMALL, dataset="wikitext-2-raw-v1", dataset_path=str(corpus.disk), model_name="gpt2",
                   max_length=30)
    with pytest.raises(OSError) as err:
        env.reset(seed=0)
    message = str(err.value)
    assert str(empty / "hub" / "models--gpt2") in message and "hf download gpt2" in message
    assert "local_files_only=False" in message


@pytest.mark.parametrize("module,extra", [("tokenizers", "text"), ("transformers", "text"), ("datasets", "data")])
def test_missing_optional_package_names_the_extra(module, extra, monkeypatch, corpus, tmp_path):
    # max_length 29: options no other test uses, so the per-process token cache spares no loader. The
    # save_to_disk copy: parquet loading hashes with dill, which imports transformers if sys.modules names it.
    env = gym.make("aees_gym/GPT2-v0", **SMALL, **wikitext(corpus, tmp_path, max_length=29, dataset_path=str(corpus.disk)))
    monkeypatch.setitem(sys.modules, module, None)  # how an absent package looks to `import`
    with pytest.raises(ImportError, match=rf"pip install 'aees-gym\[{extra}\]'"):
        env.reset(seed=0)


def test_bad_options_name_the_valid_range():
    with pytest.raises(ValueError, match="choose one of"):
        GPT2Options(dataset="wikitext-103")
    with pytest.raises(ValueError, match="divisible"):
        GPT2Options(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="train_tokens must be"):
        GPT2Options(train_tokens=1)
