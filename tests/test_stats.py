"""Tests for aees_gym.reporting.stats, effect_size and profiles (hand-computed cases + properties)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from aees_gym.reporting.effect_size import hedges_correction, spread_permutation_p, standardized_spread, standardized_spread_ci
from aees_gym.reporting.profiles import performance_profile, performance_ratios, profile_taus
from aees_gym.reporting.stats import (
    iqm,
    mean_std,
    normalized_score,
    probability_of_improvement,
    probability_of_improvement_ci,
    steps_to_target,
    stratified_bootstrap_ci,
)

# --------------------------------------------------------------------- mean_std


def test_mean_std_hand_computed() -> None:
    # mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5; /3 -> std sqrt(5/3)
    m, s = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert s == pytest.approx(math.sqrt(5.0 / 3.0))


def test_mean_std_single_value_and_2d() -> None:
    assert mean_std([7.0]) == (7.0, 0.0)
    assert mean_std(np.array([[1.0, 3.0], [5.0, 7.0]]))[0] == 4.0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], np.array([])])
def test_mean_std_rejects_empty_and_nan(bad) -> None:
    with pytest.raises(ValueError, match="empty|NaN"):
        mean_std(bad)


# -------------------------------------------------------------------------- iqm


def test_iqm_hand_computed() -> None:
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean(3, 4, 5, 6)
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter
    # outlier robustness: a huge run among 8 is trimmed away entirely
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1e9]) == 4.5
    assert iqm([3.0]) == 3.0


def test_iqm_matches_scipy_trim_mean_random() -> None:
    rng = np.random.default_rng(123)
    for n in [1, 2, 3, 5, 7, 10, 11, 33, 100]:
        x = rng.standard_cauchy(size=n)
        assert iqm(x) == pytest.approx(sps.trim_mean(x, proportiontocut=0.25))
    x2 = rng.normal(size=(6, 4))  # flattened, like rliable's axis=None
    assert iqm(x2) == pytest.approx(sps.trim_mean(x2, 0.25, axis=None))


def test_iqm_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="empty"):
        iqm([])
    with pytest.raises(ValueError, match="NaN"):
        iqm([1.0, np.nan, 3.0])


# -------------------------------------------------------------- bootstrap CI


def test_bootstrap_ci_contains_point_and_is_deterministic() -> None:
    x = np.random.default_rng(0).normal(loc=1.0, size=30)
    point, low, high = stratified_bootstrap_ci(x, iqm, n_boot=1000, seed=5)
    assert point == pytest.approx(iqm(x))
    assert low < point < high
    assert stratified_bootstrap_ci(x, iqm, n_boot=1000, seed=5) == (point, low, high)
    assert stratified_bootstrap_ci(x, iqm, n_boot=1000, seed=6) != (point, low, high)


def test_bootstrap_ci_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(1)
    _, lo_s, hi_s = stratified_bootstrap_ci(rng.normal(size=10), np.mean, n_boot=1000)
    _, lo_l, hi_l = stratified_bootstrap_ci(rng.normal(size=1000), np.mean, n_boot=1000)
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)


def test_bootstrap_ci_constant_is_degenerate() -> None:
    assert stratified_bootstrap_ci(np.full(7, 0.3), iqm) == (0.3, 0.3, 0.3)
    assert stratified_bootstrap_ci({"a": [2.0] * 3, "b": [2.0] * 5}, np.mean) == (2.0, 2.0, 2.0)


def test_bootstrap_vectorised_path_matches_generic_path() -> None:
    data = {"a": np.arange(5.0), "b": np.arange(9.0) ** 2}
    fast = stratified_bootstrap_ci(data, iqm, n_boot=300, seed=3)
    slow = stratified_bootstrap_ci(data, lambda s: iqm(s), n_boot=300, seed=3)
    assert fast == pytest.approx(slow)
    fast_m = stratified_bootstrap_ci(data, np.mean, n_boot=300, seed=3)
    slow_m = stratified_bootstrap_ci(data, lambda s: float(np.mean(s)), n_boot=300, seed=3)
    assert fast_m == pytest.approx(slow_m)


def test_stratified_resampling_keeps_per_task_counts() -> None:
    # Task A lives in [0, 1), task B in [10, 11): a pooled (unstratified) bootstrap
    # would vary the number of A-values per sample; a stratified one never does.
    rng = np.random.default_rng(2)
    data = {"A": rng.uniform(0, 1, size=4), "B": rng.uniform(10, 11, size=9)}
    count_a = lambda s: float(np.sum(s < 5.0))  # noqa: E731
    assert stratified_bootstrap_ci(data, count_a, n_boot=500, seed=0) == (4.0, 4.0, 4.0)
    # same via the 2-D (n_runs, n_tasks) layout: each column is a stratum
    grid = np.column_stack([rng.uniform(0, 1, 6), rng.uniform(10, 11, 6)])
    assert stratified_bootstrap_ci(grid, count_a, n_boot=500) == (6.0, 6.0, 6.0)
    # sanity: the statistic itself is not constant under pooled resampling
    pooled = np.concatenate(list(data.values()))
    counts = [count_a(rng.choice(pooled, pooled.size)) for _ in range(200)]
    assert len(set(counts)) > 1


def test_bootstrap_ci_argument_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        stratified_bootstrap_ci([], iqm)
    with pytest.raises(ValueError, match="NaN"):
        stratified_bootstrap_ci({"a": [1.0], "b": [np.nan]}, iqm)
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci([1.0, 2.0], iqm, confidence=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        stratified_bootstrap_ci([1.0, 2.0], iqm, n_boot=0)
    with pytest.raises(ValueError, match="no tasks"):
        stratified_bootstrap_ci({}, iqm)


# ----------------------------------------------------- probability of improvement


def test_poi_hand_computed() -> None:
    # pairs: (1>0)=1, (1>3)=0, (2>0)=1, (2>3)=0 -> 2/4
    assert probability_of_improvement([1, 2], [0, 3]) == 0.5
    # pairs: (1=1)=.5, (1=1)=.5, (2>1)=1, (2>1)=1 -> 3/4
    assert probability_of_improvement([1, 2], [1, 1]) == 0.75
    # pairs vs [2]: (1<2)=0, (2=2)=.5, (3>2)=1 -> 1.5/3
    assert probability_of_improvement([1, 2, 3], [2]) == 0.5
    # (5>1)=1, (5>2)=1, (5=5)=.5 -> 2.5/3
    assert probability_of_improvement([5], [1, 2, 5]) == pytest.approx(2.5 / 3)
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0


def test_poi_matches_mann_whitney() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 5, 12).astype(float), rng.integers(0, 5, 9).astype(float)
    u = sps.mannwhitneyu(x, y).statistic
    assert probability_of_improvement(x, y) == pytest.approx(u / (12 * 9))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=15),
    st.lists(st.integers(-5, 5), min_size=1, max_size=15),
)
def test_poi_antisymmetry_property(x: list[int], y: list[int]) -> None:
    pxy = probability_of_improvement(x, y)
    pyx = probability_of_improvement(y, x)
    assert 0.0 <= pxy <= 1.0
    assert pxy + pyx == pytest.approx(1.0)
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    assert pxy == pytest.approx(brute)


def test_poi_ci_averages_over_tasks() -> None:
    x = {"t1": [3.0, 4.0], "t2": [1.0, 2.0]}
    y = {"t1": [1.0, 2.0], "t2": [3.0, 4.0]}
    point, low, high = probability_of_improvement_ci(x, y, n_boot=500, seed=0)
    assert point == 0.5  # (1.0 + 0.0) / 2
    assert low == high == 0.5  # disjoint ranges: every resample gives 1.0 and 0.0


def test_poi_ci_contains_point_and_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    x = {t: rng.normal(0.5, 1, 10) for t in "abc"}
    y = {t: rng.normal(0.0, 1, 10) for t in "abc"}
    res = probability_of_improvement_ci(x, y, n_boot=1000, seed=1)
    assert res[1] < res[0] < res[2]
    assert probability_of_improvement_ci(x, y, n_boot=1000, seed=1) == res
    assert res[0] == pytest.approx(np.mean([probability_of_improvement(x[t], y[t]) for t in x]))


def test_poi_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        probability_of_improvement([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        probability_of_improvement([1.0], [np.nan])
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement_ci({"a": [1.0]}, {"b": [1.0]})


# -------------------------------------------------------------- steps_to_target


def test_steps_to_target() -> None:
    steps = [0, 100, 200, 300]
    acc = [0.1, 0.5, 0.9, 0.95]
    assert steps_to_target(steps, acc, 0.5) == 100  # reaching exactly counts (>=)
    assert steps_to_target(steps, acc, 0.51) == 200
    assert steps_to_target(steps, acc, 0.0) == 0
    assert steps_to_target(steps, acc, 0.99) is None
    assert steps_to_target(steps, [0.1, 0.9, 0.2, 0.3], 0.8) == 100  # first hit, not last
    assert isinstance(steps_to_target(np.array(steps), np.array(acc), 0.5), int)


def test_steps_to_target_errors() -> None:
    with pytest.raises(ValueError, match="length"):
        steps_to_target([0, 1], [0.5], 0.1)
    with pytest.raises(ValueError, match="empty"):
        steps_to_target([], [], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        steps_to_target([0, 1], [0.5, np.nan], 0.1)
    with pytest.raises(ValueError, match="non-decreasing"):
        steps_to_target([5, 1], [0.5, 0.6], 0.1)


# ------------------------------------------------------------- normalized_score


def test_normalized_score() -> None:
    assert normalized_score(5.0, 0.0, 10.0) == 0.5
    assert normalized_score(-2.0, 0.0, 10.0) == -0.2  # not clipped
    assert normalized_score(0.0, 10.0, 0.0) == 1.0  # reversed range (lower is better)
    out = normalized_score(np.array([0.0, 2.0, 4.0]), 0.0, 4.0)
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
    assert isinstance(normalized_score(1, 0, 2), float)


def test_normalized_score_errors() -> None:
    with pytest.raises(ValueError, match="high != low"):
        normalized_score(1.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="NaN"):
        normalized_score([1.0, np.nan], 0.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        normalized_score([], 0.0, 1.0)


# ------------------------------------------------------------- effect size of a spread


def test_hedges_correction_exact_and_close_to_the_usual_approximation() -> None:
    assert hedges_correction(2) == pytest.approx(1.0 / math.sqrt(math.pi))  # Γ(1) / (1 · Γ(1/2))
    for df in (8, 18, 100):
        assert hedges_correction(df) == pytest.approx(1 - 3 / (4 * df - 1), abs=1e-3)
    with pytest.raises(ValueError, match="df >= 2"):
        hedges_correction(1)


def test_standardized_spread_hand_computed() -> None:
    # means 2, 4, 3; each cell's squared deviations sum to 2 → pooled SD sqrt(6 / (9 - 3)) = 1.
    s = standardized_spread({"a": [1, 2, 3], "b": [3, 4, 5], "c": [2, 3, 4]})
    assert (s.high, s.low, s.df) == ("b", "a", 6)
    assert s.difference == 2.0 and s.pooled_sd == pytest.approx(1.0)
    j6 = math.gamma(3) / (math.sqrt(3) * math.gamma(2.5))
    assert s.g == pytest.approx(j6 * 2.0)


def test_standardized_spread_of_two_cells_is_hedges_g() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(1, 1, 7), rng.normal(0, 1, 9)
    sp = math.sqrt(((7 - 1) * np.var(x, ddof=1) + (9 - 1) * np.var(y, ddof=1)) / (7 + 9 - 2))
    g = (np.mean(x) - np.mean(y)) / sp * hedges_correction(14)
    s = standardized_spread({"x": x, "y": y})
    assert s.g == pytest.approx(abs(g))


def test_standardized_spread_without_noise() -> None:
    assert standardized_spread({"a": [1.0, 1.0], "b": [1.0, 1.0]}).g == 0.0
    cells = {"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0]}
    assert standardized_spread(cells).g == math.inf
    g, low, high = standardized_spread_ci(cells, n_boot=200)
    assert g == low == high == math.inf  # no NaN from interpolating between infinities


def test_standardized_spread_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 cells"):
        standardized_spread({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="df = runs - cells >= 2"):
        standardized_spread({"a": [1.0, 2.0], "b": [3.0]})
    with pytest.raises(ValueError, match="NaN"):
        standardized_spread({"a": [1.0, np.nan], "b": [3.0, 4.0]})


@pytest.mark.parametrize("means", [[0.0, 1.0], [0.0, 0.5, 1.5]])
def test_standardized_spread_ci_covers_the_true_value(means) -> None:
    # Normal cells with SD 1: the true standardized spread is max(means) - min(means).
    rng = np.random.default_rng(11)
    true, trials = max(means) - min(means), 200
    covered = 0
    for t in range(trials):
        cells = {f"c{i}": rng.normal(m, 1.0, 10) for i, m in enumerate(means)}
        g, low, high = standardized_spread_ci(cells, n_boot=500, seed=t)
        assert low <= g <= high
        covered += low <= true <= high
    assert 0.85 <= covered / trials <= 0.99  # nominal 0.95; the percentile bootstrap is a little liberal at 10 runs


def test_spread_permutation_p_exact_and_null() -> None:
    # {1,2,3} vs {4,5,6}: of the 20 splits of six runs into 3 + 3, only this one and its mirror are as extreme.
    assert spread_permutation_p({"a": [1, 2, 3], "b": [4, 5, 6]}, n_perm=4000) == pytest.approx(2 / 20, abs=0.015)
    rng = np.random.default_rng(5)
    ps = [spread_permutation_p({c: rng.normal(0, 1, 5) for c in "abc"}, n_perm=200, seed=i) for i in range(150)]
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.11  # the pick of the extreme pair does not inflate the null


# ------------------------------------------------------------- performance profiles


def test_performance_ratios_and_profile_hand_computed() -> None:
    inf = math.inf
    times = [[100, 200, inf, 50], [200, 200, 300, inf], [inf, inf, inf, inf]]
    ratios = performance_ratios(times)
    np.testing.assert_array_equal(ratios, [[1, 1, inf, 1], [2, 1, 1, inf], [inf, inf, inf, inf]])
    rho = performance_profile(times, [1.0, 1.5, 2.0, inf])
    np.testing.assert_allclose(rho, [[0.75, 0.75, 0.75, 0.75], [0.5, 0.5, 0.75, 0.75], [0, 0, 0, 0]])
    # A task nobody reaches has no fastest method: it counts as unreached for all.
    np.testing.assert_array_equal(performance_ratios([[inf], [inf]]), [[inf], [inf]])
    np.testing.assert_array_equal(performance_ratios([[0.0], [5.0]]), [[1.0], [inf]])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.one_of(st.integers(1, 1000).map(float), st.just(math.inf)), min_size=4, max_size=4), min_size=1, max_size=5))
def test_performance_profile_properties(times: list[list[float]]) -> None:
    t = np.array(times)
    taus = profile_taus(performance_ratios(t))
    rho = performance_profile(t, np.append(taus, math.inf))
    assert np.all(np.diff(rho, axis=1) >= 0)  # monotone in tau
    np.testing.assert_allclose(rho[:, -1], np.isfinite(t).mean(axis=1))  # rho(inf) = share of tasks reached
    assert taus[0] == 1.0 and taus[-1] >= 2.0


def test_method_fastest_everywhere_has_rho_one_at_tau_one() -> None:
    rng = np.random.default_rng(2)
    times = rng.uniform(100, 1000, size=(4, 6))
    times[2] = times.min(axis=0) * 0.5
    assert performance_profile(times, [1.0])[2, 0] == 1.0
    assert all(performance_profile(times, [1.0])[i, 0] == 0.0 for i in (0, 1, 3))


def test_performance_profile_errors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        performance_ratios([[1.0, np.nan]])
    with pytest.raises(ValueError, match="n_methods, n_tasks"):
        performance_ratios([1.0, 2.0])
    with pytest.raises(ValueError, match=">= 1"):
        performance_profile([[1.0]], [0.5])


def test_paired_probability_of_improvement_counts_matched_pairs_only() -> None:
    from aees_gym.reporting.stats import paired_probability_of_improvement_ci

    # Unpaired, x=[1, 3] vs y=[2, 4] is 1/4 (3 > 2 only); paired (1 vs 2, 3 vs 4) x never wins.
    point, low, high = paired_probability_of_improvement_ci({"a": [1.0, 3.0]}, {"a": [2.0, 4.0]}, n_boot=200)
    assert (point, low, high) == (0.0, 0.0, 0.0)
    point, low, high = paired_probability_of_improvement_ci({"a": [1.0, 5.0], "b": [2.0]}, {"a": [1.0, 4.0], "b": [3.0]}, n_boot=500)
    assert point == pytest.approx((0.75 + 0.0) / 2) and 0.25 <= low <= point <= high <= 0.5
    with pytest.raises(ValueError, match="paired runs come in equal numbers"):
        paired_probability_of_improvement_ci({"a": [1.0]}, {"a": [1.0, 2.0]})
