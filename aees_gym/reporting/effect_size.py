"""How far apart the best and the worst of several cells are, in units of seed noise.

A *cell* is one fixed setting (e.g. agent ``fixed`` at one learning-rate multiplier) with the
scores of its runs over seeds. When the best and the worst fixed cell of a task are many seed-noise
units apart, the choice of setting matters there and a controller can win or lose; when they are
within noise, every controller must tie. :func:`standardized_spread` measures this as Hedges' g,
:func:`standardized_spread_ci` adds a stratified bootstrap CI and :func:`spread_permutation_p`
tests it against "all cells have the same distribution".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from aees_gym.reporting.stats import ArrayLike, _check_ci_args, _clean, _percentile_ci

__all__ = ["Spread", "hedges_correction", "standardized_spread", "standardized_spread_ci", "spread_permutation_p"]


def hedges_correction(df: int) -> float:
    """Exact small-sample factor ``J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))`` of Hedges' g.

    ``J`` removes the upward bias of ``d = difference / pooled SD`` (``J(8) ≈ 0.903``,
    ``J → 1`` as ``df`` grows; ``1 - 3 / (4 df - 1)`` is the usual approximation).

    Raises:
        ValueError: If ``df < 2`` (one degree of freedom gives ``J = 0``: no usable noise estimate).
    """
    if int(df) != df or df < 2:
        raise ValueError(f"Hedges' correction needs df >= 2 (runs minus cells), got {df!r}")
    half = df / 2.0
    return float(np.exp(math.lgamma(half) - math.lgamma(half - 0.5)) / np.sqrt(half))


@dataclass(frozen=True)
class Spread:
    """Best-versus-worst cell in units of seed noise (see :func:`standardized_spread`)."""

    high: str
    low: str
    difference: float
    pooled_sd: float
    df: int
    g: float


def _cells(cells: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    if not isinstance(cells, Mapping) or len(cells) < 2:
        raise ValueError("a spread needs a mapping of at least 2 cells to their run scores")
    return {str(k): _clean(cells[k], f"cells[{k!r}]") for k in sorted(cells, key=str)}


def _smd(diff: np.ndarray, ss: np.ndarray, df: int) -> np.ndarray:
    """``J(df) * diff / sqrt(ss / df)``; a zero SD gives 0 for no difference and ±inf otherwise."""
    sd = np.sqrt(ss / df)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.sign(diff) * np.inf)
    return hedges_correction(df) * np.where(diff == 0, 0.0, g)


def standardized_spread(cells: Mapping[str, ArrayLike]) -> Spread:
    """Hedges' g of the cell with the highest mean against the cell with the lowest mean.

    ``g = J(df) * (mean_high - mean_low) / s``, where ``s`` is the pooled within-cell standard
    deviation over *all* cells, ``s² = Σ_i Σ_runs (x - mean_i)² / df`` with ``df = N - k``
    (``N`` runs, ``k`` cells): with two cells this is exactly Hedges' g; with more, the seed noise
    is estimated from every cell. ``g >= 0``; it is ``inf`` when runs never vary but cells differ.
    Picking the extreme pair out of ``k`` cells inflates ``g`` under no real difference, which is
    why :func:`spread_permutation_p` tests it against the same selection on shuffled runs.

    Raises:
        ValueError: With fewer than 2 cells, empty/NaN cells, or ``df < 2``.
    """
    data = _cells(cells)
    means = {k: float(np.mean(v)) for k, v in data.items()}
    high, low = max(means, key=means.__getitem__), min(means, key=means.__getitem__)
    df = sum(v.size for v in data.values()) - len(data)
    ss = sum(float(np.sum((v - means[k]) ** 2)) for k, v in data.items())
    if df < 2:
        raise ValueError(f"a spread needs at least {len(data) + 2} runs over the {len(data)} cells (df = runs - cells >= 2)")
    diff = means[high] - means[low]
    g = float(_smd(np.array(diff), np.array(ss), df))
    return Spread(high, low, diff, math.sqrt(ss / df), df, g)


def _boot_ss_means(data: dict[str, np.ndarray], rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    # A resample's within-cell sum of squares is on average (n-1)/n of the data's (repeated runs);
    # rescaling by n/(n-1) keeps the bootstrap SD unbiased, which brings the CI's coverage closer to
    # nominal with few seeds (simulated: about 0.85-0.9 at 5 runs per cell, 0.89-0.93 at 10).
    means, ss = {}, np.zeros(n)
    for k, v in data.items():
        sample = v[rng.integers(0, v.size, size=(n, v.size))]
        means[k] = sample.mean(axis=1)
        ss += np.sum((sample - means[k][:, None]) ** 2, axis=1) * (v.size / max(v.size - 1, 1))
    return means, ss


def standardized_spread_ci(
    cells: Mapping[str, ArrayLike], n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """:func:`standardized_spread`'s ``g`` with a stratified percentile bootstrap CI.

    Each replicate resamples the runs of every cell with replacement (within the cell) and
    recomputes ``g`` for the *same* pair (the highest and lowest cell of the data), so a replicate
    may be negative when the pair's order is uncertain.

    Returns:
        ``(g, low, high)``.
    """
    _check_ci_args(n_boot, confidence)
    spread = standardized_spread(cells)
    data = _cells(cells)
    means, ss = _boot_ss_means(data, np.random.default_rng(seed), int(n_boot))
    boot = _smd(means[spread.high] - means[spread.low], ss, spread.df)
    if np.isfinite(boot).all():
        low, high = _percentile_ci(boot, confidence)
    else:  # interpolating next to an infinite replicate would give NaN; take order statistics
        alpha = 1.0 - confidence
        low, high = (float(q) for q in np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)], method="inverted_cdf"))
    return spread.g, low, high


def spread_permutation_p(cells: Mapping[str, ArrayLike], n_perm: int = 2000, seed: int = 0) -> float:
    """Permutation p-value of :func:`standardized_spread` under "every cell has the same distribution".

    Each permutation shuffles all runs across the cells (keeping the cell sizes), picks the extreme
    pair again and recomputes ``g``; ``p = (1 + #{g_perm >= g}) / (1 + n_perm)``. The selection of
    the extreme pair is part of the null distribution, so ``p`` is not inflated by it.
    """
    if int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    observed = standardized_spread(cells)
    data = _cells(cells)
    pooled = np.concatenate(list(data.values()))
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((int(n_perm), pooled.size)), axis=1)
    shuffled = pooled[perms]
    bounds = np.cumsum([0] + [v.size for v in data.values()])
    means = np.stack([shuffled[:, a:b].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], axis=1)
    ss = sum(np.sum((shuffled[:, a:b] - means[:, [i]]) ** 2, axis=1) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)))
    g = _smd(means.max(axis=1) - means.min(axis=1), ss, observed.df)
    exceed = int(np.sum(g >= observed.g - 1e-12 * max(1.0, abs(observed.g)))) if np.isfinite(observed.g) else int(np.sum(np.isinf(g)))
    return (1 + exceed) / (1 + int(n_perm))
