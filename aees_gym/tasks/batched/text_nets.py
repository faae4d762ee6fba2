"""Batched text classifiers: the word-level LSTM of the text tasks, N runs as one stacked computation.

The text tasks train :class:`~aees_gym.tasks.text.LSTMClassifier` through the generic classification
run: its "features" are indices into one device-resident table of padded token ids and lengths
(:class:`~aees_gym.tasks.text.IndexedTextModel`). The batched rows do the same: the engine gathers
``[N, B]`` indices per step and the forward of :func:`lstm_forward_for` looks them up, so batches,
label noise and evaluation are the engine's unchanged.

The LSTM is written out with batched GEMMs over the stacked weights (PyTorch's gate order
``i, f, g, o``; ``c' = f·c + i·g``, ``h' = o·tanh(c')``) with a hand-written backward through time
(:func:`lstm_layer`); autograd connects it to the embedding and the head. The single
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


class _LSTMLayer(torch.autograd.Function):
    """One LSTM layer over stacked weights with a hand-written backward through time.

    Autograd over the step loop would record ~10 nodes per time step and, in the backward, one
    small GEMM per step for ``W_hh``'s gradient. Here everything that does not depend on the
    recurrence is computed for all steps at once; the step loops keep only the recurrence (a few
    element-wise ops and ``h·W_hhᵀ`` forward, ``dgates·W_hh`` backward), and the weight gradients
    are three GEMMs over all steps. Step tensors are kept time-major so each step's slice is contiguous.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205  (autograd.Function signature)
        n, b, t, _ = x.shape
        hidden = w_hh.shape[2]
        xw = linear(x.reshape(n, b * t, -1), w_ih, b_ih).view(n, b, t, 4 * hidden).add_(b_hh[:, None, None, :])
        xw = xw.permute(2, 0, 1, 3).contiguous()  # [T, N, B, 4H]
        acts = torch.empty_like(xw)  # i, f, g, o after their nonlinearities
        cs = x.new_empty(t, n, b, hidden)
        hs = x.new_empty(t, n, b, hidden)
        h, c = x.new_zeros(n, b, hidden), x.new_zeros(n, b, hidden)
        w_hh_t = w_hh.transpose(1, 2)
        g_slice = slice(2 * hidden, 3 * hidden)
        for step in range(t):
            gates = torch.baddbmm(xw[step], h, w_hh_t)
            a = acts[step]
            torch.sigmoid(gates, out=a)
            torch.tanh(gates[..., g_slice], out=a[..., g_slice])
            i, f, g, o = a.chunk(4, dim=2)
            c = torch.addcmul(f * c, i, g, out=cs[step])
            h = torch.mul(o, torch.tanh(c), out=hs[step])
        ctx.save_for_backward(x, w_ih, w_hh, acts, cs, hs)
        return hs.permute(1, 2, 0, 3)

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: ANN001, ANN205
        x, w_ih, w_hh, acts, cs, hs = ctx.saved_tensors
        t, n, b, hidden = hs.shape
        i, f, g, o = acts.chunk(4, dim=3)
        tanh_c = torch.tanh(cs)
        c_prev = torch.cat([cs.new_zeros(1, n, b, hidden), cs[:-1]])
        # d(pre-activation) = (dc for i, f, g; dh for o) × partner × the nonlinearity's derivative.
        coef = torch.stack([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tanh_c * o * (1.0 - o)], dim=3)
        dc_from_h = o * (1.0 - tanh_c * tanh_c)
        f = f.contiguous()
        grad_hs = grad_hs.permute(2, 0, 1, 3).contiguous()  # [T, N, B, H]
        dgates = coef.new_empty(t, n, b, 4, hidden)
        dh_next = hs.new_zeros(n, b, hidden)
        dc_next = hs.new_zeros(n, b, hidden)
        for step in reversed(range(t)):
            dh = grad_hs[step] + dh_next
            dc = torch.addcmul(dc_next, dh, dc_from_h[step])
            d = dgates[step]
            torch.mul(coef[step, :, :, :3], dc.unsqueeze(2), out=d[:, :, :3])
            torch.mul(coef[step, :, :, 3], dh, out=d[:, :, 3])
            dc_next = dc.mul_(f[step])
            dh_next = torch.bmm(d.view(n, b, 4 * hidden), w_hh)
        flat = dgates.view(t, n, b, 4 * hidden).permute(1, 2, 0, 3).reshape(n, b * t, 4 * hidden)
        h_prev = torch.cat([hs.new_zeros(1, n, b, hidden), hs[:-1]]).permute(1, 2, 0, 3).reshape(n, b * t, hidden)
        grad_w_hh = torch.bmm(flat.transpose(1, 2), h_prev)
        grad_w_ih = torch.bmm(flat.transpose(1, 2), x.reshape(n, b * t, -1))
        grad_b = flat.sum(dim=1)
        grad_x = torch.bmm(flat, w_ih).view(x.shape)
        return grad_x, grad_w_ih, grad_w_hh, grad_b, grad_b.clone()


def lstm_layer(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One ``nn.LSTM`` layer (zero initial state, ``batch_first``) per row: x ``[N, B, T, I]`` → ``[N, B, T, H]``.

    PyTorch's gate order ``i, f, g, o``: ``c' = f·c + i·g``, ``h' = o·tanh(c')``.
    """
    return _LSTMLayer.apply(x, w_ih, w_hh, b_ih, b_hh)


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
