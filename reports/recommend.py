"""The "Which one should I use?" section: plain sentences generated from the numbers.

Every claim names its values and its cost against the alternatives. Accuracy differences that
are not significant at 5% (see :mod:`reports.compare` for the rule) are called ties. Speed and
memory are compared as ratios of means measured on this machine in this run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.results.metrics import METRICS
from reports.compare import ALPHA, Comparer, PairedComparison
from reports.table import BUDGET_MARK, CONTENDED_MARK, ArchSummary, format_count, format_number

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
    spread = f" ± {stat.std * 100:.2f}" if stat.n > 1 else ""
    interval = (f", 95% CI {stat.ci_lo * 100:.2f}–{stat.ci_hi * 100:.2f}"
                if math.isfinite(stat.ci_lo) else "")  # fmt: skip
    return f"{text}{spread} (n={stat.n}{interval})"


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


def significance_note(comparison: PairedComparison, holm_p: float | None = None) -> str:
    """``significant, p = 0.003`` / ``a statistical tie, p = 0.4`` / ``not tested: why``; with
    the pair's Holm-adjusted p-value (the paired comparisons' family), ``significant, p = 0.003,
    Holm p = 0.02``, or that the correction makes it a tie."""
    if not comparison.available:
        return f"significance not tested: {comparison.reason}"
    if not comparison.significant:
        return f"a statistical tie, {format_p(comparison.p_value)}"
    if holm_p is None or math.isnan(holm_p):
        return f"significant, {format_p(comparison.p_value)}"
    adjusted = format_p(holm_p).replace("p ", "Holm p ", 1)
    if holm_p < ALPHA:
        return f"significant, {format_p(comparison.p_value)}, {adjusted}"
    return (f"significant alone, {format_p(comparison.p_value)}, but a tie after Holm's correction "
            f"for the paired comparisons, {adjusted}")


@dataclass(frozen=True)
class AccuracyGap:
    """How much more accurate ``arch`` is than ``ref`` (``gap``, a fraction: negative, less),
    and the paired comparison that says whether it is a tie."""

    arch: str
    ref: str
    gap: float
    comparison: PairedComparison
    holm_p: float | None = None  # within the paired comparisons' family (None: not in it)


def accuracy_gap_of(row: ArchSummary, ref: ArchSummary, comparer: Comparer) -> AccuracyGap:
    gap = (row.value("test_accuracy") or 0.0) - (ref.value("test_accuracy") or 0.0)
    return AccuracyGap(row.arch, ref.arch, gap, comparer.compare(row.arch, ref.arch),
                       comparer.holm_p(row.arch, ref.arch))  # fmt: skip


def _gap_text(gap: AccuracyGap) -> str:
    word = "less" if gap.gap < 0 else "more"
    note = significance_note(gap.comparison, gap.holm_p)
    return f"{abs(gap.gap) * 100:.2f} points {word} accurate than `{gap.ref}` ({note})"


def accuracy_gap(row: ArchSummary, ref: ArchSummary, comparer: Comparer) -> str:
    """How much less (or more) accurate ``row`` is than ``ref``, and whether that is a tie."""
    return _gap_text(accuracy_gap_of(row, ref, comparer))


#: Where one architecture can be cheaper than another: (metric, lower is cheaper, the words).
_ADVANTAGES: tuple[tuple[str, bool, str], ...] = (
    ("latency_ms_p50", True, "lower latency (p50)"),
    ("train_samples_per_s", False, "more training samples/s"),
    ("train_peak_mem_mb", True, "less peak training memory"),
    ("param_count", True, "fewer parameters"),
)


def advantages(row: ArchSummary, ref: ArchSummary) -> list[tuple[str, float]]:
    """Where ``row`` is cheaper than ``ref``, as (metric, how many times: always > 1); parameter
    counts only between models that learn the same way."""
    out = []
    for metric, lower, _ in _ADVANTAGES:
        mine, theirs = row.value(metric), ref.value(metric)
        if not mine or not theirs or (metric == "param_count" and row.training != ref.training):
            continue
        if (mine < theirs) if lower else (mine > theirs):
            out.append((metric, theirs / mine if lower else mine / theirs))
    return out


def _advantage_text(metric: str, ratio: float) -> str:
    words = next(text for name, _, text in _ADVANTAGES if name == metric)
    return f"{_ratio(ratio, 1.0)} {words}"


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
    ("latency_ms_p50", False, "Lowest latency"),
    ("train_samples_per_s", True, "Most training samples/s"),
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


@dataclass(frozen=True)
class Tie:
    """An architecture statistically tied with the most accurate one: the comparison read from
    its side (difference: it − the most accurate) and where it is cheaper (:func:`advantages`)."""

    arch: str
    comparison: PairedComparison
    advantages: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class BestAt:
    """The winner of one :data:`BEST_AT` role, and how it compares.

    ``versus``: the architecture its margin is against (the most accurate one, or, when the
    winner is the most accurate, the runner-up; None: nobody to compare with); ``margin``: how
    many times better it is on ``metric`` than ``versus`` (None: not comparable); ``gap``: its
    accuracy against the most accurate (None when it is the most accurate); ``not_compared``:
    models left out of the role (fitted coefficients are not network weights).
    """

    metric: str
    title: str
    winner: ArchSummary
    versus: str | None
    margin: float | None
    gap: AccuracyGap | None
    not_compared: tuple[ArchSummary, ...] = ()


@dataclass(frozen=True)
class Baseline:
    """What a non-recurrent row says about recurrence: the recurrent models more accurate than
    it, split into tied and better; with none better, ``gap`` is None, else the best recurrent
    model's accuracy gap over it."""

    base: ArchSummary
    tied: tuple[str, ...]
    gap: AccuracyGap | None


@dataclass(frozen=True)
class Recommendation:
    """Everything "Which one should I use?" states, before any sentence is written.

    ``best``: the most accurate architecture (None: ``nothing`` says why there is no advice).
    """

    best: ArchSummary | None
    nothing: str = ""
    others: int = 0
    ties: tuple[Tie, ...] = ()
    #: Architectures not tested against the best, with why.
    untested: tuple[tuple[str, str], ...] = ()
    best_at: tuple[BestAt, ...] = ()
    pareto: tuple[list[ArchSummary], dict[str, str], list[ArchSummary]] = ([], {}, [])
    baselines: tuple[Baseline, ...] = ()
    #: Architectures with budget-bound runs (:func:`reports.table.budget_bound`), in row order.
    bound: tuple[str, ...] = ()


def _margin(row: ArchSummary, other: ArchSummary, metric: str, higher: bool) -> float | None:
    """How many times better ``row`` is than ``other`` on ``metric`` (None: not comparable)."""
    value, other_value = row.value(metric), other.value(metric)
    # Parameter counts compare only models that learn the same way.
    if not other_value or not value or (metric == "param_count" and other.training != row.training):
        return None
    return value / other_value if higher else other_value / value


def _best_at(rows: Sequence[ArchSummary], best: ArchSummary, comparer: Comparer) -> list[BestAt]:
    out = []
    for metric, higher, title in BEST_AT:
        candidates = best_at_candidates(rows, metric)
        row = _pick(candidates, metric, higher)
        if row is None:
            continue
        fitted = ()
        if metric == "param_count":
            fitted = tuple(r for r in rows if r.training != "gradient" and r.value("param_count") is not None)
        if row is best:
            runners = [r for r in candidates if r is not row and r.value(metric) is not None]
            second = _pick(runners, metric, higher)
            versus = second.arch if second is not None else None
            margin = _margin(row, second, metric, higher) if second is not None else None
            out.append(BestAt(metric, title, row, versus, margin, None, fitted))
        else:
            out.append(BestAt(metric, title, row, best.arch, _margin(row, best, metric, higher),
                              accuracy_gap_of(row, best, comparer), fitted))  # fmt: skip
    return out


def _baselines(rows: Sequence[ArchSummary], comparer: Comparer) -> list[Baseline]:
    recurrent = [r for r in rows if r.recurrent is True]
    out = []
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
        top = _pick(recurrent, "test_accuracy", True)
        gap = accuracy_gap_of(top, base, comparer) if beaten_by else None
        out.append(Baseline(base, tuple(r.arch for r in tied), gap))
    return out


def recommendation(rows: Sequence[ArchSummary], comparer: Comparer) -> Recommendation:
    """What the section recommends: the most accurate architecture and who ties with it, the
    winner of each :data:`BEST_AT` role, the Pareto set, what the non-recurrent rows say."""
    rows = [r for r in rows if r.ok]
    if not rows:
        return Recommendation(None, "No architecture completed a run")
    best = _pick(rows, "test_accuracy", True)
    if best is None:
        return Recommendation(None, "No run measured test accuracy")
    others = [r for r in rows if r is not best]
    ties, untested = [], []
    for row in others:
        cmp = _oriented(comparer.compare(row.arch, best.arch), row.arch)
        if not cmp.available:
            untested.append((row.arch, cmp.reason))
        elif cmp.tie:
            ties.append(Tie(row.arch, cmp, tuple(advantages(row, best))))
    return Recommendation(best, "", len(others), tuple(ties), tuple(untested),
                          tuple(_best_at(rows, best, comparer)), pareto_set(rows),
                          tuple(_baselines(rows, comparer)),
                          tuple(r.arch for r in rows if r.budget_bound))  # fmt: skip


# ---- rendering ---------------------------------------------------------------------------------


def _most_accurate_text(facts: Recommendation) -> str:
    best = facts.best
    assert best is not None
    text = f"**Most accurate: `{best.arch}`**, test accuracy {_acc(best)}."
    if not facts.others:
        text += " It is the only architecture in this run, so there is nothing to compare it with."
    for tie in facts.ties:
        cmp, gains = tie.comparison, [_advantage_text(m, r) for m, r in tie.advantages]
        text += (f" `{tie.arch}` is statistically tied with it ({format_points(cmp.diff)} points, "
                 f"95% CI {format_points(cmp.ci_lo)} to {format_points(cmp.ci_hi)}, "
                 f"{format_p(cmp.p_value)})"
                 + (f" and {_join(gains)}" if gains else " with no speed or size advantage") + ".")  # fmt: skip
    if facts.others and not facts.ties and not facts.untested:
        text += f" Every other architecture is significantly less accurate (at {ALPHA:.0%})."
    if facts.untested:
        text += f" Not tested for significance against {_join([f'`{a}` ({why})' for a, why in facts.untested])}."
    return text


def _sig3(row: ArchSummary, metric: str) -> str:
    return format_number(row.value(metric), "sig3")


#: How each :data:`BEST_AT` winner's value reads.
_DESCRIBE: dict[str, Callable[[ArchSummary], str]] = {
    "latency_ms_p50": lambda r: f"latency p50 {_sig3(r, 'latency_ms_p50')} ms "
    + (f"(p95 {_sig3(r, 'latency_ms_p95')} ms) " if r.value("latency_ms_p95") is not None else "")
    + (f"{r.alone.latency_of}, measured alone" if r.alone else "for one review of median length"),
    "train_samples_per_s": lambda r: f"{_sig3(r, 'train_samples_per_s')} samples/s"
    + (f" ({_sig3(r, 'train_tokens_per_s')} tokens/s)"
       if r.value("train_tokens_per_s") is not None else ""),
    "param_count": lambda r: format_count(r.value("param_count")),
    "train_peak_mem_mb": lambda r: f"peak {_sig3(r, 'train_peak_mem_mb')} MiB",
}  # fmt: skip
#: How "how many times better" reads for each metric a recommendation ranks by.
_RATIO_PHRASES: dict[str, str] = {
    "latency_ms_p50": "{ratio} lower latency than `{other}`",
    "train_samples_per_s": "{ratio} the training samples/s of `{other}`",
    "param_count": "{ratio} fewer parameters than `{other}`",
    "train_peak_mem_mb": "{ratio} less training memory than `{other}`",
}


def _best_at_text(entry: BestAt) -> str:
    """A "best at <metric>" bullet: the winner, its value, its margin, its accuracy cost."""
    margin = "" if entry.margin is None else _RATIO_PHRASES[entry.metric].format(
        ratio=_ratio(entry.margin, 1.0), other=entry.versus)
    # A speed or memory figure measured while runs shared the machine carries the tables' mark.
    shared = METRICS[entry.metric].contended and entry.winner.shared_machine
    text = (f"**{entry.title}: `{entry.winner.arch}`**, {_DESCRIBE[entry.metric](entry.winner)}"
            + (f" {CONTENDED_MARK}" if shared else ""))
    if entry.gap is None:  # the winner is the most accurate
        text += ("; it is also the most accurate." if entry.versus is None
                 else f"; it is also the most accurate, and {margin}, the runner-up.")  # fmt: skip
    else:
        text += (f", {margin}" if margin else "") + f"; it is {_gap_text(entry.gap)}."
    if entry.not_compared:
        text += " Not compared: " + ", ".join(
            f"`{r.arch}` ({format_count(r.value('param_count'))} fitted coefficients)"
            for r in entry.not_compared) + ", which are not network weights."  # fmt: skip
    return text


def _baseline_text(baseline: Baseline) -> str:
    base = baseline.base
    if baseline.gap is not None:
        return (f"The best recurrent model, `{baseline.gap.arch}`, is {_gap_text(baseline.gap)}: "
                f"that is what recurrence buys over the non-recurrent `{base.arch}`.")  # fmt: skip
    if not baseline.tied:
        return (f"**The non-recurrent `{base.arch}` is at least as accurate as every recurrent "
                f"model** here on mean test accuracy ({_acc(base)}): on this setup, recurrence "
                f"buys no accuracy over `{base.arch}`.")  # fmt: skip
    tied = _join([f"`{a}`" for a in baseline.tied])
    return (f"**No recurrent model is significantly more accurate than the non-recurrent "
            f"`{base.arch}`** ({_acc(base)}): {tied} {'has' if len(baseline.tied) == 1 else 'have'} "
            f"a higher mean, but the difference is not significant (a tie), and no other recurrent "
            f"model's mean is higher. On this setup, recurrence is not shown to buy accuracy over "
            f"`{base.arch}`.")  # fmt: skip


def render_recommendation(facts: Recommendation) -> str:
    """The section's markdown body (bullets of plain sentences), from its facts."""
    if facts.best is None:
        return f"{facts.nothing}, so there is nothing to recommend."
    bullets = [_most_accurate_text(facts), *(_best_at_text(entry) for entry in facts.best_at),
               _pareto_sentence(*facts.pareto), *(_baseline_text(b) for b in facts.baselines)]  # fmt: skip
    text = "\n".join(f"- {b}" for b in bullets if b)
    named = [a for a in facts.bound if f"`{a}`" in text]
    if named:
        which = ("any of " if len(named) > 1 else "") + _join([f"`{a}`" for a in named])
        text += (f"\n\n{BUDGET_MARK} Every statement above that names {which} "
                 f"rests on budget-bound runs (the epoch cap ended training before early stopping would have): "
                 f"more epochs might change it.")
    return text


def recommend(rows: Sequence[ArchSummary], comparer: Comparer) -> str:
    """The section's markdown body (:func:`recommendation`, rendered by
    :func:`render_recommendation`)."""
    return render_recommendation(recommendation(rows, comparer))


def _pareto_sentence(front: Sequence[ArchSummary], dominated_by: Mapping[str, str],
                     left_out: Sequence[ArchSummary]) -> str:  # fmt: skip
    axes = ", ".join(label for _, _, label in PARETO_AXES)
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
