"""The "Which one should I use?" section: plain sentences generated from the numbers.

Every claim names its values and its cost against the alternatives. Accuracy differences that
are not significant at 5% (see :mod:`reports.compare` for the rule) are called ties. Speed and
memory are compared as ratios of means measured on this machine in this run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from reports.compare import ALPHA, Comparer, PairedComparison
from reports.table import ArchSummary, format_count, format_number

#: The axes of the Pareto set: (metric, higher is better, how it is shown).
PARETO_AXES: tuple[tuple[str, bool, str], ...] = (
    ("test_accuracy", True, "test accuracy ↑"),
    ("latency_ms_p50", False, "latency p50 ↓"),
    ("train_peak_mem_mb", False, "peak training memory ↓"),
)


def format_p(p: float) -> str:
    """A p-value as text: ``p = 0.021`` or ``p < 0.001``."""
    if not math.isfinite(p):
        return "p —"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def format_points(diff: float) -> str:
    """An accuracy difference (fraction) in signed percentage points."""
    return f"{diff * 100:+.2f}".replace("-", "−")


def _acc(row: ArchSummary) -> str:
    stat = row.stats["test_accuracy"]
    text = f"{stat.mean * 100:.2f}%"
    if stat.n > 1:
        text += f" ± {stat.std * 100:.2f} (n={stat.n}, 95% CI {stat.ci_lo * 100:.2f}–{stat.ci_hi * 100:.2f})"
    else:
        text += " (n=1)"
    return text


def _ratio(numerator: float, denominator: float) -> str:
    ratio = numerator / denominator
    # Below 1.05x the one-decimal ratio reads "1.0x", which says nothing; give the percentage.
    if ratio < 1.05:
        return f"{(ratio - 1) * 100:.1f}%"
    return f"{ratio:.1f}x"


def _oriented(comparison: PairedComparison, arch: str) -> PairedComparison:
    """The same comparison read from ``arch``'s side (difference ``arch - other``)."""
    if comparison.arch_a == arch:
        return comparison
    return PairedComparison(
        arch_a=comparison.arch_b,
        arch_b=comparison.arch_a,
        available=comparison.available,
        reason=comparison.reason,
        seeds=comparison.seeds,
        n_reviews=comparison.n_reviews,
        diff=-comparison.diff,
        ci_lo=-comparison.ci_hi,
        ci_hi=-comparison.ci_lo,
        p_value=comparison.p_value,
        method=comparison.method,
        significant=comparison.significant,
    )


def significance_note(comparison: PairedComparison) -> str:
    """``significant, p = 0.003`` / ``a statistical tie, p = 0.4`` / ``not tested: why``."""
    if not comparison.available:
        return f"significance not tested: {comparison.reason}"
    if comparison.significant:
        return f"significant, {format_p(comparison.p_value)}"
    return f"a statistical tie, {format_p(comparison.p_value)}"


def accuracy_gap(row: ArchSummary, ref: ArchSummary, comparer: Comparer) -> str:
    """How much less (or more) accurate ``row`` is than ``ref``, and whether that is a tie."""
    gap = (row.value("test_accuracy") or 0.0) - (ref.value("test_accuracy") or 0.0)
    word = "less" if gap < 0 else "more"
    note = significance_note(comparer.compare(row.arch, ref.arch))
    return f"{abs(gap) * 100:.2f} points {word} accurate than `{ref.arch}` ({note})"


def _advantages(row: ArchSummary, ref: ArchSummary) -> list[str]:
    """Where ``row`` is cheaper than ``ref``: speed and size ratios, in words."""
    out = []
    lat, lat_ref = row.value("latency_ms_p50"), ref.value("latency_ms_p50")
    if lat and lat_ref and lat < lat_ref:
        out.append(f"{_ratio(lat_ref, lat)} faster at inference (latency p50)")
    thr, thr_ref = row.value("train_samples_per_s"), ref.value("train_samples_per_s")
    if thr and thr_ref and thr > thr_ref:
        out.append(f"{_ratio(thr, thr_ref)} faster to train (samples/s)")
    mem, mem_ref = row.value("train_peak_mem_mb"), ref.value("train_peak_mem_mb")
    if mem and mem_ref and mem < mem_ref:
        out.append(f"{_ratio(mem_ref, mem)} less peak training memory")
    par, par_ref = row.value("param_count"), ref.value("param_count")
    if par and par_ref and par < par_ref and row.training == ref.training:
        out.append(f"{_ratio(par_ref, par)} fewer parameters")
    return out


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pick(rows: Sequence[ArchSummary], metric: str, higher: bool) -> ArchSummary | None:
    """The row with the best mean of ``metric`` (first in row order on equal means)."""
    candidates = [r for r in rows if r.value(metric) is not None]
    if not candidates:
        return None
    return (max if higher else min)(candidates, key=lambda r: r.value(metric))


def pareto_set(
    rows: Sequence[ArchSummary], axes: Sequence[tuple[str, bool, str]] = PARETO_AXES
) -> tuple[list[ArchSummary], dict[str, str], list[ArchSummary]]:
    """Pareto-optimal rows over ``axes`` (means), who dominates each other row, rows left out.

    A row is dominated when another is at least as good on every axis and better on one. Rows
    missing a value on any axis are left out rather than guessed.
    """
    complete = [r for r in rows if all(r.value(m) is not None for m, _, _ in axes)]
    left_out = [r for r in rows if r not in complete]

    def score(row: ArchSummary) -> list[float]:
        # Orient every axis so that larger is better.
        return [row.value(m) if up else -row.value(m) for m, up, _ in axes]

    front, dominated_by = [], {}
    for row in complete:
        mine = score(row)
        for other in complete:
            theirs = score(other)
            if (
                other is not row
                and all(t >= m for t, m in zip(theirs, mine, strict=True))
                and (theirs != mine)
            ):
                dominated_by[row.arch] = other.arch
                break
        else:
            front.append(row)
    return front, dominated_by, left_out


def _axis_values(row: ArchSummary) -> str:
    return (
        f"{format_number(row.value('test_accuracy'), 'percent')}%, "
        f"{format_number(row.value('latency_ms_p50'), 'sig3')} ms, "
        f"{format_number(row.value('train_peak_mem_mb'), 'sig3')} MiB"
    )


#: What a recommendation names a winner for besides accuracy: (metric, higher is better, title).
BEST_AT: tuple[tuple[str, bool, str], ...] = (
    ("latency_ms_p50", False, "Fastest at inference"),
    ("train_samples_per_s", True, "Fastest to train"),
    ("param_count", False, "Fewest parameters among the gradient-trained networks"),
    ("train_peak_mem_mb", False, "Least training memory"),
)


def best_at_candidates(rows: Sequence[ArchSummary], metric: str) -> list[ArchSummary]:
    """The rows that compete for the :data:`BEST_AT` role of ``metric``."""
    # Like with like: network weights against network weights. A self-fitting model's parameters
    # (the TF-IDF floor's coefficients, one per kept n-gram) are another kind of quantity.
    if metric == "param_count":
        return [r for r in rows if r.training == "gradient"]
    return list(rows)


def best_at_winners(rows: Sequence[ArchSummary]) -> list[tuple[str, ArchSummary]]:
    """Who a recommendation names, as (title, row): the most accurate ("Most accurate"), then
    the winner of each :data:`BEST_AT` role that has one; rows without a run are left out."""
    rows = [r for r in rows if r.ok]
    named = []
    best = _pick(rows, "test_accuracy", True)
    if best is not None:
        named.append(("Most accurate", best))
    for metric, higher, title in BEST_AT:
        winner = _pick(best_at_candidates(rows, metric), metric, higher)
        if winner is not None:
            named.append((title, winner))
    return named


def recommend(rows: Sequence[ArchSummary], comparer: Comparer) -> str:
    """The section's markdown body (bullets of plain sentences)."""
    rows = [r for r in rows if r.ok]
    if not rows:
        return "No architecture completed a run, so there is nothing to recommend."
    best = _pick(rows, "test_accuracy", True)
    if best is None:
        return "No run measured test accuracy, so there is nothing to recommend."
    others = [r for r in rows if r is not best]
    bullets = []

    text = f"**Most accurate: `{best.arch}`**, test accuracy {_acc(best)}."
    if not others:
        text += " It is the only architecture in this run, so there is nothing to compare it with."
    ties, untested = [], []
    for row in others:
        cmp = _oriented(comparer.compare(row.arch, best.arch), row.arch)
        if not cmp.available:
            untested.append(f"`{row.arch}` ({cmp.reason})")
        elif cmp.tie:
            gains = _advantages(row, best)
            ties.append(
                f"`{row.arch}` is statistically tied with it ({format_points(cmp.diff)} points, "
                f"95% CI {format_points(cmp.ci_lo)} to {format_points(cmp.ci_hi)}, "
                f"{format_p(cmp.p_value)})"
                + (f" and {_join(gains)}" if gains else " with no speed or size advantage")
                + "."
            )
    text += "".join(f" {t}" for t in ties)
    if others and not ties and not untested:
        text += f" Every other architecture is significantly less accurate (at {ALPHA:.0%})."
    if untested:
        text += f" Not tested for significance against {_join(untested)}."
    bullets.append(text)

    def best_at(candidates: Sequence[ArchSummary], metric: str, higher: bool, title: str,
                describe: Callable[[ArchSummary], str]) -> None:
        """A "best at <metric>" bullet: the winner among ``candidates``, its value, its margin
        over the most accurate model and what it costs in accuracy."""
        row = _pick(candidates, metric, higher)
        if row is not None:
            bullets.append(f"**{title}: `{row.arch}`**, {describe(row)}"
                           + _versus(row, best, candidates, metric, higher, comparer))  # fmt: skip

    def sig3(row: ArchSummary, metric: str) -> str:
        return format_number(row.value(metric), "sig3")

    describe: dict[str, Callable[[ArchSummary], str]] = {
        "latency_ms_p50": lambda r: f"latency p50 {sig3(r, 'latency_ms_p50')} ms (p95 "
        f"{sig3(r, 'latency_ms_p95')} ms) for one review of median length",
        "train_samples_per_s": lambda r: f"{sig3(r, 'train_samples_per_s')} samples/s"
        + (f" ({sig3(r, 'train_tokens_per_s')} tokens/s)"
           if r.value("train_tokens_per_s") is not None else ""),
        "param_count": lambda r: format_count(r.value("param_count")),
        "train_peak_mem_mb": lambda r: f"peak {sig3(r, 'train_peak_mem_mb')} MiB",
    }  # fmt: skip
    for metric, higher, title in BEST_AT:
        candidates = best_at_candidates(rows, metric)
        best_at(candidates, metric, higher, title, describe[metric])
        if metric != "param_count":
            continue
        fitted = [r for r in rows if r.training != "gradient" and r.value("param_count") is not None]
        if fitted and _pick(candidates, "param_count", False) is not None:
            bullets[-1] += " Not compared: " + ", ".join(
                f"`{r.arch}` ({format_count(r.value('param_count'))} fitted coefficients)"
                for r in fitted
            ) + ", which are not network weights."

    bullets.append(_pareto_sentence(rows))
    bullets.extend(_baseline_sentences(rows, comparer))
    return "\n".join(f"- {b}" for b in bullets if b)


#: How "how many times better" reads for each metric a recommendation ranks by.
_RATIO_PHRASES: dict[str, str] = {
    "latency_ms_p50": "{ratio} faster than `{other}`",
    "train_samples_per_s": "{ratio} faster to train than `{other}`",
    "param_count": "{ratio} fewer parameters than `{other}`",
    "train_peak_mem_mb": "{ratio} less training memory than `{other}`",
}


def _versus(
    row: ArchSummary,
    best: ArchSummary,
    rows: Sequence[ArchSummary],
    metric: str,
    higher: bool,
    comparer: Comparer,
) -> str:
    """The rest of a "fastest/smallest" sentence: its margin and its accuracy cost."""
    value = row.value(metric)

    def margin(other: ArchSummary) -> str:
        other_value = other.value(metric)
        # Parameter counts compare only models that learn the same way (see the caller).
        if not other_value or not value or (metric == "param_count" and other.training != row.training):
            return ""
        # Always >= 1: how many times better ``row`` is than ``other`` on this metric.
        ratio = _ratio(value, other_value) if higher else _ratio(other_value, value)
        return _RATIO_PHRASES[metric].format(ratio=ratio, other=other.arch)

    if row is best:
        runners = [r for r in rows if r is not row and r.value(metric) is not None]
        if not runners:
            return "; it is also the most accurate."
        second = _pick(runners, metric, higher)
        return f"; it is also the most accurate, and {margin(second)}, the runner-up."
    text = margin(best)
    return (f", {text}" if text else "") + f"; it is {accuracy_gap(row, best, comparer)}."


def _pareto_sentence(rows: Sequence[ArchSummary]) -> str:
    axes = ", ".join(label for _, _, label in PARETO_AXES)
    front, dominated_by, left_out = pareto_set(rows)
    if not front:
        return f"**Pareto set** over ({axes}): not computed, no architecture has all three values."
    members = "; ".join(f"`{r.arch}` ({_axis_values(r)})" for r in front)
    text = f"**Pareto-optimal** over ({axes}), comparing means: {members}."
    if dominated_by:
        beaten = ", ".join(f"`{a}` by `{b}`" for a, b in dominated_by.items())
        text += (
            f" Dominated (another is at least as good on all three and better on one): {beaten}."
        )
    else:
        text += " No architecture is dominated: each is best at something."
    if left_out:
        text += (
            " Left out for a missing value: " + ", ".join(f"`{r.arch}`" for r in left_out) + "."
        )
    return text


def _baseline_sentences(rows: Sequence[ArchSummary], comparer: Comparer) -> list[str]:
    """What the non-recurrent rows (``spec.model.recurrent`` false) say about recurrence."""
    recurrent = [r for r in rows if r.recurrent is True]
    sentences = []
    for base in (r for r in rows if r.recurrent is False):
        if not recurrent or base.value("test_accuracy") is None:
            continue
        base_acc = base.value("test_accuracy")
        tied, beaten_by = [], []
        for rec in recurrent:
            if rec.value("test_accuracy") is None or rec.value("test_accuracy") <= base_acc:
                continue
            cmp = comparer.compare(base.arch, rec.arch)
            (tied if cmp.tie else beaten_by).append(rec)
        if not beaten_by:
            text = (
                f"**The non-recurrent `{base.arch}` matches or beats every recurrent model** "
                f"here, with test accuracy {_acc(base)}: on this setup, recurrence buys no "
                f"accuracy over `{base.arch}`."
            )
            if tied:
                text += " It is statistically tied with " + _join([f"`{r.arch}`" for r in tied])
                text += " and better than or equal to the rest on mean accuracy."
            sentences.append(text)
        else:
            top = _pick(recurrent, "test_accuracy", True)
            sentences.append(
                f"The best recurrent model, `{top.arch}`, is "
                f"{accuracy_gap(top, base, comparer)}: that is what recurrence buys over the "
                f"non-recurrent `{base.arch}`."
            )
    return sentences
