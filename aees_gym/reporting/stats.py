"""Statistics for honest result tables (rliable-style, numpy/scipy only).

Deep-RL style comparisons are usually run with a handful of seeds, where a bare
``mean ± std`` is misleading: the mean is dragged around by a single outlier run
and the standard deviation says nothing about how uncertain the *aggregate* is.
Following Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (the ``rliable`` library, re-implemented here because it
cannot be installed), this module provides:

* :func:`mean_std` -- the classic summary (sample std, ``ddof=1``), for familiarity.
* :func:`iqm` -- the interquartile mean: the mean of the middle 50% of all runs
  (``scipy.stats.trim_mean(x, 0.25)`` over the flattened scores). It is robust
  to outlier seeds like the median, yet uses far more of the data, so it has a
  much smaller variance than the median with few seeds.
* :func:`stratified_bootstrap_ci` -- a percentile confidence interval for any
  aggregate statistic. Runs are resampled with replacement *within each task*
  (stratified), so every bootstrap sample keeps the per-task run counts and the
  interval reflects seed-to-seed variability, not task mixing.
* :func:`probability_of_improvement` / :func:`probability_of_improvement_ci` --
  ``P(X > Y) + 0.5 P(X = Y)`` over all run pairs (the Mann-Whitney U statistic
  divided by ``n*m``), averaged over tasks, with a stratified bootstrap CI. It
  answers "how likely is method X to beat method Y on a run?" independently of
  the size of the improvement.
* :func:`paired_probability_of_improvement_ci` -- the same probability when the runs of X and Y
  come in pairs (both methods ran the same instance: task, settings and seed): the fraction of
  pairs X wins (ties half), averaged over tasks, with a CI that resamples *pairs* within each task.
  Pairing removes the instance-to-instance variance that the unpaired version counts as noise.
* :func:`steps_to_target` -- sample efficiency: first step a curve reaches a target.
* :func:`normalized_score` -- min/max normalisation so tasks share one scale.

Built on these: :mod:`aees_gym.reporting.effect_size` (how far apart the best and the worst of
several cells are in units of seed noise) and :mod:`aees_gym.reporting.profiles` (performance
profiles over tasks).

All functions reject empty and NaN (or infinite) inputs with a ``ValueError``
instead of silently propagating NaN into a table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from aees_gym.envs.metrics import steps_to_target  # noqa: F401  (part of the statistics API)


def _scipy_stats():  # noqa: ANN202 - scipy stays out of `import aees_gym` (the env needs none of it)
    try:
        from scipy import stats
    except ImportError as exc:
        raise ImportError("Result statistics need scipy; install the 'plot' extra: pip install 'aees-gym[plot]'.") from exc
    return stats


ArrayLike = np.ndarray | list | tuple | float | int
ScoresByTask = Mapping[str, ArrayLike] | ArrayLike
Statistic = Callable[[np.ndarray], float]

__all__ = [
    "mean_std", "iqm", "stratified_bootstrap_ci", "probability_of_improvement",
    "probability_of_improvement_ci", "paired_probability_of_improvement_ci", "steps_to_target", "normalized_score",
]


def _clean(x: ArrayLike, name: str = "x") -> np.ndarray:
    """Return ``x`` as a flat float array, rejecting empty / non-finite input."""
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one value is required")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(arr).sum())} of {arr.size} values)")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _strata(scores: ScoresByTask, name: str = "scores") -> dict[str, np.ndarray]:
    """Split scores into per-task 1-D arrays (sorted task order for determinism).

    A mapping gives one stratum per key; a 1-D array is a single stratum; a 2-D
    array follows the rliable convention ``(n_runs, n_tasks)`` (one task per column).
    """
    if isinstance(scores, Mapping):
        if len(scores) == 0:
            raise ValueError(f"{name} has no tasks")
        return {str(k): _clean(scores[k], f"{name}[{k!r}]") for k in sorted(scores, key=str)}
    arr = np.asarray(scores, dtype=float)
    if arr.ndim <= 1:
        return {"0": _clean(arr, name)}
    if arr.ndim == 2:
        return {str(j): _clean(arr[:, j], f"{name}[:, {j}]") for j in range(arr.shape[1])}
    raise ValueError(f"{name} must be a mapping, a 1-D array or a 2-D (n_runs, n_tasks) array")


def _two_strata(x_by_task: ScoresByTask, y_by_task: ScoresByTask) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The strata of two methods' scores, which must cover the same tasks."""
    xs, ys = _strata(x_by_task, "x_by_task"), _strata(y_by_task, "y_by_task")
    if list(xs) != list(ys):
        raise ValueError(f"x and y must cover the same tasks, got {sorted(xs)} vs {sorted(ys)}")
    return xs, ys


def _check_ci_args(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _percentile_ci(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.percentile(boot, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(low), float(high)


def mean_std(x: ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of the flattened values.

    Args:
        x: Scores (any shape; flattened).

    Returns:
        ``(mean, std)``; ``std`` is ``0.0`` for a single value.

    Raises:
        ValueError: If ``x`` is empty or contains NaN/inf.
    """
    arr = _clean(x)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return float(np.mean(arr)), std


def iqm(x: ArrayLike) -> float:
    """Interquartile mean: mean of the middle 50% of the flattened scores.

    Identical to rliable's ``scipy.stats.trim_mean(x, proportiontocut=0.25,
    axis=None)``: ``int(0.25 * n)`` values are cut from each end.

    Args:
        x: Scores (any shape; flattened).

    Returns:
        The interquartile mean.

    Raises:
        ValueError: If ``x`` is empty or contains NaN/inf.
    """
    return float(_scipy_stats().trim_mean(_clean(x), proportiontocut=0.25))


# Statistics with a known row-wise (axis=1) form, used to skip the Python loop.
_ROWWISE: dict[object, Callable[[np.ndarray], np.ndarray]] = {
    iqm: lambda a: _scipy_stats().trim_mean(a, proportiontocut=0.25, axis=1),
    np.mean: lambda a: np.mean(a, axis=1),
    np.median: lambda a: np.median(a, axis=1),
}


def stratified_bootstrap_ci(
    scores_by_task: ScoresByTask,
    statistic: Statistic = iqm,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and stratified-bootstrap percentile CI of an aggregate statistic.

    Each bootstrap replicate resamples, with replacement, ``n_t`` runs from each
    task ``t`` independently, concatenates the tasks (in sorted-key order) and
    applies ``statistic`` to the concatenation. Resampling is fully vectorised;
    ``statistic`` is evaluated row-wise without a Python loop for :func:`iqm`,
    ``np.mean`` and ``np.median``, and per replicate otherwise.

    Args:
        scores_by_task: ``{task: scores(n_runs)}``, a 1-D array (one stratum) or a
            2-D ``(n_runs, n_tasks)`` array (one stratum per column).
        statistic: Maps the concatenated 1-D scores to a float. Defaults to IQM.
        n_boot: Number of bootstrap replicates.
        confidence: Two-sided confidence level in (0, 1).
        seed: Seed for ``numpy.random.default_rng``; results are deterministic.

    Returns:
        ``(point, low, high)`` where ``point`` is the statistic on the data.

    Raises:
        ValueError: On empty/NaN input or invalid ``n_boot``/``confidence``.
    """
    _check_ci_args(n_boot, confidence)
    strata = _strata(scores_by_task, "scores_by_task")
    rng = np.random.default_rng(seed)
    point = float(statistic(np.concatenate(list(strata.values()))))
    samples = np.concatenate(
        [arr[rng.integers(0, arr.size, size=(int(n_boot), arr.size))] for arr in strata.values()],
        axis=1,
    )
    rowwise = _ROWWISE.get(statistic)
    boot = np.asarray(rowwise(samples) if rowwise else [statistic(r) for r in samples], dtype=float)
    if np.isnan(boot).any():
        raise ValueError("statistic returned NaN on a bootstrap sample")
    low, high = _percentile_ci(boot, confidence)
    return point, low, high


def _poi_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise ``P(X > Y) + 0.5 P(X = Y)`` for ``x (B, n)``, ``y (B, m)`` via average ranks."""
    n, m = x.shape[1], y.shape[1]
    ranks = _scipy_stats().rankdata(np.concatenate([x, y], axis=1), method="average", axis=1)
    u = ranks[:, :n].sum(axis=1) - n * (n + 1) / 2.0
    return u / (n * m)


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """``P(X > Y) + 0.5 * P(X = Y)`` over all ``n * m`` pairs of runs.

    Equals the Mann-Whitney U statistic of ``x`` divided by ``n * m``.
    Args:
        x: Scores of method X (flattened).
        y: Scores of method Y (flattened).

    Returns:
        Probability in ``[0, 1]``; ``0.5`` means no preference.

    Raises:
        ValueError: If either input is empty or contains NaN/inf.
    """
    xa, ya = _clean(x, "x"), _clean(y, "y")
    return float(_poi_rows(xa[None, :], ya[None, :])[0])


def probability_of_improvement_ci(
    x_by_task: ScoresByTask,
    y_by_task: ScoresByTask,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Task-averaged probability of improvement with a stratified-bootstrap CI.

    The point estimate is the mean over tasks of
    :func:`probability_of_improvement` on that task's runs. Each bootstrap
    replicate resamples the runs of X and of Y independently within each task.

    Args:
        x_by_task: Scores of method X, same layout as in :func:`stratified_bootstrap_ci`.
        y_by_task: Scores of method Y, with the same tasks as ``x_by_task``.
        n_boot: Number of bootstrap replicates.
        confidence: Two-sided confidence level in (0, 1).
        seed: Seed for ``numpy.random.default_rng``.

    Returns:
        ``(point, low, high)``.

    Raises:
        ValueError: On empty/NaN input, mismatched tasks or invalid CI arguments.
    """
    _check_ci_args(n_boot, confidence)
    xs, ys = _two_strata(x_by_task, y_by_task)
    rng = np.random.default_rng(seed)
    points, boots = [], []
    for task in xs:
        xa, ya = xs[task], ys[task]
        points.append(_poi_rows(xa[None, :], ya[None, :])[0])
        xb = xa[rng.integers(0, xa.size, size=(int(n_boot), xa.size))]
        yb = ya[rng.integers(0, ya.size, size=(int(n_boot), ya.size))]
        boots.append(_poi_rows(xb, yb))
    boot = np.mean(boots, axis=0)
    low, high = _percentile_ci(boot, confidence)
    return float(np.mean(points)), low, high


def paired_probability_of_improvement_ci(
    x_by_task: ScoresByTask,
    y_by_task: ScoresByTask,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Task-averaged ``P(X > Y) + 0.5 P(X = Y)`` over *paired* runs, with a stratified-bootstrap CI.

    ``x_by_task[t][i]`` and ``y_by_task[t][i]`` are the two methods' scores on the same instance
    (same task, settings and seed), so only the ``n_t`` matched pairs are compared, not all
    ``n_t * n_t`` combinations. Each bootstrap replicate resamples pair indices with replacement
    within each task (the pair stays together) and averages the per-task win rates.

    Args:
        x_by_task: Scores of method X (larger is better), same layout as :func:`stratified_bootstrap_ci`.
        y_by_task: Scores of method Y with the same tasks and, per task, the same length and order.
        n_boot: Number of bootstrap replicates.
        confidence: Two-sided confidence level in (0, 1).
        seed: Seed for ``numpy.random.default_rng``.

    Returns:
        ``(point, low, high)`` in ``[0, 1]``.

    Raises:
        ValueError: On empty/NaN input, mismatched tasks or pair counts, or invalid CI arguments.
    """
    _check_ci_args(n_boot, confidence)
    xs, ys = _two_strata(x_by_task, y_by_task)
    rng = np.random.default_rng(seed)
    points, boots = [], []
    for task in xs:
        xa, ya = xs[task], ys[task]
        if xa.size != ya.size:
            raise ValueError(f"task {task!r}: {xa.size} scores of x but {ya.size} of y; paired runs come in equal numbers")
        wins = np.where(xa > ya, 1.0, np.where(xa == ya, 0.5, 0.0))
        points.append(wins.mean())
        boots.append(wins[rng.integers(0, wins.size, size=(int(n_boot), wins.size))].mean(axis=1))
    low, high = _percentile_ci(np.mean(boots, axis=0), confidence)
    return float(np.mean(points)), low, high


def normalized_score(x: ArrayLike, low: float, high: float) -> float | np.ndarray:
    """Min/max normalisation ``(x - low) / (high - low)``.

    Args:
        x: Raw score(s); a scalar returns a float, an array an array of the same shape.
        low: Score mapped to 0 (e.g. a random policy).
        high: Score mapped to 1 (e.g. a reference method).

    Returns:
        The normalised score(s).

    Raises:
        ValueError: If ``high == low``, or any input is empty or NaN/inf.
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"low and high must be finite, got low={low!r}, high={high!r}")
    if high == low:
        raise ValueError(f"normalized_score needs high != low (both are {low!r}); range is zero")
    arr = np.asarray(x, dtype=float)
    _clean(arr, "x")
    out = (arr - low) / (high - low)
    return float(out) if out.ndim == 0 else out

