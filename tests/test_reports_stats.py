"""The report's statistics against hand-computed answers."""

import math

import numpy as np
import pytest

from reports.stats import (
    holm,
    mcnemar_exact,
    mean_std_ci,
    paired_bootstrap,
    reps_to_bound_quantile,
    share_interval,
)


def test_holm_adjusts_in_step_down_order_and_skips_untested_pairs():
    # m = 3: 0.01 * 3, 0.02 * 2 (then the running max), 0.04 * 1 -> 0.04 stays 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, never below an earlier
    adjusted = holm([0.01, math.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.03)


def test_a_p95_needs_72_repetitions_to_be_bounded():
    assert reps_to_bound_quantile() == 72
    assert 0.95**72 <= 0.025 < 0.95**71
    assert reps_to_bound_quantile(0.5) == 6  # a median: the interval of summarize_times


def test_a_share_interval_covers_the_test_set_even_without_seed_spread():
    # 88% on 25,000 reviews: 1.96 * sqrt(0.88 * 0.12 / 25,000) = 0.403 points, each side
    lo, hi = share_interval(0.88, 0.0, 3, 25_000)
    assert (lo, hi) == pytest.approx((0.88 - 0.004028, 0.88 + 0.004028), abs=1e-6)
    assert share_interval(0.88, math.nan, 1, 25_000) == pytest.approx((lo, hi))  # one seed
    # with a spread over seeds the two half-widths add in quadrature
    seeds = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    lo, hi = share_interval(0.88, 0.01, 3, 25_000)
    assert hi - 0.88 == pytest.approx(math.hypot(seeds, 0.004028), abs=1e-6)
    assert share_interval(0.99, 0.05, 2, 100)[1] == 1.0  # cut to [0, 1]
    assert all(math.isnan(v) for v in share_interval(math.nan, math.nan, 0, 25_000))


def test_mcnemar_exact_small_table():
    # n = 7 discordant pairs, min = 1: 2 * (C(7,0) + C(7,1)) / 2**7 = 2 * 8 / 128.
    assert mcnemar_exact(1, 6) == pytest.approx(0.125, abs=1e-15)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125, abs=1e-15)
    # 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)


def test_mcnemar_exact_edges():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0  # the doubled tail passes 1 and is capped
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)


def test_mcnemar_exact_does_not_underflow_on_a_full_test_set():
    # 0.5**6200 underflows to 0 in floats; the exact computation must not.
    p = mcnemar_exact(3000, 3200)
    assert 0.0 < p < 0.05
    # The normal approximation with continuity correction is close at this size.
    z = (abs(3000 - 3200) - 1) / math.sqrt(6200)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.05)


@pytest.mark.parametrize(
    ("n", "t_975"),
    [(2, 12.706204736), (3, 4.302652730), (5, 2.776445105), (11, 2.228138852), (31, 2.042272456)],
)
def test_interval_half_width_uses_the_tabulated_t(n, t_975):
    # Values 0, 1, 0, 1, ...: the half-width is t(0.975, n-1) * s / sqrt(n), t from the tables.
    values = [float(i % 2) for i in range(n)]
    mean, std, lo, hi, count = mean_std_ci(values)
    assert count == n and std == pytest.approx(float(np.std(values, ddof=1)))
    assert (hi - lo) / 2 == pytest.approx(t_975 * std / math.sqrt(n), abs=1e-8)


def test_mean_std_ci_on_known_data():
    mean, std, lo, hi, n = mean_std_ci([1, 2, 3, 4, 5])
    half = 2.776445105 * math.sqrt(2.5 / 5)
    assert (mean, n) == (3.0, 5)
    assert std == pytest.approx(math.sqrt(2.5))
    assert lo == pytest.approx(3 - half, abs=1e-8)
    assert hi == pytest.approx(3 + half, abs=1e-8)


def test_mean_std_ci_one_value_has_no_spread_and_missing_values_are_dropped():
    mean, std, lo, hi, n = mean_std_ci([0.8, None, float("nan")])
    assert (mean, n) == (0.8, 1)
    assert math.isnan(std) and math.isnan(lo) and math.isnan(hi)
    assert mean_std_ci([])[4] == 0


def test_paired_bootstrap_identical_classifiers_is_a_tie():
    correct = np.random.default_rng(0).random((3, 500)) < 0.8
    diff, lo, hi, p = paired_bootstrap(correct, correct.copy(), n_boot=500)
    assert (diff, lo, hi, p) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_clear_difference():
    rng = np.random.default_rng(1)
    a = np.ones((2, 400), dtype=bool)
    b = rng.random((2, 400)) < 0.5
    diff, lo, hi, p = paired_bootstrap(a, b, n_boot=1000)
    assert diff == pytest.approx(1 - b.mean())
    assert 0 < lo < diff < hi
    assert p == pytest.approx(1 / 1001)


def test_paired_bootstrap_interval_width_matches_the_standard_error():
    # One seed: the bootstrap interval of a mean difference should be about +-1.96 standard errors.
    rng = np.random.default_rng(2)
    a = rng.random(5000) < 0.86
    b = rng.random(5000) < 0.84
    delta = a.astype(float) - b.astype(float)
    se = delta.std(ddof=1) / math.sqrt(delta.size)
    diff, lo, hi, _ = paired_bootstrap(a, b, n_boot=4000, seed=3)
    assert diff == pytest.approx(delta.mean())
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert lo < diff < hi


def test_paired_bootstrap_is_deterministic_and_checks_shapes():
    rng = np.random.default_rng(4)
    a, b = rng.random((2, 300)) < 0.7, rng.random((2, 300)) < 0.6
    assert paired_bootstrap(a, b, n_boot=300, seed=5) == paired_bootstrap(a, b, n_boot=300, seed=5)
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:, :10])
