"""A window's hyperparameters on an optimizer's param groups: set for each step, always restored.

The LR multiplier and the momentum (SGD ``momentum`` or Adam's β1) are written into the param
groups as Python floats around each ``optimizer.step()`` and restored in ``finally``, so the base
values a user's scheduler sees never change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


def momentum_keys(optimizer: torch.optim.Optimizer) -> list[str]:
    """The param-group key the momentum axis sets in each group: ``momentum`` (SGD) or ``betas`` (Adam)."""
    keys = []
    for index, group in enumerate(optimizer.param_groups):
        if "betas" in group:
            keys.append("betas")
        elif "momentum" in group:
            keys.append("momentum")
        else:
            raise ValueError(
                f"The grid has a momentum axis, but {type(optimizer).__name__} param group {index} has no "
                "momentum: the axis needs 'momentum' (SGD, RMSprop) or 'betas' (Adam, AdamW) in every group; "
                "drop grid 'momenta' for this optimizer."
            )
    return keys


@contextlib.contextmanager
def window_hyperparameters(
    optimizer: torch.optim.Optimizer, lr_multiplier: float, momentum: float | None, keys: Sequence[str]
) -> Iterator[None]:
    """Run a block with each group's lr × ``lr_multiplier`` (and ``momentum`` under ``keys``), then restore."""
    groups = optimizer.param_groups
    base_lrs = [g["lr"] for g in groups]
    base_momenta = [g[k] for g, k in zip(groups, keys, strict=True)] if momentum is not None else []
    try:
        for group, base in zip(groups, base_lrs, strict=True):
            group["lr"] = base * lr_multiplier
        for group, key, base in zip(groups, keys, base_momenta, strict=False):
            group[key] = (momentum, *base[1:]) if key == "betas" else momentum
        yield
    finally:
        for group, base in zip(groups, base_lrs, strict=True):
            group["lr"] = base
        for group, key, base in zip(groups, keys, base_momenta, strict=False):
            group[key] = base
