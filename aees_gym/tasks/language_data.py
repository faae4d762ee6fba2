"""GPT-2 data: the raw corpora, the tokenizers (a cached byte-level BPE or the pretrained one) and the
EOS-padded token tables a ``GPT2-v0`` run trains on.

Texts become token sequences of at most ``max_length``: every text plus an EOS token is concatenated
and cut into full blocks (``pack=True``), or one text per row (``pack=False``). The task, model and
metrics are in :mod:`aees_gym.tasks.language`, which re-exports these names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aees_gym.core.fileio import atomic_write_bytes
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.prepare import prepare_command
from aees_gym.tasks.text_data import SOURCES, _load_local, missing_data_error, pad_ids, split_indices
from aees_gym.tasks.text_models import TEXT_EXTRA, _transformers

if TYPE_CHECKING:
    from aees_gym.tasks.language import GPT2Options

WIKITEXT = "wikitext-2-raw-v1"
WIKITEXT_HUB = "Salesforce/wikitext"
CORPORA = ("rotten_tomatoes", "news_tweets", WIKITEXT)
EOS_TOKEN = "<|endoftext|>"
_ENCODE_CHUNK = 2000  # texts per tokenizer call while filling a token budget


@dataclass(frozen=True)
class Encoder:
    """Texts → token ids, with the EOS id (also the padding id) and the vocabulary size."""

    encode: Callable[[list[str]], list[list[int]]]
    eos_id: int
    vocab_size: int
    name: str


@dataclass(frozen=True)
class TokenTables:
    """EOS-padded ``(N, L)`` ids and ``(N,)`` lengths of the training and validation sequences."""

    train_ids: torch.Tensor
    train_lengths: torch.Tensor
    val_ids: torch.Tensor
    val_lengths: torch.Tensor
    eos_id: int
    vocab_size: int
    tokenizer: str


# ---------------------------------------------------------------------------- raw text
def _wikitext_error(where: Path, data_dir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"WikiText-2 ({WIKITEXT}) is not in {where.resolve()}. Put its files there: 'train-00000-of-00001.parquet' and "
        f"'validation-00000-of-00001.parquet' (folder {WIKITEXT}/ of the hub data set {WIKITEXT_HUB}), or a DatasetDict "
        f"written with save_to_disk; or pass dataset_path=<that folder>. With internet, "
        f"`{prepare_command(WIKITEXT, data_dir.resolve())}` fetches it."
    )


def _corpus_path(opts: GPT2Options) -> Path:
    data_dir = Path(opts.data_dir).expanduser()
    if opts.dataset != WIKITEXT:
        return Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / SOURCES[opts.dataset].file_name
    path = Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / WIKITEXT
    return path / WIKITEXT if (path / WIKITEXT).is_dir() else path  # a copy of the whole hub repo: this configuration


def check_corpus(config: EnvConfig) -> None:
    """Raise the loader's ``FileNotFoundError`` if the corpus a run reads is not on disk (nothing is read)."""
    opts: GPT2Options = config.options
    path, data_dir = _corpus_path(opts), Path(opts.data_dir).expanduser()
    if not path.exists():
        raise missing_data_error(SOURCES[opts.dataset].name, path, data_dir) if opts.dataset != WIKITEXT else _wikitext_error(path, data_dir)


def load_corpus(opts: GPT2Options) -> tuple[list[str], list[str]]:
    """The raw training and validation texts of ``opts.dataset`` (empty lines dropped)."""
    data_dir = Path(opts.data_dir).expanduser()
    if opts.dataset != WIKITEXT:
        source = SOURCES[opts.dataset]
        assert source.reader is not None
        path = Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / source.file_name
        if not path.exists():
            raise missing_data_error(source.name, path, data_dir)
        texts, _ = source.reader(path)
        train_idx, val_idx = split_indices(len(texts), opts.val_fraction, opts.split_seed)
        train, val = [texts[i] for i in train_idx], [texts[i] for i in val_idx]
    else:
        path = Path(opts.dataset_path).expanduser() if opts.dataset_path else data_dir / WIKITEXT
        if (path / WIKITEXT).is_dir():  # a copy of the whole hub repo: read only this configuration
            path = path / WIKITEXT
        if not path.exists():
            raise _wikitext_error(path, data_dir)
        try:
            tables = _load_local(path, ["train", "validation"], opts.cache_dir)
        except FileNotFoundError as exc:
            raise _wikitext_error(path, data_dir) from exc
        train, val = ([str(t) for t in tables[s]["text"] if t is not None] for s in ("train", "validation"))
    return [t.strip() for t in train if t.strip()], [t.strip() for t in val if t.strip()]


# ---------------------------------------------------------------------------- tokenizers
def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError(f"The GPT-2 task's BPE tokenizer needs `tokenizers`; {TEXT_EXTRA}.") from exc
    return tokenizers


def train_bpe(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE (GPT-2's pre-tokenization, EOS ``<|endoftext|>`` = id 0) trained on ``texts``."""
    tk = _tokenizers()
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def bpe_path(texts: list[str], opts: GPT2Options) -> Path:
    """Cache file of the BPE trained on ``texts``: keyed by the vocabulary size and a hash of the texts."""
    digest = hashlib.sha256(str(opts.vocab_size).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    folder = Path(opts.tokenizer_dir).expanduser() if opts.tokenizer_dir else Path(opts.data_dir).expanduser() / "gpt2_tokenizers"
    return folder / f"{opts.dataset}-bpe{opts.vocab_size}-{digest.hexdigest()[:16]}.json"


def bpe_encoder(train_texts: list[str], opts: GPT2Options) -> Encoder:
    """The cached BPE of this training split, trained and cached (atomically) on first use."""
    path = bpe_path(train_texts, opts)
    if path.exists():
        tok = _tokenizers().Tokenizer.from_file(str(path))  # a JSON vocabulary and merge list; nothing executes
    else:
        tok = train_bpe(train_texts, opts.vocab_size)
        try:
            atomic_write_bytes(path, tok.to_str().encode("utf-8"))
        except OSError:  # a read-only data dir only costs retraining next time (same texts → same tokenizer)
            pass
    return Encoder(lambda texts: [e.ids for e in tok.encode_batch(texts)], tok.token_to_id(EOS_TOKEN), tok.get_vocab_size(),
                   f"bpe{opts.vocab_size}:{path.name}")


def _from_pretrained(loader: Any, opts: GPT2Options) -> Any:
    name = str(opts.model_name)
    try:
        return loader.from_pretrained(name, cache_dir=opts.cache_dir, local_files_only=opts.local_files_only)
    except (OSError, ValueError) as exc:
        if Path(name).expanduser().is_dir():
            where = f"the folder {Path(name).expanduser().resolve()}"
        else:
            import huggingface_hub.constants as hub  # read at call time: HF_HOME may change while running

            where = f"{Path(opts.cache_dir or hub.HF_HUB_CACHE).expanduser().resolve() / ('models--' + name.replace('/', '--'))}"
        raise OSError(
            f"GPT-2 weights or tokenizer {name!r} not found in {where} (local_files_only={opts.local_files_only}). Fix: "
            f"on a machine with internet run `hf download {name}` (or `huggingface-cli download {name}`) and copy that "
            f"folder into this machine's Hugging Face cache (HF_HOME, or cache_dir=...); or pass model_name=<folder with "
            f"config.json, model.safetensors and the tokenizer files>; or set local_files_only=False to download. "
            f"Cause: {exc}"
        ) from exc


def pretrained_encoder(opts: GPT2Options) -> Encoder:
    tokenizer = _from_pretrained(_transformers().AutoTokenizer, opts)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer of {opts.model_name!r} has no EOS token; a GPT-2 tokenizer is expected.")

    def encode(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    return Encoder(encode, int(tokenizer.eos_token_id), len(tokenizer), str(opts.model_name))


# ---------------------------------------------------------------------------- token tables
def to_sequences(texts: list[str], encoder: Encoder, max_length: int, pack: bool, budget: int | None) -> list[list[int]]:
    """Sequences of at most ``max_length`` tokens holding the first ``budget`` tokens of ``texts`` (each + EOS)."""
    seqs: list[list[int]] = []
    stream: list[int] = []
    total = 0
    for start in range(0, len(texts), _ENCODE_CHUNK):  # encode only as much text as the budget needs
        for ids in encoder.encode(texts[start : start + _ENCODE_CHUNK]):
            doc = [*ids, encoder.eos_id]
            if pack:
                stream += doc
            else:
                seqs.append(doc[:max_length])
                total += len(seqs[-1])
        if budget is not None and (len(stream) if pack else total) >= budget:
            break
    if pack:
        stream = stream[:budget]
        seqs = [stream[i : i + max_length] for i in range(0, len(stream), max_length)]
    elif budget is not None:
        kept, total = [], 0
        for seq in seqs:
            if total >= budget:
                break
            kept.append(seq[: budget - total])
            total += len(kept[-1])
        seqs = kept
    return [s for s in seqs if len(s) >= 2]  # a one-token row predicts nothing


@lru_cache(maxsize=2)
def load_token_tables(opts: GPT2Options) -> TokenTables:
    """Token tables of a GPT-2 run (cached per process by options)."""
    train, val = load_corpus(opts)
    encoder = bpe_encoder(train, opts) if opts.model_name is None else pretrained_encoder(opts)
    tables = []
    for split, texts, budget in (("training", train, opts.train_tokens), ("validation", val, opts.val_tokens)):
        seqs = to_sequences(texts, encoder, opts.max_length, opts.pack, budget)
        if not seqs:
            raise ValueError(f"The {split} split of {opts.dataset!r} holds no text of two or more tokens.")
        tables += pad_ids(seqs, encoder.eos_id)
    return TokenTables(*tables, encoder.eos_id, encoder.vocab_size, encoder.name)
