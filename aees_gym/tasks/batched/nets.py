"""Batched forward passes: N runs of one network as one computation over stacked parameters.

Each function takes the stacked parameters in the order of the single-run module's
``parameters()`` (each ``[N, ...]``) and inputs ``x`` of shape ``[N, B, ...]`` (row ``i`` is run
``i``'s batch) and returns logits ``[N, B, C]``. Linear layers are ``baddbmm`` (one batched GEMM
for all runs); convolutions are one grouped convolution with the runs as groups, which is what
``torch.func.vmap`` lowers a batched ``conv2d`` to as well. No operation mixes rows, so a
non-finite run never reaches another.

Dropout draws each run's mask from that run's own generator (:class:`RowDropout`), reproducing
what ``F.dropout`` draws from the global RNG in the single run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: ``forward(params, x, dropout) -> logits``; ``dropout`` is ``None`` in evaluation mode.
BatchedForward = Callable[[Sequence[torch.Tensor], torch.Tensor, "RowDropout | None"], torch.Tensor]
#: ``loss_and_grads(params, x, y, grads, work) -> losses``: each row's mean cross-entropy ``[N]``, with
#: each row's gradients written into ``grads`` (tensors shaped like ``params``) — a closed-form
#: backward; ``work`` is a dict the caller keeps between calls for reusable activation buffers.
BatchedLossAndGrads = Callable[
    [Sequence[torch.Tensor], torch.Tensor, torch.Tensor, Sequence[torch.Tensor], dict[str, torch.Tensor]], torch.Tensor
]


def scratch(work: dict[str, torch.Tensor], name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A buffer ``work[name]`` of ``shape`` with ``like``'s dtype and device, reused while those match.

    Step-sized activations are allocated afresh by every out-of-place op; on CPU that allocation
    (fresh pages of a few MB) costs more than the arithmetic that fills them.
    """
    buf = work.get(name)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = work[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


class RowDropout:
    """Per-run dropout streams, each identical to ``F.dropout`` under ``torch.manual_seed(seed)``.

    The single run seeds torch's global RNG at every window, so its dropout masks are the global
    generator's draws in forward order. Here every run owns a generator reseeded the same way
    (:meth:`reseed`) and draws its mask exactly as ``F.dropout`` does on that device: on CPU
    ``empty_like(x).bernoulli_(1 - p)`` then ``div_(1 - p)``; on CUDA the fused ``native_dropout``,
    run per row with the row's generator state swapped into the device's default generator (a
    host-side seed/offset pair, so no synchronisation).

    Args:
        n_runs: Number of rows.
        device: Device of the activations.
    """

    def __init__(self, n_runs: int, device: torch.device) -> None:
        self.device = device
        self.generators = [torch.Generator(device=device) for _ in range(n_runs)]
        #: Rows that take a training step now; the others' activations pass through untouched.
        self.rows: list[int] = list(range(n_runs))
        #: Whether a mask was ever drawn: host-side generator state, so such a window is no CUDA graph.
        self.drew = False

    def reseed(self, row: int, seed: int) -> None:
        self.generators[row].manual_seed(int(seed))

    def __call__(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}.")
        if p == 0.0:
            return x
        self.drew = True
        if x.device.type == "cuda":
            return self._fused(x, p)
        every_row = len(self.rows) == x.shape[0]
        mask = torch.empty_like(x) if every_row else torch.full_like(x, 1.0 - p)
        for i in self.rows:
            mask[i].bernoulli_(1.0 - p, generator=self.generators[i])
        mask.div_(1.0 - p)
        return x * mask

    def _fused(self, x: torch.Tensor, p: float) -> torch.Tensor:
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        default = torch.cuda.default_generators[index]
        saved = default.get_state()
        rows = set(self.rows)
        pieces = []
        try:
            for i in range(x.shape[0]):
                if i not in rows:
                    pieces.append(x[i])
                    continue
                default.set_state(self.generators[i].get_state())
                pieces.append(F.dropout(x[i], p, training=True))
                self.generators[i].set_state(default.get_state())
        finally:
            default.set_state(saved)
        return torch.stack(pieces)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear`` per row: x ``[N, B, in]``, weight ``[N, out, in]``, bias ``[N, out]`` → ``[N, B, out]``."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def to_groups(x: torch.Tensor) -> torch.Tensor:
    """``[N, B, C, H, W]`` → ``[B, N·C, H, W]``: the runs become groups of one grouped convolution."""
    n, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, n * c, h, w)


def from_groups(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, N·C, H, W]`` → ``[N, B, C·H·W]``, each row flattened like ``torch.flatten(x, 1)``."""
    b = x.shape[0]
    return x.reshape(b, n, -1).transpose(0, 1)


def grouped_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n: int, padding: int) -> torch.Tensor:
    """``conv2d`` per run on grouped activations ``[B, N·C, H, W]`` with weight ``[N, O, C, k, k]``."""
    _, o, c, kh, kw = weight.shape
    return F.conv2d(x, weight.reshape(n * o, c, kh, kw), bias.reshape(n * o), padding=padding, groups=n)


def mlp_forward(params: Sequence[torch.Tensor], x: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
    """``Linear → ReLU → Linear`` (Digits, Synthetic, the MNIST MLP); inputs are flattened per example."""
    w1, b1, w2, b2 = params
    return linear(linear(x.flatten(2), w1, b1).relu_(), w2, b2)


@torch.no_grad()
def mlp_loss_and_grads(
    params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, grads: Sequence[torch.Tensor], work: dict[str, torch.Tensor]
) -> torch.Tensor:
    """:func:`mlp_forward`, the rows' mean cross-entropy and its gradients without autograd.

    The backward is written out with the same batched GEMMs autograd would run, minus its
    per-node overhead and temporaries; the gradients equal autograd's up to float rounding. The
    logits are computed transposed, ``[N, C, B]``, because a softmax over a short contiguous
    class dimension is several times slower on CPU than one across the batch.

    Args:
        params: ``w1 [N, H, I]``, ``b1 [N, H]``, ``w2 [N, C, H]``, ``b2 [N, C]`` (no autograd needed).
        x: Inputs ``[N, B, ...]`` (flattened per example). y: Labels ``[N, B]`` (int64).
        grads: Buffers shaped like ``params``, overwritten with each row's gradient of its mean loss.
        work: Reusable activation buffers (see :func:`scratch`); start with ``{}``.

    Returns:
        ``[N]`` mean losses, as ``F.cross_entropy`` gives them.
    """
    w1, b1, w2, b2 = params
    gw1, gb1, gw2, gb2 = grads
    n, b = y.shape
    x = x.flatten(2)
    h = scratch(work, "h", (n, b, w1.shape[1]), x)
    torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2), out=h).relu_()  # [N, B, H]
    logits = scratch(work, "logits", (n, w2.shape[1], b), x)
    log_p = torch.log_softmax(torch.baddbmm(b2.unsqueeze(2), w2, h.transpose(1, 2), out=logits), 1)  # [N, C, B]
    target = y.unsqueeze(1)
    loss = log_p.gather(1, target).squeeze(1).mean(1).neg_()
    # d(mean CE)/d(logits) = (softmax - onehot) / B, which is what log_softmax and nll_loss backward give.
    g = log_p.exp_().scatter_add_(1, target, torch.full(target.shape, -1.0, dtype=log_p.dtype, device=y.device)).div_(b)
    torch.bmm(g, h, out=gw2)
    torch.sum(g, 2, out=gb2)
    gh = torch.bmm(g.transpose(1, 2), w2, out=scratch(work, "grad_h", h.shape, x))  # [N, B, H]
    # ReLU's backward as autograd runs it (a masked multiply or masked_fill is several times slower).
    torch.ops.aten.threshold_backward.grad_input(gh, h, 0.0, grad_input=gh)
    torch.bmm(gh.transpose(1, 2), x, out=gw1)
    torch.sum(gh, 1, out=gb1)
    return loss


def digits_cnn_forward(params: Sequence[torch.Tensor], x: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
    """:class:`~aees_gym.tasks.tabular.DigitsCNN`: conv16-ReLU-conv32-ReLU-maxpool-linear on 8×8 images."""
    c1w, c1b, c2w, c2b, hw, hb = params
    n, b = x.shape[:2]
    h = to_groups(x.reshape(n, b, 1, 8, 8))
    h = grouped_conv(h, c1w, c1b, n, padding=1).relu_()
    h = F.max_pool2d(grouped_conv(h, c2w, c2b, n, padding=1).relu_(), 2)
    return linear(from_groups(h, n), hw, hb)


def mnist_cnn_forward(params: Sequence[torch.Tensor], x: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
    """:class:`~aees_gym.tasks.models.MnistCNN`: conv32-conv64-maxpool-dropout(.25)-fc128-dropout(.5)-fc10."""
    c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
    n = x.shape[0]
    h = grouped_conv(to_groups(x), c1w, c1b, n, padding=0).relu_()
    h = F.max_pool2d(grouped_conv(h, c2w, c2b, n, padding=0).relu_(), 2)
    # Dropout before the flatten in the single run; per row the element order is the same.
    h = from_groups(h, n)
    if dropout is not None:
        h = dropout(h.contiguous(), 0.25)
    h = linear(h, f1w, f1b).relu_()
    if dropout is not None:
        h = dropout(h, 0.5)
    return linear(h, f2w, f2b)
