"""The candidate grid: learning-rate multipliers × gradient-noise standard deviations.

An action of the default ``Discrete`` action space is a *mode id*, the same integer the AEES
reference uses: ``mode_id = lr_idx * n_noise + noise_idx``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aees_gym.core import checks


def _format_token(value: float) -> str:
    # Same token rule as the reference so candidate names match its logs.
    return f"{value:.12g}".replace("-", "m").replace(".", "p")


def candidate_name(lr_multiplier: float, noise_std: float) -> str:
    """Readable, stable name of one candidate, e.g. ``lr0p5_n0p005``."""
    return f"lr{_format_token(lr_multiplier)}_n{_format_token(noise_std)}"


def _validated_axis(name: str, values: Iterable[Any], *, allow_zero: bool) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"grid.{name} must be a sequence of numbers, got {values!r}.")
    check = checks.non_negative if allow_zero else checks.positive
    floats = tuple(float(check(f"grid.{name}[{i}]", v)) for i, v in enumerate(values))
    if not floats:
        raise ValueError(f"grid.{name} must contain at least one value.")
    if len(set(floats)) != len(floats):
        dupes = sorted({v for v in floats if floats.count(v) > 1})
        raise ValueError(f"{name} contains duplicate values {dupes}; each candidate must be unique.")
    return floats


@dataclass(frozen=True)
class CandidateGrid:
    """All (lr multiplier, noise std) pairs an agent may choose from.

    Args:
        lr_multipliers: Positive multipliers applied to the base learning rate for one window.
        noise_stds: Non-negative standard deviations of Gaussian noise added to gradients.

    Example:
        >>> grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005))
        >>> grid.index(2, 1), grid.split(5), grid.values(5), grid.name(5)
        (5, (2, 1), (2.0, 0.005), 'lr2_n0p005')
    """

    lr_multipliers: tuple[float, ...] = (0.5, 1.0, 2.0)
    noise_stds: tuple[float, ...] = (0.0, 0.005, 0.01)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "lr_multipliers", _validated_axis("lr_multipliers", self.lr_multipliers, allow_zero=False)
        )
        object.__setattr__(
            self, "noise_stds", _validated_axis("noise_stds", self.noise_stds, allow_zero=True)
        )

    @property
    def n_lr(self) -> int:
        return len(self.lr_multipliers)

    @property
    def n_noise(self) -> int:
        return len(self.noise_stds)

    @property
    def size(self) -> int:
        return self.n_lr * self.n_noise

    def __len__(self) -> int:
        return self.size

    def index(self, lr_idx: int, noise_idx: int) -> int:
        """Mode id of the pair ``(lr_idx, noise_idx)``."""
        if not (0 <= lr_idx < self.n_lr and 0 <= noise_idx < self.n_noise):
            raise ValueError(
                f"(lr_idx, noise_idx) = ({lr_idx}, {noise_idx}) is outside the grid "
                f"[0, {self.n_lr}) × [0, {self.n_noise})."
            )
        return lr_idx * self.n_noise + noise_idx

    def split(self, action: int) -> tuple[int, int]:
        """``(lr_idx, noise_idx)`` of a mode id."""
        action = self.validate_action(action)
        return divmod(action, self.n_noise)

    def values(self, action: int) -> tuple[float, float]:
        """``(lr_multiplier, noise_std)`` of a mode id."""
        lr_idx, noise_idx = self.split(action)
        return self.lr_multipliers[lr_idx], self.noise_stds[noise_idx]

    def name(self, action: int) -> str:
        return candidate_name(*self.values(action))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.name(a) for a in range(self.size))

    def index_of(self, lr_multiplier: float, noise_std: float) -> int:
        """Mode id of the pair with these exact values."""
        if lr_multiplier not in self.lr_multipliers:
            raise ValueError(f"lr_multiplier {lr_multiplier} is not in the grid; choose one of {self.lr_multipliers}.")
        if noise_std not in self.noise_stds:
            raise ValueError(f"noise_std {noise_std} is not in the grid; choose one of {self.noise_stds}.")
        return self.index(self.lr_multipliers.index(lr_multiplier), self.noise_stds.index(noise_std))

    def nearest(self, lr_multiplier: float, noise_std: float) -> int:
        """Mode id closest to a pair (log distance on the lr axis, linear on the noise axis)."""
        lr_idx = min(range(self.n_lr), key=lambda i: abs(math.log(self.lr_multipliers[i] / lr_multiplier)))
        noise_idx = min(range(self.n_noise), key=lambda i: abs(self.noise_stds[i] - noise_std))
        return self.index(lr_idx, noise_idx)

    def validate_action(self, action: Any) -> int:
        """Return ``action`` as a Python int or raise a ``ValueError`` that names the valid range."""
        if hasattr(action, "shape") and getattr(action, "shape", None) == ():
            action = action.item()  # 0-d numpy/torch scalars, as SB3 and Gymnasium pass them
        if isinstance(action, bool) or not isinstance(action, int | np.integer):
            raise ValueError(
                f"Action must be an integer mode id in [0, {self.size}), got {action!r} "
                f"of type {type(action).__name__}."
            )
        action = int(action)
        if not 0 <= action < self.size:
            raise ValueError(f"Action {action} is out of range; valid mode ids are 0..{self.size - 1} ({self.names}).")
        return action

    def to_dict(self) -> dict[str, list[float]]:
        return {"lr_multipliers": list(self.lr_multipliers), "noise_stds": list(self.noise_stds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateGrid:
        unknown = set(data) - {"lr_multipliers", "noise_stds"}
        if unknown:
            raise KeyError(f"Unknown grid keys {sorted(unknown)}; valid keys are ['lr_multipliers', 'noise_stds'].")
        return cls(**{k: tuple(v) for k, v in data.items()})

