"""The candidate grid: learning-rate multipliers × gradient-noise stds (× momenta, optionally).

An action of the default ``Discrete`` action space is a *mode id*, the same integer the AEES
reference uses: ``mode_id = lr_idx * n_noise + noise_idx``. With the optional momentum axis
(``momenta``) the id extends row-major: ``(lr_idx * n_noise + noise_idx) * n_momentum + momentum_idx``,
so a grid without momenta numbers its candidates exactly as before.

Besides mode ids, a window may run an exact :class:`Candidate` (continuous agents, the adaptive
heuristic); it must lie inside the grid's extent on every axis (:meth:`CandidateGrid.check_candidate`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aees_gym.core import checks

_GRID_KEYS = ("lr_multipliers", "noise_stds", "momenta")


def _format_token(value: float, digits: int = 12) -> str:
    # Same token rule as the reference so candidate names match its logs.
    return f"{value:.{digits}g}".replace("-", "m").replace(".", "p")


def candidate_name(lr_multiplier: float, noise_std: float, momentum: float | None = None, *, digits: int = 12) -> str:
    """Readable, stable name of one candidate, e.g. ``lr0p5_n0p005`` (``lr0p5_n0p005_m0p9`` with momentum)."""
    name = f"lr{_format_token(lr_multiplier, digits)}_n{_format_token(noise_std, digits)}"
    return name if momentum is None else f"{name}_m{_format_token(momentum, digits)}"


@dataclass(frozen=True)
class Candidate:
    """What one window runs: an LR multiplier, a gradient-noise std and, with the momentum axis, a momentum.

    Args:
        lr_multiplier: Positive, finite multiplier of the base learning rate.
        noise_std: Non-negative, finite standard deviation of the gradient noise.
        momentum: SGD momentum / Adam β1 for the window, in [0, 1); ``None`` leaves the optimizer's own.
    """

    lr_multiplier: float
    noise_std: float
    momentum: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_multiplier", float(checks.positive("lr_multiplier", self.lr_multiplier)))
        object.__setattr__(self, "noise_std", float(checks.non_negative("noise_std", self.noise_std)))
        if self.momentum is not None:
            object.__setattr__(self, "momentum", check_momentum(self.momentum))

    @property
    def name(self) -> str:
        return candidate_name(self.lr_multiplier, self.noise_std, self.momentum)

    @property
    def label(self) -> str:
        """The name to 4 significant digits: how logs show an exact (off-grid) candidate."""
        return candidate_name(self.lr_multiplier, self.noise_std, self.momentum, digits=4)


def check_momentum(value: Any, name: str = "momentum") -> float:
    """``value`` as a float in [0, 1) (SGD momentum / Adam β1), else an error naming that range."""
    return float(checks.fraction(name, value))


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


def _position(axis: tuple[float, ...], value: float, *, log: bool) -> float:
    """Fractional index of ``value`` on a sorted-or-not axis: exact index at a cell, linear in between."""
    order = sorted(range(len(axis)), key=axis.__getitem__)
    points = [math.log(axis[i]) if log else axis[i] for i in order]
    x = math.log(value) if log else value
    if len(points) == 1 or x <= points[0]:
        return float(order[0])
    if x >= points[-1]:
        return float(order[-1])
    k = bisect_right(points, x) - 1
    t = (x - points[k]) / (points[k + 1] - points[k])
    return order[k] + t * (order[k + 1] - order[k])


@dataclass(frozen=True)
class CandidateGrid:
    """All (lr multiplier, noise std[, momentum]) candidates an agent may choose from by mode id.

    Args:
        lr_multipliers: Positive multipliers applied to the base learning rate for one window.
        noise_stds: Non-negative standard deviations of Gaussian noise added to gradients.
        momenta: Optional third axis: SGD momentum / Adam β1 values in [0, 1) applied for the window
            (``None``: no momentum axis, the optimizer's own momentum is left alone).

    Example:
        >>> grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005))
        >>> grid.index(2, 1), grid.split(5), grid.values(5), grid.name(5)
        (5, (2, 1), (2.0, 0.005), 'lr2_n0p005')
        >>> CandidateGrid((0.5, 1.0), (0.0,), momenta=(0.0, 0.9)).candidate(3)
        Candidate(lr_multiplier=1.0, noise_std=0.0, momentum=0.9)
    """

    lr_multipliers: tuple[float, ...] = (0.5, 1.0, 2.0)
    noise_stds: tuple[float, ...] = (0.0, 0.005, 0.01)
    momenta: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "lr_multipliers", _validated_axis("lr_multipliers", self.lr_multipliers, allow_zero=False)
        )
        object.__setattr__(
            self, "noise_stds", _validated_axis("noise_stds", self.noise_stds, allow_zero=True)
        )
        if self.momenta is not None:
            values = tuple(self.momenta) if isinstance(self.momenta, Iterable) else self.momenta
            if not isinstance(values, tuple):
                raise ValueError(f"momenta must be a sequence of numbers in [0, 1), got {self.momenta!r}.")
            for m in values:
                check_momentum(m, "momenta values")
            object.__setattr__(self, "momenta", _validated_axis("momenta", values, allow_zero=True))

    @property
    def n_lr(self) -> int:
        return len(self.lr_multipliers)

    @property
    def n_noise(self) -> int:
        return len(self.noise_stds)

    @property
    def n_momentum(self) -> int:
        """Number of momentum candidates (1 without the momentum axis)."""
        return 1 if self.momenta is None else len(self.momenta)

    @property
    def has_momentum(self) -> bool:
        return self.momenta is not None

    @property
    def shape(self) -> tuple[int, ...]:
        """Candidates per axis: ``(n_lr, n_noise)`` or ``(n_lr, n_noise, n_momentum)``."""
        return (self.n_lr, self.n_noise) + ((self.n_momentum,) if self.has_momentum else ())

    @property
    def size(self) -> int:
        return self.n_lr * self.n_noise * self.n_momentum

    def __len__(self) -> int:
        return self.size

    def index(self, lr_idx: int, noise_idx: int, momentum_idx: int = 0) -> int:
        """Mode id of the cell ``(lr_idx, noise_idx[, momentum_idx])``."""
        if not (0 <= lr_idx < self.n_lr and 0 <= noise_idx < self.n_noise and 0 <= momentum_idx < self.n_momentum):
            raise ValueError(
                f"(lr_idx, noise_idx, momentum_idx) = ({lr_idx}, {noise_idx}, {momentum_idx}) is outside the grid "
                f"[0, {self.n_lr}) × [0, {self.n_noise}) × [0, {self.n_momentum})."
            )
        return (lr_idx * self.n_noise + noise_idx) * self.n_momentum + momentum_idx

    def indices(self, action: int) -> tuple[int, int, int]:
        """``(lr_idx, noise_idx, momentum_idx)`` of a mode id (``momentum_idx`` is 0 without the axis)."""
        action = self.validate_action(action)
        pair, momentum_idx = divmod(action, self.n_momentum)
        lr_idx, noise_idx = divmod(pair, self.n_noise)
        return lr_idx, noise_idx, momentum_idx

    def split(self, action: int) -> tuple[int, int]:
        """``(lr_idx, noise_idx)`` of a mode id."""
        return self.indices(action)[:2]

    def values(self, action: int) -> tuple[float, float]:
        """``(lr_multiplier, noise_std)`` of a mode id."""
        lr_idx, noise_idx = self.split(action)
        return self.lr_multipliers[lr_idx], self.noise_stds[noise_idx]

    def candidate(self, action: int) -> Candidate:
        """The :class:`Candidate` of a mode id."""
        lr_idx, noise_idx, momentum_idx = self.indices(action)
        momentum = None if self.momenta is None else self.momenta[momentum_idx]
        return Candidate(self.lr_multipliers[lr_idx], self.noise_stds[noise_idx], momentum)

    def name(self, action: int) -> str:
        return self.candidate(action).name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.name(a) for a in range(self.size))

    def index_of(self, lr_multiplier: float, noise_std: float, momentum: float | None = None) -> int:
        """Mode id of the cell with these exact values."""
        if lr_multiplier not in self.lr_multipliers:
            raise ValueError(f"lr_multiplier {lr_multiplier} is not in the grid; choose one of {self.lr_multipliers}.")
        if noise_std not in self.noise_stds:
            raise ValueError(f"noise_std {noise_std} is not in the grid; choose one of {self.noise_stds}.")
        momentum_idx = 0
        if self.momenta is not None:
            if momentum not in self.momenta:
                raise ValueError(f"momentum {momentum} is not in the grid; choose one of {self.momenta}.")
            momentum_idx = self.momenta.index(momentum)
        return self.index(self.lr_multipliers.index(lr_multiplier), self.noise_stds.index(noise_std), momentum_idx)

    def nearest(self, lr_multiplier: float, noise_std: float, momentum: float | None = None) -> int:
        """Mode id closest to a candidate (log distance on the lr axis, linear on the others)."""
        lr_idx = min(range(self.n_lr), key=lambda i: abs(math.log(self.lr_multipliers[i] / lr_multiplier)))
        noise_idx = min(range(self.n_noise), key=lambda i: abs(self.noise_stds[i] - noise_std))
        momentum_idx = 0
        if self.momenta is not None and momentum is not None:
            momenta = self.momenta
            momentum_idx = min(range(len(momenta)), key=lambda i: abs(momenta[i] - momentum))
        return self.index(lr_idx, noise_idx, momentum_idx)

    def positions(self, candidate: Candidate) -> tuple[float, float, float]:
        """Fractional cell index of ``candidate`` on each axis (an exact index at a grid value).

        Linear between neighbouring cells (in log for the lr axis); the momentum position is 0
        without the axis. Observation features scale these like indices, so grid agents see
        exactly the values they always saw.
        """
        momentum = 0.0
        if self.momenta is not None and candidate.momentum is not None:
            momentum = _position(self.momenta, candidate.momentum, log=False)
        return (
            _position(self.lr_multipliers, candidate.lr_multiplier, log=True),
            _position(self.noise_stds, candidate.noise_std, log=False),
            momentum,
        )

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """The declared range of every axis for exact candidates: the grid's own extent."""
        axes = {"lr_multiplier": self.lr_multipliers, "noise_std": self.noise_stds}
        if self.momenta is not None:
            axes["momentum"] = self.momenta
        return {name: (min(values), max(values)) for name, values in axes.items()}

    def check_candidate(self, candidate: Any) -> Candidate:
        """Return ``candidate`` if it is a :class:`Candidate` inside :attr:`ranges`, else raise a ``ValueError``.

        The momentum must be given exactly when the grid has a momentum axis.
        """
        if not isinstance(candidate, Candidate):
            raise ValueError(f"Expected a Candidate, got {candidate!r} of type {type(candidate).__name__}.")
        if self.momenta is None and candidate.momentum is not None:
            raise ValueError(
                f"Candidate momentum {candidate.momentum} given, but the grid has no momentum axis; "
                "declare one with grid={'momenta': [...]} or pass momentum=None."
            )
        if self.momenta is not None and candidate.momentum is None:
            low, high = self.ranges["momentum"]
            raise ValueError(f"The grid has a momentum axis: the candidate needs a momentum in [{low}, {high}].")
        for axis, (low, high) in self.ranges.items():
            value = getattr(candidate, axis)
            if not low <= value <= high:
                raise ValueError(
                    f"Candidate {axis} {value!r} is outside the grid's range [{low}, {high}]; "
                    f"widen the grid's {_axis_key(axis)} to allow it."
                )
        return candidate

    def validate_action(self, action: Any) -> int:
        """Return ``action`` as a Python int or raise a ``ValueError`` that names the valid range."""
        if hasattr(action, "shape") and getattr(action, "shape", None) == ():
            action = action.item()  # 0-d numpy/torch scalars, as SB3 and Gymnasium pass them
        if isinstance(action, bool) or not isinstance(action, int | np.integer):
            raise ValueError(
                f"Action must be an integer mode id in [0, {self.size}) or a Candidate, got {action!r} "
                f"of type {type(action).__name__}."
            )
        action = int(action)
        if not 0 <= action < self.size:
            raise ValueError(f"Action {action} is out of range; valid mode ids are 0..{self.size - 1} ({self.names}).")
        return action

    def to_dict(self) -> dict[str, list[float]]:
        data = {"lr_multipliers": list(self.lr_multipliers), "noise_stds": list(self.noise_stds)}
        if self.momenta is not None:
            data["momenta"] = list(self.momenta)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateGrid:
        if not isinstance(data, Mapping):
            raise TypeError(f"grid must be a mapping (a JSON object) with keys {list(_GRID_KEYS)}, got {type(data).__name__} {str(data)[:60]}.")
        unknown = set(data) - set(_GRID_KEYS)
        if unknown:
            raise KeyError(f"Unknown grid keys {sorted(unknown)}; valid keys are {list(_GRID_KEYS)}.")
        for key, value in data.items():
            if value is not None and not isinstance(value, list | tuple):
                raise TypeError(f"grid {key} must be a list of numbers, got {type(value).__name__} {str(value)[:60]}; "
                                f"write e.g. {key}=[0.5, 1.0, 2.0].")
        return cls(**{k: None if v is None else tuple(v) for k, v in data.items()})


def _axis_key(axis: str) -> str:
    return {"lr_multiplier": "lr_multipliers", "noise_std": "noise_stds", "momentum": "momenta"}[axis]
