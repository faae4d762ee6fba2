"""The image fast path: uint8 data on the device, augmentation as batched tensor ops, bf16, channels_last.

Images stay on the training device as ``uint8`` NCHW tensors (CIFAR-100's 50k training images
take 150 MB). The network is wrapped as ``DeviceAugment → InputNormalize → net``:

* :class:`DeviceAugment` does the reference's ``RandomCrop(32, padding=4)`` + horizontal flip for a
  whole batch at once with a seeded generator on the device, and only in training mode, so
  evaluation sees the plain images. Zero padding of the raw pixels is exactly torchvision's
  ``fill=0`` padding of the PIL image before normalisation.
* :class:`InputNormalize` converts to float, normalises with the data set's mean/std and, on request,
  switches to channels_last (faster convolutions with cuDNN on tensor cores).
* :class:`AutocastForward` runs the net under ``torch.autocast`` (bf16) and returns float32 logits,
  so the loss and the controller's loss buffer stay in float32.

Nothing here reads a value back to the host, so a training step issues no device synchronisation.
Wrapping the model this way keeps every run builder that calls ``model(x)`` unchanged, including
the evaluation and label-noise diagnostics of :func:`aees_gym.tasks.classification.build_classification_run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FastPath:
    """Resolved performance switches of one run (see :func:`resolve_fast_path`)."""

    autocast: bool
    channels_last: bool
    compile: bool


def resolve_fast_path(device: torch.device, autocast: bool | None, channels_last: bool | None, compile: bool) -> FastPath:
    """``None`` means "on for CUDA, off elsewhere" (bf16 autocast on CPU is supported but rarely faster)."""
    on_cuda = device.type == "cuda"
    return FastPath(
        autocast=on_cuda if autocast is None else bool(autocast),
        channels_last=on_cuda if channels_last is None else bool(channels_last),
        compile=bool(compile),
    )


class DeviceAugment(nn.Module):
    """Random crop with zero padding and random horizontal flip of a uint8 NCHW batch, in training mode only.

    Args:
        padding: Pixels of zero padding on every side before the crop (0 disables cropping).
        flip: Whether to flip each image horizontally with probability 1/2.
        seed: Seed of the module's own generator (its stream is independent of the global RNG).
        device: Device of the generator; must match the batches'.
    """

    def __init__(self, padding: int, flip: bool, seed: int, device: torch.device) -> None:
        super().__init__()
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}.")
        self.padding, self.flip = padding, flip
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.padding:
            x = random_crop(x, self.padding, self.generator)
        if self.flip:
            x = random_flip(x, self.generator)
        return x

    def extra_repr(self) -> str:
        return f"padding={self.padding}, flip={self.flip}"


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Crop each image of ``x`` (N, C, H, W) at a random offset of its zero-padded copy (H, W unchanged)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=x.device)
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # One gather over (N, H, W) on the NHWC view; the result is NCHW with channels_last strides.
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of ``x`` (N, C, H, W) left-right with probability 1/2."""
    flip = torch.rand((x.shape[0], 1, 1, 1), generator=generator, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


class InputNormalize(nn.Module):
    """uint8 (or float in [0, 1]) images → float32 ``(x/255 - mean) / std``, optionally channels_last."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()


class AutocastForward(nn.Module):
    """Run ``net`` under ``torch.autocast(dtype)`` on its device type and return float32 outputs."""

    def __init__(self, net: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.net, self.device_type, self.dtype = net, device_type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(x)
        return out.float()


def wrap_image_model(
    net: nn.Module,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    fast: FastPath,
    augment: DeviceAugment | None = None,
) -> nn.Module:
    """``[augment →] normalise → net`` on ``device`` with the fast-path switches applied.

    The result takes raw uint8 NCHW batches; call it where the plain model would be called.
    ``torch.compile`` wraps only the network (the augmentation's generator calls are not traced).
    """
    net = net.to(device)
    if fast.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if fast.autocast:
        net = AutocastForward(net, device.type)
    if fast.compile:
        net = torch.compile(net)
    stages: list[nn.Module] = [] if augment is None else [augment]
    stages += [InputNormalize(mean, std, channels_last=fast.channels_last).to(device), net]
    return nn.Sequential(*stages)
