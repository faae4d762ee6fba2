"""Performance profiles (Dolan & Moré 2002), the time-to-result summary of AlgoPerf.

For each task, each method's time to a target (optimizer steps) is divided by the fastest method's
time on that task; ``rho_m(tau)`` is the share of tasks on which method ``m`` is within ``tau``
times the fastest. A method that never reaches the target on a task has ratio ``inf`` there, so
``rho_m(inf)`` is the share of tasks it reaches at all, and a method fastest everywhere has
``rho_m(1) = 1``.
"""

from __future__ import annotations

import numpy as np

from aees_gym.reporting.stats import ArrayLike

__all__ = ["performance_ratios", "performance_profile", "profile_taus"]


def performance_ratios(times: ArrayLike) -> np.ndarray:
    """Ratio of each method's time to the fastest method's time, per task.

    Args:
        times: ``(n_methods, n_tasks)`` times to a target (optimizer steps); ``np.inf`` = never
            reached. NaN is an error.

    Returns:
        ``(n_methods, n_tasks)`` ratios ``t / min_methods t`` (``>= 1``); ``inf`` where the method
        never reached the target, and on a task that no method reached. A fastest time of 0 gives
        ratio 1 to the methods at 0 and ``inf`` to the others.
    """
    t = np.asarray(times, dtype=float)
    if t.ndim != 2 or t.size == 0:
        raise ValueError(f"times must be a non-empty (n_methods, n_tasks) array, got shape {t.shape}")
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("times must be >= 0 or inf (never reached), without NaN")
    best = t.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(best > 0, t / np.where(best > 0, best, 1.0), np.where(t == 0, 1.0, np.inf))
    ratios[:, ~np.isfinite(best)] = np.inf
    return ratios


def performance_profile(times: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Dolan-Moré profile ``rho_m(tau) = #{tasks: ratio_m <= tau} / n_tasks`` for each method.

    ``rho`` is non-decreasing in ``tau``; ``rho_m(1)`` is the share of tasks on which ``m`` is
    (one of) the fastest, and ``rho_m(inf)`` the share of tasks it reaches at all.

    Args:
        times: As in :func:`performance_ratios`.
        taus: Ratios ``>= 1`` to evaluate at (``np.inf`` allowed).

    Returns:
        ``(n_methods, len(taus))`` shares in ``[0, 1]``.
    """
    tau = np.asarray(taus, dtype=float).ravel()
    if tau.size == 0 or np.isnan(tau).any() or (tau < 1).any():
        raise ValueError("taus must be a non-empty array of ratios >= 1 (inf allowed)")
    ratios = performance_ratios(times)
    within = np.isfinite(ratios)[:, :, None] & (ratios[:, :, None] <= tau[None, None, :])  # never reached: not even at inf
    return np.mean(within, axis=1)


def profile_taus(ratios: ArrayLike, n: int = 200) -> np.ndarray:
    """A log-spaced grid from 1 to a little beyond the largest finite ratio (at least to 2)."""
    r = np.asarray(ratios, dtype=float)
    finite = r[np.isfinite(r)]
    top = max(2.0, 1.1 * float(finite.max())) if finite.size else 2.0
    return np.geomspace(1.0, top, int(n))
