"""Word vocabularies of the LSTM text tasks and the right-padding of token-id sequences.

:mod:`aees_gym.tasks.text_data` re-exports these names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")
PAD_ID, UNK_ID = 0, 1


# ---------------------------------------------------------------------------- word vocabulary (LSTM)
def words(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes) and single punctuation marks."""
    return _WORD_RE.findall(text.lower())


def build_vocab(texts: Sequence[str], size: int, min_freq: int) -> dict[str, int]:
    """Word → id for the ``size - 2`` most frequent words (ties by spelling); 0 = padding, 1 = unknown."""
    counts = Counter(w for t in texts for w in words(t))
    ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return {w: i + 2 for i, w in enumerate(ranked[: size - 2])}


def encode_words(texts: Sequence[str], vocab: dict[str, int], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``; an empty text becomes one unknown token."""
    return [[vocab.get(w, UNK_ID) for w in words(t)][:max_length] or [UNK_ID] for t in texts]


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(N, longest)`` id tensor and the ``(N,)`` lengths."""
    lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
    ids = np.full((len(seqs), max(int(lengths.max(initial=1)), 1)), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return torch.from_numpy(ids), torch.from_numpy(lengths)
