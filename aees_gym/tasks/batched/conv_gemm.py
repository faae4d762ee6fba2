"""The DigitsCNN forward pass as batched matrix products (im2col), the engine's form on a GPU.

:func:`~aees_gym.tasks.batched.nets.digits_cnn_forward` runs each convolution as one grouped
convolution with the runs as groups. On a GPU, cuDNN's grouped kernels for hundreds of groups of a
few channels on 8×8 images run far below the card's rate, and the step is bound by them. Here
each 3×3 convolution is ``unfold`` (the patches, ``[N, B·64, C·9]``) times the row's weight
``[N, C·9, O]`` in one ``baddbmm`` over all runs, the same batched GEMM the linear layers use.
Convolution and GEMM sum the same products in a different order, so results agree to float
rounding (tested against the grouped form); the CPU path keeps the grouped form.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from aees_gym.tasks.batched.nets import RowDropout, linear


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(padding=1)`` per run: x ``[N, B, C, H, W]``, weight ``[N, O, C, 3, 3]`` → ``[N, B·H·W, O]`` (pixel-major)."""
    n, b, c, h, w = x.shape
    o = weight.shape[1]
    cols = F.unfold(x.reshape(n * b, c, h, w), kernel_size=3, padding=1)  # [N·B, C·9, H·W], (C, kh, kw) order
    cols = cols.view(n, b, c * 9, h * w).transpose(2, 3).reshape(n, b * h * w, c * 9)
    return torch.baddbmm(bias.unsqueeze(1), cols, weight.reshape(n, o, c * 9).transpose(1, 2))


def digits_cnn_gemm_forward(params: Sequence[torch.Tensor], x: torch.Tensor, dropout: RowDropout | None = None) -> torch.Tensor:
    """:class:`~aees_gym.tasks.tabular.DigitsCNN` (conv16-ReLU-conv32-ReLU-maxpool-linear) with GEMM convolutions."""
    c1w, c1b, c2w, c2b, hw, hb = params
    n, b = x.shape[:2]
    h = conv3x3(x.reshape(n, b, 1, 8, 8), c1w, c1b).relu_()  # [N, B·64, 16]
    h = h.view(n, b, 8, 8, 16).permute(0, 1, 4, 2, 3)  # [N, B, 16, 8, 8]
    h = conv3x3(h, c2w, c2b).relu_()  # [N, B·64, 32]
    # max_pool2d on a channels-last view: the single run's pooling (same window, same tie rule).
    h = F.max_pool2d(h.view(n * b, 8, 8, 32).permute(0, 3, 1, 2), 2)  # [N·B, 32, 4, 4]
    return linear(h.reshape(n, b, 32 * 16), hw, hb)
