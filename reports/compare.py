"""Paired accuracy comparisons of two architectures on the same test reviews.

The runs of two architectures with the same seed saw the same test reviews in the same order
(``test_labels.npy`` proves it), so their per-review correctness can be paired. The rule that
makes a difference a *tie* lives here and nowhere else:

- one seed in common: the exact McNemar test on that seed's discordant reviews; a tie when
  ``p >= 0.05``;
- several seeds: the paired bootstrap over reviews and seeds; a tie when its 95% interval of the
  accuracy difference contains zero.

The interval is always the paired bootstrap (over reviews alone with one seed).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.results.records import RUNS_DIR
from reports.stats import holm, mcnemar_exact, paired_bootstrap
from reports.table import ArchSummary

#: Significance level of every "tie" in the report.
ALPHA = 0.05
#: Bootstrap replicates; 2000 puts the 2.5% and 97.5% percentiles within about 0.1 points.
N_BOOT = 2000
#: The probability at or below which a review is predicted negative.
THRESHOLD = 0.5

METHOD_MCNEMAR = "McNemar exact"
METHOD_BOOTSTRAP = "paired bootstrap"


@dataclass(frozen=True)
class Predictions:
    """One run's test predictions: labels and whether each review was classified correctly."""

    labels: np.ndarray
    correct: np.ndarray


def load_predictions(results_dir: Path, record: dict[str, Any]) -> Predictions | str:
    """The run's test predictions, or a short reason why they are not available."""
    artifacts = record.get("artifacts") or {}
    probs_name, labels_name = artifacts.get("test_probs"), artifacts.get("test_labels")
    if not probs_name or not labels_name:
        return "predictions not kept"
    run_dir = Path(results_dir) / RUNS_DIR / record["run_id"]
    try:
        probs = np.load(run_dir / probs_name, allow_pickle=False)
        labels = np.load(run_dir / labels_name, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        return f"predictions unreadable ({type(exc).__name__})"
    probs, labels = np.ravel(probs), np.ravel(labels).astype(np.int64)
    if probs.shape != labels.shape or probs.size == 0:
        return "predictions and labels differ in length"
    return Predictions(labels=labels, correct=(probs > THRESHOLD).astype(np.int64) == labels)


@dataclass(frozen=True)
class PairedComparison:
    """``arch_a`` against ``arch_b``: accuracy difference ``a - b`` (fraction) and its verdict."""

    arch_a: str
    arch_b: str
    available: bool
    reason: str = ""
    seeds: tuple[int, ...] = ()
    n_reviews: int = 0
    diff: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    p_value: float = math.nan
    method: str = ""
    significant: bool = False

    @property
    def tie(self) -> bool:
        """Tested and not significant at :data:`ALPHA`."""
        return self.available and not self.significant

    def verdict(self) -> str:
        """``tie``, ``<a> better`` or ``<b> better``; ``not available`` when untested."""
        if not self.available:
            return "not available"
        if not self.significant:
            return "tie"
        return f"`{self.arch_a if self.diff > 0 else self.arch_b}` better"


def _unavailable(a: ArchSummary, b: ArchSummary, reason: str) -> PairedComparison:
    return PairedComparison(arch_a=a.arch, arch_b=b.arch, available=False, reason=reason)


def leader_pairs(rows: list[ArchSummary]) -> list[tuple[str, ArchSummary, ArchSummary]]:
    """The comparisons among the leaders beside best-against-each, as (what it asks, first,
    second): the best recurrent model against the runner-up recurrent one and against the best
    floor (by mean test accuracy), and each recurrent model whose mean passes a floor's against
    that floor (what the recommendation's sentences on recurrence over the floors rest on)."""
    ranked = sorted((r for r in rows if r.value("test_accuracy") is not None),
                    key=lambda r: -(r.value("test_accuracy") or 0.0))  # fmt: skip
    recurrent = [r for r in ranked if r.recurrent is True]
    floors = [r for r in ranked if r.recurrent is False]
    pairs = []
    if len(recurrent) >= 2:
        pairs.append(("best recurrent against the runner-up recurrent", recurrent[0], recurrent[1]))
    if recurrent and floors:
        pairs.append(("best recurrent against the best floor", recurrent[0], floors[0]))
    for floor in floors:
        pairs += [("a recurrent model above a floor, against it", model, floor) for model in recurrent
                  if (model.value("test_accuracy") or 0.0) > (floor.value("test_accuracy") or 0.0)]
    return pairs


@dataclass(frozen=True)
class Family:
    """The paired comparisons the report makes, and each one's p-value adjusted for all of them
    (Holm): the most accurate architecture against each other one, then the leaders'
    (:func:`leader_pairs`) not already among those."""

    best: ArchSummary
    against: list[tuple[ArchSummary, PairedComparison]]
    leaders: list[tuple[str, ArchSummary, ArchSummary, PairedComparison]]
    adjusted: list[float]  # against's, then leaders', in order

    @property
    def comparisons(self) -> list[PairedComparison]:
        """Every comparison of the family, in the order of :attr:`adjusted`."""
        return [cmp for _, cmp in self.against] + [cmp for *_, cmp in self.leaders]

    def holm_p(self, arch_a: str, arch_b: str) -> float | None:
        """The adjusted p-value of the pair (either order), or None when the family lacks it."""
        pairs = ([frozenset((self.best.arch, row.arch)) for row, _ in self.against]
                 + [frozenset((a.arch, b.arch)) for _, a, b, _ in self.leaders])  # fmt: skip
        wanted = frozenset((arch_a, arch_b))
        return next((q for pair, q in zip(pairs, self.adjusted, strict=True) if pair == wanted), None)


class Comparer:
    """Paired comparisons between the architectures of one results folder, computed once each."""

    def __init__(self, results_dir: Path | None, rows: list[ArchSummary], n_boot: int = N_BOOT):
        self.n_boot = n_boot
        self._rows = {row.arch: row for row in rows}
        self._predictions: dict[str, Predictions | str] = {}
        for row in rows:
            for rec in row.ok:
                self._predictions[rec["run_id"]] = (
                    load_predictions(results_dir, rec) if results_dir is not None else "no folder"
                )
        self._cache: dict[tuple[str, str], PairedComparison] = {}

    def compare(self, arch_a: str, arch_b: str) -> PairedComparison:
        """``arch_a`` against ``arch_b`` over their common seeds (cached)."""
        key = (arch_a, arch_b)
        if key not in self._cache:
            self._cache[key] = self._compute(self._rows[arch_a], self._rows[arch_b])
        return self._cache[key]

    def family(self, rows: list[ArchSummary] | None = None) -> Family | None:
        """The report's family of comparisons over ``rows`` (default: the rows given at
        construction), or None with fewer than two test accuracies."""
        ok = [r for r in (rows if rows is not None else list(self._rows.values()))
              if r.value("test_accuracy") is not None]  # fmt: skip
        if len(ok) < 2:
            return None
        best = max(ok, key=lambda r: r.value("test_accuracy"))
        against = [(row, self.compare(best.arch, row.arch)) for row in ok if row is not best]
        seen = {frozenset((best.arch, row.arch)) for row, _ in against}
        leaders = []
        for what, a, b in leader_pairs(ok):
            if frozenset((a.arch, b.arch)) not in seen:
                seen.add(frozenset((a.arch, b.arch)))
                leaders.append((what, a, b, self.compare(a.arch, b.arch)))
        family = Family(best, against, leaders, [])
        family.adjusted.extend(holm([c.p_value if c.available else math.nan
                                     for c in family.comparisons]))  # fmt: skip
        return family

    def holm_p(self, arch_a: str, arch_b: str) -> float | None:
        """The pair's Holm-adjusted p-value within :meth:`family`, or None outside it."""
        family = self._family
        return family.holm_p(arch_a, arch_b) if family is not None else None

    @functools.cached_property
    def _family(self) -> Family | None:
        """:meth:`family` over the rows given at construction, computed once."""
        return self.family()

    def _by_seed(self, row: ArchSummary) -> tuple[dict[int, Predictions], str]:
        found, reasons = {}, []
        for rec in row.ok:
            pred = self._predictions[rec["run_id"]]
            if isinstance(pred, Predictions):
                found[rec["seed"]] = pred
            elif pred not in reasons:
                reasons.append(pred)
        return found, "; ".join(reasons)

    def _compute(self, a: ArchSummary, b: ArchSummary) -> PairedComparison:
        preds_a, why_a = self._by_seed(a)
        preds_b, why_b = self._by_seed(b)
        if not preds_a:
            return _unavailable(a, b, f"`{a.arch}`: {why_a or 'no successful run'}")
        if not preds_b:
            return _unavailable(a, b, f"`{b.arch}`: {why_b or 'no successful run'}")
        seeds = sorted(set(preds_a) & set(preds_b))
        if not seeds:
            return _unavailable(a, b, "no seed in common")
        lengths = {preds_a[s].labels.size for s in seeds} | {preds_b[s].labels.size for s in seeds}
        if len(lengths) != 1 or any(
            not np.array_equal(preds_a[s].labels, preds_b[s].labels) for s in seeds
        ):
            return _unavailable(a, b, "test labels differ: not the same test reviews")
        correct_a = np.stack([preds_a[s].correct for s in seeds])
        correct_b = np.stack([preds_b[s].correct for s in seeds])
        diff, lo, hi, p_boot = paired_bootstrap(correct_a, correct_b, n_boot=self.n_boot, seed=0)
        if len(seeds) == 1:
            b_count = int(np.count_nonzero(correct_a[0] & ~correct_b[0]))
            c_count = int(np.count_nonzero(~correct_a[0] & correct_b[0]))
            p_value, method = mcnemar_exact(b_count, c_count), METHOD_MCNEMAR
            significant = p_value < ALPHA
        else:
            p_value, method = p_boot, METHOD_BOOTSTRAP
            significant = lo > 0 or hi < 0
        return PairedComparison(
            arch_a=a.arch,
            arch_b=b.arch,
            available=True,
            seeds=tuple(seeds),
            n_reviews=int(correct_a.shape[1]),
            diff=diff,
            ci_lo=lo,
            ci_hi=hi,
            p_value=p_value,
            method=method,
            significant=significant,
        )
