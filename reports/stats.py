"""Statistics for the report; the distributions come from scipy.stats.

- :func:`mean_std_ci`: mean, sample standard deviation and the Student t confidence interval of
  the mean, for a metric measured once per seed.
- :func:`share_interval`: the interval of a share scored on a sample of examples (accuracy on the
  test reviews), which covers the seeds' spread and the examples' sampling both.
- :func:`mcnemar_exact`: the exact (binomial) McNemar test on the discordant pairs of two
  classifiers scored on the same reviews.
- :func:`paired_bootstrap`: the accuracy difference of two classifiers with a percentile bootstrap
  confidence interval, resampling reviews and, when there are several, seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats


def mean_std_ci(
    values: Iterable[float | None], confidence: float = 0.95
) -> tuple[float, float, float, float, int]:
    """Mean, sample std (ddof=1) and the two-sided Student t interval of the mean.

    ``None`` and NaN values are dropped (a metric a run could not measure). Returns
    ``(mean, std, lo, hi, n)``; with ``n == 1`` the std and the interval are NaN (one seed says
    nothing about spread), with ``n == 0`` everything but ``n`` is NaN.
    """
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(clean)
    if n == 0:
        return (math.nan, math.nan, math.nan, math.nan, 0)
    arr = np.asarray(clean, dtype=np.float64)
    mean = float(arr.mean())
    if n == 1:
        return (mean, math.nan, math.nan, math.nan, 1)
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    return (mean, std, mean - half, mean + half, n)


def share_interval(mean: float, std: float, n_seeds: int, n_examples: int,
                   confidence: float = 0.95) -> tuple[float, float]:  # fmt: skip
    """The interval of a share (an accuracy) whose seeds each scored the same ``n_examples``.

    Two sources of variation, combined in quadrature: the seeds' (the Student t half-width of
    the mean, t with ``n_seeds`` − 1 degrees of freedom; none with one seed or no spread) and the
    examples' (the binomial standard error of the mean share over ``n_examples``, normal
    approximation: another test set of the same size would score differently). A deterministic
    model run with three seeds then still gets the test set's own interval (about ±0.4 points at
    88% on 25,000 reviews) instead of zero width. Cut to [0, 1]; NaN when ``mean`` is.
    """
    if n_seeds == 0 or math.isnan(mean) or n_examples <= 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    examples = z * math.sqrt(max(mean * (1.0 - mean), 0.0) / n_examples)
    seeds = 0.0
    if n_seeds >= 2 and math.isfinite(std):
        seeds = float(stats.t.ppf(0.5 + confidence / 2.0, n_seeds - 1)) * std / math.sqrt(n_seeds)
    half = math.hypot(seeds, examples)
    return (max(mean - half, 0.0), min(mean + half, 1.0))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN, an untested pair, stays NaN
    and does not count in the family). The k-th smallest of m p-values becomes
    max over j <= k of min(1, (m − j + 1) · p_(j)): a difference whose adjusted p is below α is
    significant with the chance of any false difference in the family held at α."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(tested)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def reps_to_bound_quantile(q: float = 0.95, confidence: float = 0.95) -> int:
    """The fewest repetitions whose order statistics bound the ``q`` quantile from above with
    two-sided ``confidence``: with n draws all fall below it with probability q**n, which must be
    at most (1 − confidence) / 2. For a p95 at 95%: 72. Fewer give a p95 that nothing bounds (it
    moves from one run to the next by whatever the slowest repetition did), so a report gives
    none."""
    return math.ceil(math.log((1.0 - confidence) / 2.0) / math.log(q))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    ``b``: reviews the first classifier gets right and the second wrong; ``c``: the reverse. Under
    the null both kinds are equally likely, so ``min(b, c)`` is Binomial(b + c, 1/2); the p-value
    is twice its lower tail, capped at 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    if b + c == 0:
        return 1.0
    # scipy computes the tail in log space, so a 25,000-review test set (0.5**n underflows for
    # n > 1074) is handled; with p = 1/2 the two-sided p-value is the doubled smaller tail.
    return float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def paired_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float, float]:
    """Accuracy difference ``a - b`` with a paired percentile bootstrap interval and p-value.

    ``correct_a`` and ``correct_b`` are boolean arrays of shape ``[n_seeds, n_reviews]`` (or
    ``[n_reviews]`` for one seed): whether each classifier got each test review right, row ``s``
    of both coming from the same seed. Each replicate resamples reviews with replacement (the
    same reviews for every seed, which keeps the pairing) and, when there is more than one seed,
    the seeds too, so the interval covers both the test-set sampling and the training
    randomness. Returns ``(diff, lo, hi, p)``: the observed difference in accuracy (fraction),
    the interval, and the two-sided p-value of "no difference" from the bootstrap distribution
    shifted to the null.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    n_seeds, n_reviews = a.shape
    if n_reviews == 0:
        raise ValueError("no reviews to compare")
    delta = a.astype(np.int8) - b.astype(np.int8)  # [n_seeds, n_reviews], in {-1, 0, 1}
    diff = float(delta.mean())
    # Resampling reviews only changes how often each review's column of ``delta`` is counted, and
    # columns take at most 3**n_seeds distinct values: drawing how many reviews of each distinct
    # column a replicate holds (one multinomial) is the same bootstrap as drawing the reviews, at
    # a cost that does not grow with the size of the test set.
    patterns, pattern_counts = np.unique(delta, axis=1, return_counts=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_reviews, pattern_counts / n_reviews, size=n_boot)
    per_seed = counts @ patterns.T.astype(np.float64)  # [n_boot, n_seeds]: summed differences
    if n_seeds > 1:
        seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        seed_counts = (seed_draws[:, :, None] == np.arange(n_seeds)).sum(axis=1)
    else:
        seed_counts = np.ones((n_boot, 1))
    boot = (per_seed * seed_counts).sum(axis=1) / (n_seeds * n_reviews)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    # Shifting the bootstrap distribution to the null (centre 0) and counting replicates at least
    # as extreme as the observation; the +1s keep p above zero with a finite number of replicates.
    extreme = int(np.count_nonzero(np.abs(boot - diff) >= abs(diff) - 1e-12))
    p = (extreme + 1) / (n_boot + 1)
    return diff, float(lo), float(hi), min(1.0, p)
