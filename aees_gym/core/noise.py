"""Seeded Gaussian gradient noise: the streams of the reference, in one place.

The reference seeds one generator per parameter tensor with ``seed + 1009·group + index``; keeping the
scheme makes the gradient noise, and therefore whole runs, reproducible against it. Both
:class:`~aees_gym.core.control.EpisodeControl` and the batched engine draw through :func:`draw_`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

PARAM_SEED_STRIDE = 1009
# normal_(0, σ) draws the same stream as randn() and equals randn()·σ bit for bit from this size on
# (its vectorised path); smaller tensors keep randn()·σ so runs stay identical to the reference.
FUSED_NORMAL_MIN_NUMEL = 16


def noise_seed(seed: int, group: int, index: int) -> int:
    """Seed of the generator of parameter ``index`` of param group ``group``."""
    return int(seed) + group * PARAM_SEED_STRIDE + index


def draw_(out: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Fill ``out`` with N(0, std²) noise from ``generator``, drawn exactly as the reference draws it."""
    if out.numel() >= FUSED_NORMAL_MIN_NUMEL:
        return out.normal_(0.0, std, generator=generator)
    return torch.randn(out.shape, generator=generator, out=out).mul_(std)


class GradientNoise:
    """Per-parameter noise generators of one optimizer, created on first use and checkpointable.

    Args:
        seed: The run's noise seed.
        params: The optimizer's parameters, in param-group order.
        keys: ``(group, index)`` of each parameter.
    """

    def __init__(self, seed: int, params: Sequence[torch.Tensor], keys: Sequence[tuple[int, int]]) -> None:
        self.seed, self._params, self._keys = int(seed), list(params), list(keys)
        self._generators: dict[tuple[int, int], torch.Generator] = {}
        # (param, generator, buffer) per parameter, built on the first noisy step and reused.
        self._targets: list[tuple[torch.Tensor, torch.Generator, torch.Tensor]] | None = None

    def add_(self, std: float) -> None:
        """Add the next noise draw to every parameter's gradient (parameters without one are skipped)."""
        if self._targets is None:
            self._targets = [(p, self._generator(k, p.device), torch.empty_like(p)) for k, p in zip(self._keys, self._params, strict=True)]
        grads, noises = [], []
        for param, gen, buf in self._targets:
            if param.grad is not None:
                grads.append(param.grad)
                noises.append(draw_(buf, std, gen))
        torch._foreach_add_(grads, noises)

    def _generator(self, key: tuple[int, int], device: torch.device) -> torch.Generator:
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device).manual_seed(noise_seed(self.seed, *key))
            self._generators[key] = gen
        return gen

    def state_dict(self) -> dict[str, Any]:
        return {f"{g}:{p}": gen.get_state() for (g, p), gen in self._generators.items()}

    def load_state_dict(self, seed: int, states: Mapping[str, torch.Tensor], device: torch.device) -> None:
        self.seed, self._generators, self._targets = int(seed), {}, None  # targets held the old generators
        for key, state in states.items():
            g, p = (int(x) for x in key.split(":"))
            gen = torch.Generator(device=device)
            gen.set_state(state)
            self._generators[(g, p)] = gen
