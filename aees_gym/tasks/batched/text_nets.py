"""Batched text classifiers: the word-level LSTM of the text tasks, N runs as one stacked computation.

The text tasks train :class:`~aees_gym.tasks.text.LSTMClassifier` through the generic classification
run: its "features" are indices into one device-resident table of padded token ids and lengths
(:class:`~aees_gym.tasks.text.IndexedTextModel`). The batched rows do the same: the engine gathers
``[N, B]`` indices per step and :func:`lstm_forward` looks them up, so batches, label noise and
evaluation are the engine's unchanged.

The LSTM is written out with batched GEMMs over the stacked weights (PyTorch's gate order
``i, f, g, o``; ``c' = f·c + i·g``, ``h' = o·tanh(c')``); autograd gives the backward. The single
run's ``padding_idx`` (no gradient into the padding row) is reproduced by detaching the looked-up
padding embeddings; the head's dropout draws from each row's own generator (``RowDropout``), as
``nn.Dropout`` draws from the seeded global RNG in the single run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from aees_gym.tasks.base import resolve_device
from aees_gym.tasks.batched.nets import BatchedForward, RowDropout, linear
from aees_gym.tasks.batched.registry import BatchedTaskSpec, register_batched_task
from aees_gym.tasks.classification import ClassificationData
from aees_gym.tasks.config import EnvConfig

_ASYNC = 'or run separate envs with gymnasium.make_vec(..., vectorization_mode="async").'


def stacked_embedding(ids: torch.Tensor, weight: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Row ``n`` of ``ids`` ``[N, ...]`` looked up in ``weight[n]`` ``[N, V, E]``; no gradient reaches the padding row."""
    n, vocab = weight.shape[:2]
    offset = (torch.arange(n, device=ids.device) * vocab).view(n, *([1] * (ids.dim() - 1)))
    looked = F.embedding(ids + offset, weight.reshape(n * vocab, -1))
    return torch.where((ids == pad_id).unsqueeze(-1), looked.detach(), looked)


def lstm_layer(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One ``nn.LSTM`` layer (zero initial state, ``batch_first``) per row: x ``[N, B, T, I]`` → ``[N, B, T, H]``."""
    n, b, t, _ = x.shape
    hidden = w_hh.shape[2]
    # The input projection of every time step at once; the recurrence then adds h·W_hhᵀ + b_hh per step.
    xw = linear(x.reshape(n, b * t, -1), w_ih, b_ih).view(n, b, t, 4 * hidden)
    w_hh_t = w_hh.transpose(1, 2)
    h = x.new_zeros(n, b, hidden)
    c = x.new_zeros(n, b, hidden)
    outs = []
    for step in range(t):
        gates = torch.baddbmm(xw[:, :, step] + b_hh.unsqueeze(1), h, w_hh_t)
        i, f, g, o = gates.chunk(4, dim=2)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=2)


def lstm_forward_for(
    ids: torch.Tensor, lengths: torch.Tensor, layers: int, dropout_p: float, pad_id: int
) -> BatchedForward:
    """The batched :class:`~aees_gym.tasks.text.LSTMClassifier` over the token table ``ids`` ``[M, T]``, ``lengths`` ``[M]``.

    Parameters in the module's order: embedding, then per layer ``weight_ih, weight_hh, bias_ih,
    bias_hh``, then the head's weight and bias. Inputs are ``[N, B]`` indices into the table.
    """

    def forward(params: Sequence[torch.Tensor], x: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
        emb, *rest = params
        head_w, head_b = rest[-2:]
        rows = ids[x]  # [N, B, T]
        h = stacked_embedding(rows, emb, pad_id)
        for layer in range(layers):
            h = lstm_layer(h, *rest[4 * layer : 4 * layer + 4])
        last = lengths[x].sub(1).clamp_(min=0)  # the state at each text's last real token
        h = h.gather(2, last[:, :, None, None].expand(-1, -1, 1, h.shape[3])).squeeze(2)
        if dropout is not None:
            h = dropout(h, dropout_p)
        return linear(h, head_w, head_b)

    return forward


# ---------------------------------------------------------------------------- registration
def _text_problem(config: EnvConfig) -> str | None:
    opts = config.options
    if opts.model != "lstm":
        return f"The batched engine trains the text tasks' LSTM (model='lstm'), not model={opts.model!r}; {_ASYNC}"
    if opts.layers > 1 and opts.dropout > 0:
        return (
            f"The batched engine does not reproduce nn.LSTM's dropout between layers (layers={opts.layers}, "
            f"dropout={opts.dropout}); use layers=1 or dropout=0, {_ASYNC}"
        )
    return None


def _text_spec() -> BatchedTaskSpec:
    from aees_gym.tasks.image_pipeline import resolve_fast_path
    from aees_gym.tasks.text import LSTMClassifier, load_text_tensors, lstm_flops_per_step

    def tables(config: EnvConfig):  # noqa: ANN202  (TextTensors; imported lazily)
        problem = _text_problem(config)
        if problem is not None:
            raise ValueError(problem)
        return load_text_tensors(config.task, config.options)

    def load_data(config: EnvConfig) -> ClassificationData:
        t = tables(config)
        n_train, n_val = len(t.train_labels), len(t.val_labels)
        index = torch.arange(n_train + n_val)
        return ClassificationData(index[:n_train], t.train_labels, index[n_train:], t.val_labels, len(t.label_names))

    def make_model(config: EnvConfig, data: ClassificationData) -> Callable[[], torch.nn.Module]:
        o, t = config.options, tables(config)
        return lambda: LSTMClassifier(t.vocab_size, data.n_classes, o.embed_dim, o.hidden, o.layers, o.dropout, t.pad_id)

    def forward(config: EnvConfig) -> BatchedForward:
        o, t = config.options, tables(config)
        device = resolve_device(config.device)
        return lstm_forward_for(t.ids.to(device), t.lengths.to(device), o.layers, o.dropout, t.pad_id)

    def autocast(config: EnvConfig) -> bool:
        return resolve_fast_path(resolve_device(config.device), config.options.autocast, False, False).autocast

    def flops(config: EnvConfig, data: ClassificationData, template: torch.nn.Module) -> float:
        o, t = config.options, tables(config)
        return lstm_flops_per_step(o.embed_dim, o.hidden, o.layers, data.n_classes, config.batch_size, int(t.ids.shape[1]))

    return BatchedTaskSpec(load_data, make_model, forward, autocast, flops=flops, problem=_text_problem)


def register_text_rows() -> None:
    """The LSTM of every text task (``model='lstm'``; the transformer variants stay single-env)."""
    from aees_gym.tasks.text import TASK_SOURCES

    spec = _text_spec()
    for task in TASK_SOURCES:
        register_batched_task(task, spec)
