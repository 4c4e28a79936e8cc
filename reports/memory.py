"""The memory suite's part of the report, and the notebook's comparison table with every cell measured.

The memory suite trains each architecture on the generated memory task at distances T = 16, 32,
64, ... for several memory loads (``alphabet`` symbols, ``n_signals`` of them to hold). Its runs
differ by T and load, not only by seed, so the per-architecture sections of the other tasks do not
fit: :func:`memory_section` shows each architecture's *horizon* (how far it carries what it read),
the accuracy where the result changes, the non-recurrent floors and an accuracy-against-T figure.

:func:`notebook_section` puts the adjectives of the notebook this project grew from (Parameters,
Speed, Long-term Memory, Use Case) next to what one results folder measured: IMDb for size and
speed, the memory suite (and, when present, the gradient-flow probe) for memory, the report's own
recommendation logic for the use case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.results.metrics import METRICS
from bench.results.records import base_spec, extended_epochs, extensions_of
from reports.gradients import GRADIENT_PAYLOAD, load_name
from reports.imdb import IMDB_TASK
from reports.markdown import _distinct, _spec_value
from reports.plots import PLOTS_DIR, name_colors, new_figure, png_bytes
from reports.sections import (
    Built,
    ClosingSection,
    ReportContext,
    TaskContext,
    TaskReport,
    register_closing_section,
    register_task_report,
)
from reports.table import (
    BUDGET_MARK,
    MISSING,
    ArchSummary,
    budget_bound,
    budget_note,
    contention_note,
    format_ci,
    format_count,
    format_number,
    markdown_table,
    marked,
    summarize,
    training_of,
)

#: The task name of the memory suite's runs.
MEMORY_TASK = "memory"
#: The accuracy a distance counts as solved at, when the manifest names none.
DEFAULT_THRESHOLD = 0.95
#: Labels are exactly balanced: a model that guesses scores 50%.
CHANCE = 0.5
#: The accuracy-against-distance figure, under ``plots/memory/``.
HORIZON_PLOT = "memory_horizon.png"
#: The steps of distance one gradient-decay figure spans (``gradient_flow.json``'s ``span``).
GRADIENT_SPAN = 50


# ---- horizons ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """A memory load: ``n_signals`` different symbols out of ``alphabet`` to hold."""

    alphabet: int
    n_signals: int

    @property
    def bits(self) -> float:
        """What one sequence's signals carry: log2 of the ordered choices of the symbols."""
        return sum(math.log2(self.alphabet - i) for i in range(self.n_signals))

    @property
    def label(self) -> str:
        """The load's one name in every table, sentence and figure: ``2 of 16`` (two different
        symbols to hold, out of an alphabet of 16), as the suite's settings name it
        (:func:`reports.gradients.load_name`)."""
        return load_name(self.alphabet, self.n_signals)


def load_of(row: ArchSummary) -> Load | None:
    """The load of a memory row (None when its records lack ``alphabet`` or ``n_signals``)."""
    alphabet, n_signals = row.setting.get("alphabet"), row.setting.get("n_signals")
    if not isinstance(alphabet, int) or not isinstance(n_signals, int):
        return None
    return Load(alphabet, n_signals)


def _sorted_loads(loads: Iterable[Load]) -> list[Load]:
    """Lightest load first (fewest bits to hold), then by alphabet and signals."""
    return sorted(set(loads), key=lambda load: (load.bits, load.alphabet, load.n_signals))


@dataclass(frozen=True)
class Horizon:
    """How far one architecture carries one load: the distances it ran, ascending, and whether
    the mean test accuracy over its seeds reached the threshold at each.

    ``last_solved``: the largest T solved with every smaller T of its sweep solved too (None:
    not even the smallest); ``first_failed``: the smallest T not solved (None: it solved every
    T it ran). A T where every run failed counts as not solved.
    """

    arch: str
    load: Load
    points: tuple[ArchSummary, ...]  # one per distance, ascending
    solved: tuple[bool, ...]

    @property
    def distances(self) -> list[int]:
        return [int(p.setting["distance"]) for p in self.points]

    @property
    def last_solved(self) -> int | None:
        last = None
        for distance, solved in zip(self.distances, self.solved, strict=True):
            if not solved:
                break
            last = distance
        return last

    @property
    def first_failed(self) -> int | None:
        return next((d for d, ok in zip(self.distances, self.solved, strict=True) if not ok), None)

    @property
    def text(self) -> str:
        """``< 16``, ``64`` or ``≥ 512``."""
        if self.last_solved is None:
            return f"< {self.distances[0]}"
        if self.first_failed is None:
            return f"≥ {self.last_solved}"
        return str(self.last_solved)

    @property
    def key(self) -> tuple[int, int]:
        """Orders horizons, longer last: below the smallest T, then by T, "≥ T" after "T"."""
        return (self.last_solved or 0, int(self.first_failed is None and self.last_solved is not None))

    @property
    def solved_after_failing(self) -> list[int]:
        """Distances solved beyond the first failure (they do not count towards the horizon)."""
        failed = self.first_failed
        return [d for d, ok in zip(self.distances, self.solved, strict=True)
                if ok and failed is not None and d > failed]  # fmt: skip

    def point(self, distance: int | None) -> ArchSummary | None:
        return next((p for p in self.points if p.setting["distance"] == distance), None)

    @property
    def bound_at(self) -> list[int]:
        """The distances deciding the horizon (last solved, first failed) whose cell rests on a
        budget-bound run."""
        return [d for d in (self.last_solved, self.first_failed)
                if (p := self.point(d)) is not None and p.budget_bound]  # fmt: skip


def suite_settings(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest's ``memory_suite`` block (empty when absent)."""
    suite = manifest.get("memory_suite")
    return suite if isinstance(suite, Mapping) else {}


def threshold_of(manifest: Mapping[str, Any]) -> float:
    """The accuracy a distance counts as solved at: the suite's, else :data:`DEFAULT_THRESHOLD`."""
    value = suite_settings(manifest).get("threshold")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else DEFAULT_THRESHOLD


def memory_rows(
    records: Sequence[dict[str, Any]], arch_order: Iterable[str] | None = None
) -> tuple[list[ArchSummary], list[ArchSummary]]:
    """The memory records summarised per (architecture, load, T), and the rows left out because
    their records do not say their distance or load."""
    usable, unusable = [], []
    for row in summarize(records, arch_order):
        complete = load_of(row) is not None and isinstance(row.setting.get("distance"), int)
        (usable if complete else unusable).append(row)
    return usable, unusable


def horizons(rows: Sequence[ArchSummary], threshold: float) -> list[Horizon]:
    """One :class:`Horizon` per (architecture, load), in the rows' architecture order."""
    grouped: dict[tuple[str, Load], list[ArchSummary]] = {}
    for row in rows:
        grouped.setdefault((row.arch, load_of(row)), []).append(row)
    out = []
    for (arch, load), points in grouped.items():
        points.sort(key=lambda p: p.setting["distance"])
        # A hair below the threshold: a mean of accuracies that equal it may round to just under.
        solved = tuple(p.value("test_accuracy") is not None
                       and p.value("test_accuracy") >= threshold - 1e-9 for p in points)  # fmt: skip
        out.append(Horizon(arch, load, tuple(points), solved))
    return out


def _is_floor(row: ArchSummary) -> bool:
    # Declared by the model registry and carried by the record: never guessed from a name.
    return row.recurrent is False


def _accuracy_cell(point: ArchSummary | None) -> str:
    """``97.10 [95.90, 98.30] (n=3)``: mean test accuracy (%), 95% t interval, seeds."""
    if point is None:
        return MISSING
    stat = point.stats["test_accuracy"]
    if not stat.present:
        return f"FAIL ({point.failure_text()})"
    text = format_number(stat.mean, "percent")
    interval = format_ci(stat, "percent")
    text += f" {interval}" if interval != MISSING else ""
    text += f" (n={stat.n})" + (f" {BUDGET_MARK}" if point.budget_bound else "")
    if point.failed:
        text += f", {len(point.failed)} failed"
    return text


def memory_score(found: Sequence[Horizon], arch: str, loads: Sequence[Load]) -> tuple[tuple[int, int], ...]:
    """How far ``arch`` carries the loads, comparable between architectures (larger: further):
    its horizon keys at the heaviest load first, then the lighter ones; a load it did not run
    ranks below every horizon."""
    by = {(h.arch, h.load): h for h in found}
    return tuple(by[(arch, load)].key if (arch, load) in by else (-1, 0) for load in reversed(loads))


def _ordered_horizons(found: Sequence[Horizon], loads: Sequence[Load]) -> list[str]:
    """Architectures, longest horizon first (:func:`memory_score`); ties keep the registry order."""
    archs = list(dict.fromkeys(h.arch for h in found))
    return sorted(archs, key=lambda arch: memory_score(found, arch, loads), reverse=True)


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class MemoryBudget:
    """What the memory runs were given, as their specs and the suite's manifest block say: the
    distinct values of each setting over the runs (``epochs``: those of the runs an extension
    extends, not the extension's), the early-stopping target, the seeds, the extension rule."""

    epochs: tuple[Any, ...]
    patience: tuple[Any, ...]
    n_train: tuple[Any, ...]
    embedding_dim: tuple[Any, ...]
    hidden_dim: tuple[Any, ...]
    #: The validation accuracy a run stops at (None: the suite named none), how many did, and
    #: how many trained runs there were (a self-fitting floor has no epochs to stop).
    target_accuracy: float | None
    stopped_at_target: int
    runs: int
    #: Seeds run where the result changes (None: the suite did not say).
    seeds_at_change: int | None
    #: How many times its epochs a deciding run that was budget-bound and below the threshold
    #: is given once more (None: the suite declared no such rule; it predates it; 1: none).
    extension_factor: int | None


@dataclass(frozen=True)
class Extension:
    """A deciding run of the sweep run once more with more epochs: the run the epoch cap cut off
    while it improved (``base``) and its extension (``extended``), whose result stands for it."""

    arch: str
    load: Load
    distance: int
    seed: int
    base: Mapping[str, Any]
    extended: Mapping[str, Any]

    @property
    def still_bound(self) -> bool:
        """Whether the epoch cap cut off the extension too."""
        return budget_bound(self.extended)


@dataclass(frozen=True)
class MemoryFacts:
    """Everything the memory section states, before any sentence is written."""

    threshold: float
    #: Whether the manifest names the threshold (else :data:`DEFAULT_THRESHOLD` applies).
    threshold_declared: bool
    budget: MemoryBudget
    #: Every usable row (architecture, load, T), floors included; the figure draws them.
    rows: tuple[ArchSummary, ...]
    loads: tuple[Load, ...]  # lightest first
    #: The recurrent architectures' horizons, one per (architecture, load).
    horizons: tuple[Horizon, ...]
    #: The recurrent architectures, longest horizon first (:func:`memory_score`).
    order: tuple[str, ...]
    floors: tuple[ArchSummary, ...]
    #: The floors' largest distance from chance of a mean test accuracy (None: none measured).
    floor_gap: float | None
    #: Architectures with runs whose records do not say their distance and load.
    left_out: tuple[str, ...]
    #: The budget extensions in the folder (their results stand in the rows).
    extensions: tuple[Extension, ...] = ()

    @property
    def bound_decisions(self) -> list[tuple[Horizon, int, ArchSummary]]:
        """(horizon, T, its cell) for each T that decides a horizon (the last solved and the
        first failed) whose cell rests on a budget-bound run, extensions already counted."""
        return [(h, d, h.point(d)) for h in self.horizons for d in h.bound_at]

    def horizon(self, arch: str, load: Load) -> Horizon | None:
        return next((h for h in self.horizons if h.arch == arch and h.load == load), None)

    def ranking(self, load: Load) -> list[list[Horizon]]:
        """The horizons at ``load``, longest first, grouped where equal."""
        groups: dict[tuple[int, int], list[Horizon]] = {}
        for horizon in sorted((h for h in self.horizons if h.load == load), key=lambda h: h.key, reverse=True):
            groups.setdefault(horizon.key, []).append(horizon)
        return list(groups.values())


def _distinct_spec(records: Sequence[dict[str, Any]], key: str) -> tuple[Any, ...]:
    return tuple(_distinct(_spec_value(r, key) for r in records))


def _budget(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any]) -> MemoryBudget:
    suite = suite_settings(manifest)
    target, seeds, factor = (suite.get(key) for key in ("target_accuracy", "seeds_at_change",
                                                         "extension_factor"))  # fmt: skip
    bases = [{**r, "spec": base_spec(r.get("spec") or {})} for r in records]
    return MemoryBudget(
        _distinct_spec(bases, "train.epochs"),
        *(_distinct_spec(records, key) for key in ("train.patience", "data.n_train",
                                                   "model.embedding_dim", "model.hidden_dim")),
        float(target) if isinstance(target, int | float) else None,
        sum(1 for r in records if r.get("stop_reason") == "target_reached"),
        sum(1 for r in records if training_of(r) == "gradient"),  # a fit has no target to reach
        seeds if isinstance(seeds, int) else None,
        factor if isinstance(factor, int) and not isinstance(factor, bool) else None,
    )  # fmt: skip


def _extensions(records: Sequence[dict[str, Any]]) -> tuple[Extension, ...]:
    """The folder's budget extensions of runs whose records say their distance and load."""
    out = []
    for base, extended in extensions_of(records):
        data = (base.get("spec") or {}).get("data") or {}
        values = [data.get(key) for key in ("alphabet", "n_signals", "distance")]
        if all(isinstance(v, int) for v in values):
            out.append(Extension(base["arch"], Load(values[0], values[1]), values[2], base["seed"],
                                 base, extended))  # fmt: skip
    return tuple(sorted(out, key=lambda e: (e.load.bits, e.distance, e.seed)))


def memory_facts(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any]) -> MemoryFacts:
    """The memory section's facts: horizons per architecture and load, their order, the floors'
    distance from chance, the budget the horizons depend on."""
    threshold = threshold_of(manifest)
    rows, unusable = memory_rows(records, manifest.get("archs"))
    loads = _sorted_loads(load for row in rows if (load := load_of(row)) is not None)
    found = horizons([row for row in rows if not _is_floor(row)], threshold)
    floors = [row for row in rows if _is_floor(row)]
    gaps = [abs(m - CHANCE) for row in floors if (m := row.value("test_accuracy")) is not None]
    return MemoryFacts(
        threshold, "threshold" in suite_settings(manifest),
        _budget([r for row in rows for r in row.records], manifest), tuple(rows), tuple(loads),
        tuple(found), tuple(_ordered_horizons(found, loads)), tuple(floors),
        max(gaps) if gaps else None, tuple(sorted({r.arch for r in unusable})),
        _extensions(records),
    )  # fmt: skip


def _horizon_sentence(load: Load, facts: MemoryFacts) -> str:
    """``2 of 16: `gru` holds up to T = 128; `lstm` up to T = 64; `rnn` not at T = 16.``"""
    parts = []
    for index, members in enumerate(facts.ranking(load)):
        names = _join([f"`{h.arch}`" for h in members])
        verb = ("holds" if len(members) == 1 else "hold") if index == 0 else ""
        first = members[0]
        if first.last_solved is None:
            if index == 0:  # nobody holds anything: say it plainly
                verb = "does not hold" if len(members) == 1 else "do not hold"
            what = f"{'even' if index == 0 else 'not even'} T = {first.distances[0]}, the shortest distance tried"
        elif first.first_failed is None:
            what = f"every distance tried, up to T = {first.last_solved}"
        else:
            what = f"up to T = {first.last_solved}"
        parts.append(" ".join(p for p in (names, verb, what) if p))
    text = f"**{load.label}**: " + "; ".join(parts) + "."
    text += _seeds_behind(load, facts)
    for horizon in (h for h in facts.horizons if h.load == load):
        late = horizon.solved_after_failing
        if late:
            text += (f" `{horizon.arch}` reached the threshold again at T = "
                     f"{', '.join(map(str, late))} after failing T = {horizon.first_failed}; the "
                     "horizon counts unbroken success only.")  # fmt: skip
    return text


def _seeds_behind(load: Load, facts: MemoryFacts) -> str:
    """Where the horizons of ``load`` rest on different numbers of seeds (at each one's last
    solved T), a sentence saying so; empty where they rest on as many."""
    seeds = {}
    for horizon in (h for h in facts.horizons if h.load == load and h.last_solved is not None):
        point = horizon.point(horizon.last_solved)
        seeds[horizon.arch] = point.stats["test_accuracy"].n if point is not None else 0
    if len(set(seeds.values())) < 2:
        return ""
    listed = "; ".join(f"`{arch}` {n} at T = {facts.horizon(arch, load).last_solved}"
                       for arch, n in seeds.items())  # fmt: skip
    return (f" These horizons rest on different numbers of seeds ({listed}): the sweep adds seeds "
            "only where a result changes, and a horizon of fewer seeds may shorten with more.")


def _values(values: Sequence[Any]) -> str:
    """Distinct values of a setting, e.g. ``12`` or ``8, 12``."""
    return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values) or MISSING


def _extension_rule(spent: MemoryBudget) -> str:
    """The declared extension of budget-bound runs, or that there was none."""
    factor = spent.extension_factor
    if factor is None:
        return ("**No run here was extended**: the sweep that made these runs predates the suite's "
                "rule of running a deciding run once more with more epochs when the epoch cap cut "
                "it off before early stopping would have stopped it (*budget-bound*, ‡) below the "
                "threshold (the "
                "manifest declares no extension), so every result below comes from a run of at "
                f"most {_values(spent.epochs)} epochs.")  # fmt: skip
    if factor == 1:
        return ("The suite declared no extension (factor 1): a horizon may rest on a run the epoch "
                "cap cut off before early stopping would have stopped it (*budget-bound*, ‡).")  # fmt: skip
    longer = _values([e * factor for e in spent.epochs if isinstance(e, int)])
    return (f"Declared extension: a run whose result decides a horizon (seed 0 at each T of an "
            "architecture's series, and the extra seeds where its result changes) that the epoch "
            f"cap ended before early stopping would have stopped it (*budget-bound*, ‡) below the "
            "threshold is run once "
            f"more, the same run with {factor}× its epochs ({longer}), and that run's result stands "
            "for it in every table of this section; an extension is not extended again, and a "
            "budget-bound run that reached the threshold is not extended (its architecture's "
            "series went on).")  # fmt: skip


def _extension_line(extension: Extension) -> str:
    """```gru` at T = 128, 2 of 16, seed 0: 60.00% after 12 epochs ‡ → 99.00% after 24``."""
    base, longer = extension.base, extension.extended

    def run(record: Mapping[str, Any]) -> str:
        accuracy = format_number(record["metrics"].get("test_accuracy"), "percent")
        mark = f" {BUDGET_MARK}" if budget_bound(record) else ""
        return f"{accuracy}% after {record['spec']['train']['epochs']} epochs{mark}"

    return (f"`{extension.arch}` at T = {extension.distance}, {extension.load.label}, seed "
            f"{extension.seed}: {run(base)} → {run(longer)}")


def _decision_line(horizon: Horizon, distance: int, point: ArchSummary, threshold: float) -> str:
    """```lstm`, 2 of 16, T = 64 (first failed): 3 of 3 seeds (3 below the threshold, not
    extended)``: a horizon decision resting on budget-bound runs, and what they are."""
    bound = point.budget_bound
    kinds = {"extended and cut off again": sum(1 for r in bound if extended_epochs(r["spec"])),
             "at the threshold or above": sum(1 for r in bound if not extended_epochs(r["spec"])
                                              and r["metrics"]["test_accuracy"] >= threshold),
             "below the threshold, not extended": sum(
                 1 for r in bound if not extended_epochs(r["spec"])
                 and r["metrics"]["test_accuracy"] < threshold)}  # fmt: skip
    which = "last solved" if distance == horizon.last_solved else "first failed"
    detail = ", ".join(f"{k} {what}" for what, k in kinds.items() if k)
    return (f"`{horizon.arch}`, {horizon.load.label}, T = {distance} ({which}): {len(bound)} of "
            f"{len(point.ok)} seeds ({detail})")


def _extension_text(facts: MemoryFacts) -> str:
    """Which runs were extended and which horizon decisions still rest on budget-bound runs."""
    factor, lines = facts.budget.extension_factor, []
    order = {arch: i for i, arch in enumerate(facts.order)}
    extended = sorted(facts.extensions, key=lambda e: order.get(e.arch, len(order)))
    if extended:
        lines.append("Extended runs (each extension's result stands for its run in the tables "
                     "above): " + "; ".join(map(_extension_line, extended)) + ".")  # fmt: skip
    elif factor is not None and factor > 1:
        lines.append("No deciding run needed an extension.")
    bound = facts.bound_decisions
    after = " after the extensions" if extended else ""
    if not bound:
        lines.append(f"No horizon decision (an architecture's last solved or first failed T) "
                     f"rests on a budget-bound run{after}.")  # fmt: skip
        return "\n\n".join(lines)
    several = len(bound) > 1
    text = (f"{len(bound)} horizon decision{'s' if several else ''} (an architecture's last solved "
            f"or first failed T) {'still ' if after else ''}rest{'' if several else 's'} on "
            f"budget-bound runs (‡){after}, so more epochs "
            "might move them: "
            + "; ".join(_decision_line(h, t, p, facts.threshold) for h, t, p in bound) + ".")  # fmt: skip
    if factor is None:
        text += (" Under the suite's rule, each run below the threshold and not extended would be "
                 "run once more with more epochs before deciding; running the suite into this "
                 "folder again (`--resume`) runs those extensions, and what their results then call for.")  # fmt: skip
    lines.append(text)
    return "\n\n".join(lines)


def _task_text(facts: MemoryFacts) -> str:
    spent = facts.budget
    budget = (f"at most {_values(spent.epochs)} epochs with early stopping after "
              f"{_values(spent.patience)} epochs without a better validation loss, "
              f"{_values(spent.n_train)} training sequences, embedding "
              f"{_values(spent.embedding_dim)}, hidden {_values(spent.hidden_dim)}")  # fmt: skip
    if spent.target_accuracy is not None:
        budget += (f"; a run stops as soon as its validation accuracy reaches {spent.target_accuracy * 100:g}% "
                   f"({spent.stopped_at_target} of the {spent.runs} trained runs did)")  # fmt: skip
    seeds = (f"Seed 0 runs at each T of an architecture's series until it fails; up to {spent.seeds_at_change} seeds run where seed 0's "
             "result changes from solved to not solved (each cell's n says how many ran there: "
             "where the extra seeds moved the change by one T, the T now beside it has seed 0 "
             "alone)"
             if spent.seeds_at_change is not None else "Seeds as listed per cell")  # fmt: skip
    return "\n".join([
        "Each sequence is noise with a few *signal* symbols drawn from an alphabet that never "
        "occurs as noise; the first and the last signal stand exactly T positions apart, and the "
        "label is the parity of the signals' inversions in reading order (with two signals: "
        "whether the first is larger than the second). Every set of symbols comes equally often "
        "with either label, so a bag of tokens or of n-grams is at chance by construction: only "
        "the order across T decides. The two outer signals are T apart, so a backward reader "
        "must carry a symbol as far as a forward one. The task adapts the long-range probes of "
        "the adding problem and copy memory (Hochreiter & Schmidhuber 1997, *Long Short-Term "
        "Memory*; Arjovsky, Shah & Bengio 2016, *Unitary Evolution Recurrent Neural Networks*; "
        "Le, Jaitly & Hinton 2015, *A Simple Way to Initialize Recurrent Networks of Rectified "
        "Linear Units*), whose labels a bag of (marker, value) bigrams can compute. The *load* "
        "(how many symbols to hold, from how large an alphabet) is a setting, and horizons are "
        "reported per load.",
        "",
        f"Training budget: {budget}. {_extension_rule(spent)} **Horizons depend on this budget**: "
        "a longer training may solve larger T, so they say what these models reach within it, "
        "not what they could ever hold.",
        "",
        f"A distance T counts as *solved* when the mean test accuracy over the seeds run there "
        f"is at least {facts.threshold * 100:g}%"
        + ("" if facts.threshold_declared else " (the default; the manifest names no threshold)")
        + f"; chance is {CHANCE * 100:g}%. The *horizon* is the largest T solved with every "
        f"smaller T of the sweep solved too (`< T`: not even the smallest; `≥ T`: every T it ran). "
        f"{seeds}; intervals are 95% and cover the seeds' spread and the test sequences' "
        "sampling (as in the IMDb tables), clipped to 0–100%.",
    ])


def _horizon_table(facts: MemoryFacts) -> str:
    body = [[f"`{arch}`"] + [h.text if (h := facts.horizon(arch, load)) is not None else MISSING
                             for load in facts.loads] for arch in facts.order]  # fmt: skip
    return markdown_table(["Architecture"] + [f"Horizon T, {load.label}" for load in facts.loads], body)


def _change_table(facts: MemoryFacts) -> str:
    body = []
    for arch in facts.order:
        for load in facts.loads:
            horizon = facts.horizon(arch, load)
            if horizon is None:
                continue
            last, failed = horizon.last_solved, horizon.first_failed
            body.append([
                f"`{arch}`", load.label, horizon.text,
                MISSING if last is None else str(last), _accuracy_cell(horizon.point(last)),
                MISSING if failed is None else str(failed), _accuracy_cell(horizon.point(failed)),
            ])  # fmt: skip
    headers = ["Architecture", "Load", "Horizon", "Last solved T", "Test acc % there",
               "First failed T", "Test acc % there"]  # fmt: skip
    return markdown_table(headers, body, align="llrrrrr")


def _floor_table(facts: MemoryFacts) -> str:
    """The floors' accuracy at every T they ran."""
    body = []
    for arch in dict.fromkeys(row.arch for row in facts.floors):
        for load in facts.loads:
            points = sorted((r for r in facts.floors if r.arch == arch and load_of(r) == load),
                            key=lambda r: r.setting["distance"])  # fmt: skip
            if points:
                cells = "; ".join(f"T = {p.setting['distance']}: {_accuracy_cell(p)}" for p in points)
                body.append([f"`{arch}`", load.label, cells])
    return markdown_table(["Floor", "Load", "Test acc % by distance"], body, align="lll")


def probe_only(row: ArchSummary, manifest: Mapping[str, Any], ran: set[int]) -> bool:
    """Whether ``row`` is the gradient probe's run and no step of the sweep: a recurrent
    architecture at the probe's distance and first load that the sweep had not reached (the
    distance before it in the sweep, ``ran`` holding the distances run at that load)."""
    suite = suite_settings(manifest)
    loads, probe = suite.get("loads") or [], suite.get("probe_distance")
    distances = [int(d) for d in suite.get("distances") or []]
    if not row.recurrent or not loads or probe not in distances or not isinstance(loads[0], Mapping):
        return False
    first = Load(int(loads[0].get("alphabet", -1)), int(loads[0].get("n_signals", -1)))
    index = distances.index(probe)
    return (load_of(row) == first and row.setting.get("distance") == probe and index > 0
            and distances[index - 1] not in ran)


def _segments(distances: Sequence[int], sweep: Sequence[int]) -> list[list[int]]:
    """``distances`` split where the sweep skipped one (no line across a distance not run)."""
    order = {d: i for i, d in enumerate(sweep or sorted(distances))}
    segments: list[list[int]] = []
    for distance in sorted(distances):
        last = segments[-1][-1] if segments else None
        if last is not None and order.get(distance, -2) == order.get(last, -9) + 1:
            segments[-1].append(distance)
        else:
            segments.append([distance])
    return segments


def horizon_plot(rows: Sequence[ArchSummary], loads: Sequence[Load], threshold: float,
                 manifest: Mapping[str, Any] | None = None) -> bytes | None:  # fmt: skip
    """Test accuracy against T (log2 axis), one panel per load, one line per architecture: the
    mean over seeds, with the tables' 95% interval as a band. Only the sweep's runs are drawn
    (not the gradient probe's run past a horizon), and no line crosses a distance not run."""
    manifest = manifest or {}
    sweep = [int(d) for d in suite_settings(manifest).get("distances") or []]
    drawn = [row for row in rows if row.stats["test_accuracy"].present and load_of(row)]
    ran = {(row.arch, load_of(row)): {int(r.setting["distance"]) for r in drawn
                                      if r.arch == row.arch and load_of(r) == load_of(row)}
           for row in drawn}  # fmt: skip
    drawn = [row for row in drawn if not probe_only(row, manifest, ran[(row.arch, load_of(row))])]
    if not drawn or not loads:
        return None
    archs = list(dict.fromkeys(row.arch for row in drawn))
    colors = name_colors(archs)
    fig = new_figure(max(6.0, 5.0 * len(loads)), 5.2)
    axes = fig.subplots(1, len(loads), sharey=True, squeeze=False)[0]
    for ax, load in zip(axes, loads, strict=True):
        panel = {arch: {int(r.setting["distance"]): r.stats["test_accuracy"] for r in drawn
                        if r.arch == arch and load_of(r) == load} for arch in archs}  # fmt: skip
        for arch, points in panel.items():
            for segment in _segments(list(points), sweep):
                stats = [points[d] for d in segment]
                ax.plot(segment, [s.mean * 100 for s in stats], marker="o", color=colors[arch])
                if all(math.isfinite(s.ci_lo) for s in stats) and len(segment) > 1:
                    ax.fill_between(segment, [s.ci_lo * 100 for s in stats],
                                    [s.ci_hi * 100 for s in stats], color=colors[arch],
                                    alpha=0.2, linewidth=0)  # fmt: skip
        ax.axhline(threshold * 100, color="black", linestyle="--", linewidth=1)
        ax.axhline(CHANCE * 100, color="0.5", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ticks = sorted({d for points in panel.values() for d in points})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks], rotation=45 if len(ticks) > 6 else 0)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(load.label)
        ax.set_xlabel("distance T (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[a], marker="o", label=a) for a in archs]
    handles += [Line2D([], [], color="black", linestyle="--", label=f"solved: {threshold * 100:g}%"),
                Line2D([], [], color="0.5", linestyle=":", label=f"chance: {CHANCE * 100:g}%")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    fig.suptitle("Memory: test accuracy against distance (mean over seeds, 95% interval)")
    return png_bytes(fig)


def render_memory(facts: MemoryFacts, figure: str | None = None, imdb_present: bool = False) -> str:
    """The memory section's markdown from its facts; ``figure``: the horizon figure's path under
    ``plots/`` (None: no figure could be drawn); ``imdb_present`` as :func:`memory_section`'s."""
    lines = ["## Memory horizons", ""]  # the smoke caveat goes after it (reports.render)
    lines.append(_task_text(facts))
    if facts.horizons:
        lines += ["", "### How far each architecture carries what it read", "",
                  _horizon_table(facts), "",
                  *(f"- {_horizon_sentence(load, facts)}"
                    for load in facts.loads if any(h.load == load for h in facts.horizons)),
                  "", "### Accuracy where the result changes", "",
                  "Test accuracy at the last distance each architecture solves and at the first "
                  "it fails (mean over seeds, 95% interval, seeds):", "",
                  _change_table(facts)]  # fmt: skip
        bound = budget_note([r for r in facts.rows if r.recurrent], lambda r: (
            f"`{r.arch}` at T = {r.setting.get('distance')}, load {load_of(r).label}"))
        if bound:
            lines += ["", bound]
        lines += ["", _extension_text(facts)]
    else:
        lines += ["", "No recurrent architecture has a memory run with its distance and load."]
    if facts.floors:
        lines += ["", "### Non-recurrent floors", "", _floor_table(facts)]
        if facts.floor_gap is not None:
            lines += ["", f"The non-recurrent floors see which symbols occur, not their order: their "
                      f"mean test accuracy is at most {facts.floor_gap * 100:.2f} points from chance "
                      f"({CHANCE * 100:g}%) at every distance they ran."]  # fmt: skip
    if facts.left_out:
        lines += ["", "Left out: " + ", ".join(f"`{arch}`" for arch in facts.left_out)
                  + " runs whose records do not say their distance and load (`spec.data`)."]  # fmt: skip
    if figure is not None:
        title = "Test accuracy against distance"
        lines += ["", f"### {title}", "", f"![{title}]({PLOTS_DIR}/{figure})", "",
                  "One panel per load; a line per architecture through the mean over seeds, the "
                  "band the tables' 95% interval (seeds and test examples); a line joins only "
                  "distances the sweep ran one after the other, and the gradient probe's own run "
                  "past a horizon is not drawn; dashed: the threshold, dotted: chance."]  # fmt: skip
    if not imdb_present:
        lines += ["", "Run the IMDb comparison into this folder too (`run_all.py --out <this "
                  "folder> --resume`) to get the notebook's comparison table, measured."]  # fmt: skip
    return "\n".join(lines)


def memory_section(
    records: Sequence[dict[str, Any]], manifest: Mapping[str, Any], *, imdb_present: bool = False,
    plot_prefix: str = f"{MEMORY_TASK}/",
) -> tuple[str, dict[str, bytes]]:
    """The memory task's part of the report and its figure (:func:`memory_facts`, rendered by
    :func:`render_memory`).

    Returns the markdown (``##`` headings; the renderer demotes them under the task's heading when
    a folder holds several tasks) and the figures keyed by their path under ``plots/``
    (``<plot_prefix>memory_horizon.png``, ``memory/`` by default). ``imdb_present``: the folder
    also holds IMDb runs (the notebook's table then follows at the end of the report; otherwise
    one line says how to get it).
    """
    facts = memory_facts(records, manifest)
    png = horizon_plot(facts.rows, facts.loads, facts.threshold, manifest)
    name = f"{plot_prefix}{HORIZON_PLOT}" if png is not None else None
    plots = {name: png} if name is not None and png is not None else {}
    return render_memory(facts, name, imdb_present), plots


# ---- the notebook's table, measured ----------------------------------------------------------


@dataclass(frozen=True)
class NotebookRow:
    """One row of the notebook's comparison table: its model name, the registry's, its cells."""

    model: str
    arch: str
    parameters: str
    speed: str
    memory: str
    use_case: str


#: The table the notebook this project grew from ends with, cell for cell.
NOTEBOOK: tuple[NotebookRow, ...] = (
    NotebookRow("Simple RNN", "rnn", "Low", "Fast", "Poor", "Short sequences"),
    NotebookRow("LSTM", "lstm", "High", "Slow", "Excellent", "Long sequences"),
    NotebookRow("GRU", "gru", "Medium", "Medium", "Very Good", "Balanced"),
    NotebookRow("BiLSTM", "bilstm", "Highest", "Slowest", "Best", "Full context needed"),
)
#: Each ranked column's adjectives, in the notebook's words, first rank first.
SCALES: dict[str, tuple[str, ...]] = {
    "Parameters": ("Low", "Medium", "High", "Highest"),  # fewest parameters first
    "Speed": ("Fast", "Medium", "Slow", "Slowest"),  # fastest first
    "Long-term Memory": ("Best", "Excellent", "Very Good", "Poor"),  # longest horizon first
}
#: Speeds within this factor of the fastest of their group are tied (timings are noisy).
SPEED_TIE = 1.10
#: What each of the notebook's use cases claims, as a rule on the measurements.
USE_CASE_RULES: dict[str, str] = {
    "Short sequences": "its memory horizon ranks last of the four",
    "Long sequences": "its memory horizon ranks first of the four",
    "Balanced": "its weakest rank in the Speed, Long-term Memory and Test acc columns is the "
    "best weakest rank of the four (it gives up least where it is weakest; when every model's "
    "weakest rank is the same, the rule tells none apart)",
    "Full context needed": "it ranks first of the four in the Test acc column (IMDb)",
}
#: The ranked columns whose weakest rank decides "Balanced", in the order a cell names them.
BALANCE_COLUMNS = ("Speed", "Long-term Memory", "Test acc")
#: The ordinal places a column without adjectives shows (the Test acc column).
PLACES = ("1st", "2nd", "3rd", "4th")


@dataclass(frozen=True)
class Ranked:
    """One architecture's place in a column: competition rank (tied ones share the best rank of
    their group), how many were ranked, the adjective, and who ranks strictly before it."""

    rank: int
    of: int
    adjective: str
    ahead: tuple[str, ...]
    all_tied: bool


def rank_adjectives(
    scores: Mapping[str, Any], scale: Sequence[str], tied: Callable[[Any, Any], bool]
) -> dict[str, Ranked]:
    """Rank ``scores`` (higher is better) and give each the adjective of ``scale`` its rank earns.

    Sorted best first, an architecture joins the group of the one before it when ``tied(leader of
    that group, its score)``; a group shares the best rank among its members. With as many ranked
    as adjectives, rank k gets the k-th; with fewer, ranks spread evenly over the scale. Fewer
    than two ranked: nothing is ranked.
    """
    order = sorted(scores, key=lambda arch: scores[arch], reverse=True)
    if len(order) < 2:
        return {}
    groups: list[list[str]] = []
    for arch in order:
        if groups and tied(scores[groups[-1][0]], scores[arch]):
            groups[-1].append(arch)
        else:
            groups.append([arch])
    out, before = {}, []
    for group in groups:
        rank = len(before) + 1
        level = math.floor((rank - 1) * (len(scale) - 1) / (len(order) - 1) + 0.5)
        for arch in group:
            out[arch] = Ranked(rank, len(order), scale[level], tuple(before), len(groups) == 1)
        before += group
    return out


def _speed_tied(leader: float, other: float) -> bool:
    return other > 0 and leader / other <= SPEED_TIE


def _speed_score(row: ArchSummary) -> float | None:
    """The geometric mean of training and inference throughput (samples/s), or the one there is."""
    values = [v for v in (row.value("train_samples_per_s"), row.value("infer_samples_per_s"))
              if v is not None and v > 0]  # fmt: skip
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def gradient_decay(payload: Mapping[str, Any] | None, arch: str) -> tuple[float, str] | None:
    """The trained model's gradient decay per span for ``arch`` from ``gradient_flow.json``:
    a memory probe's when there is one (the first listed), else IMDb's, with where it comes from."""
    probes = [p for p in (payload or {}).get("probes") or [] if isinstance(p, Mapping)]
    for task in (MEMORY_TASK, IMDB_TASK):
        for probe in probes:
            trained = probe.get("trained")
            if probe.get("arch") != arch or probe.get("task") != task or not isinstance(trained, Mapping):
                continue
            decay = trained.get("decay_per_span")
            if isinstance(decay, int | float) and math.isfinite(decay):
                where = "IMDb" if task == IMDB_TASK else "memory"
                if task == MEMORY_TASK and isinstance(probe.get("alphabet"), int):
                    where += f", {Load(probe['alphabet'], probe.get('n_signals')).label}"
                if isinstance(probe.get("distance_T"), int):
                    where += f", T = {probe['distance_T']}"
                return float(decay), where
    return None


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _accuracy_tied(leader: float, other: float) -> bool:
    """Test accuracies equal as the Test acc column shows them (percent, two decimals)."""
    return format_number(leader, "percent") == format_number(other, "percent")


#: What the models ranked before one do, in each adjective column, said of one and of several.
_AHEAD_VERBS: dict[str, tuple[str, str]] = {
    "Parameters": ("has fewer", "have fewer"),
    "Speed": ("is faster", "are faster"),
    "Long-term Memory": ("holds longer", "hold longer"),
}


@dataclass(frozen=True)
class Weakest:
    """A model's weakest place in :data:`BALANCE_COLUMNS`: the rank, of how many, and the
    columns where it ranks so."""

    rank: int
    of: int
    columns: tuple[str, ...]


def weakest_rank(ranks: Mapping[str, Ranked | None]) -> Weakest | None:
    """The weakest of ``ranks`` (one per :data:`BALANCE_COLUMNS`; None: a column did not rank
    the model, so nothing is decided)."""
    if any(ranks.get(column) is None for column in BALANCE_COLUMNS):
        return None
    worst = max(ranks[c].rank for c in BALANCE_COLUMNS)
    return Weakest(worst, max(ranks[c].of for c in BALANCE_COLUMNS),
                   tuple(c for c in BALANCE_COLUMNS if ranks[c].rank == worst))
#: The notebook table's columns that carry a verdict, in order.
VERDICT_COLUMNS = ("Parameters", "Speed", "Long-term Memory", "Use Case")


@dataclass(frozen=True)
class Verdict:
    """Whether what the notebook said holds in one cell.

    ``outcome``: ``"yes"``, ``"no"``, ``"not measured"`` or ``"cannot tell"`` (every model alike
    there). ``ranked``: the model's place in the column, where it was ranked. A Use Case "no"
    says why in ``reason`` (``"holds longer"``: ``others`` hold longer; ``"holds less"``: only
    ``others`` hold less; ``"gives up more"``: ``others`` have a better weakest rank;
    ``"more accurate"``: ``others`` rank before it in the Test acc column).
    """

    outcome: str
    ranked: Ranked | None = None
    reason: str = ""
    others: tuple[str, ...] = ()

    @property
    def counted(self) -> bool:
        """Counted among the cells "that could be judged". As the section has always counted:
        every outcome but "cannot tell" (so a cell "not measured" counts, though it never holds)."""
        return self.outcome != "cannot tell"


@dataclass(frozen=True)
class NotebookLine:
    """One row of the notebook's table, measured: what the notebook said and what this folder
    measured for that architecture, among the four."""

    said: NotebookRow
    #: The IMDb row of its successful runs (None: none); sizes and speeds come from it.
    imdb: ArchSummary | None
    params: Ranked | None
    #: The geometric mean of training and inference throughput on IMDb (None: not measured).
    speed_score: float | None
    speed: Ranked | None
    #: Its horizons, lightest load first (only the loads it ran); empty: no memory run.
    horizons: tuple[Horizon, ...]
    memory: Ranked | None
    #: The trained model's gradient decay per span and where it was measured (None: no probe).
    gradient: tuple[float, str] | None
    #: Its place in the Test acc column (mean IMDb test accuracy, highest first).
    accuracy: Ranked | None
    #: Its weakest place in :data:`BALANCE_COLUMNS` (None: a column did not rank it).
    weakest: Weakest | None
    #: The notebook's use cases whose rule it meets.
    use_cases: tuple[str, ...]
    #: A verdict per :data:`VERDICT_COLUMNS`, in that order (empty: neither task ran it).
    verdicts: dict[str, Verdict]

    @property
    def ran(self) -> bool:
        return self.imdb is not None or bool(self.horizons)

    @property
    def param_count(self) -> float | None:
        return self.imdb.value("param_count") if self.imdb is not None else None


@dataclass(frozen=True)
class NotebookFacts:
    """Everything "The notebook's table, measured" states, before any sentence is written."""

    lines: tuple[NotebookLine, ...]
    #: The steps of distance one gradient decay spans.
    span: int
    #: The IMDb rows of the four that ran (their contention note closes the section).
    compared: tuple[ArchSummary, ...]
    #: The best weakest rank of the four (None: none has one), which "Balanced" asks for.
    best_weakest: int | None = None

    def line(self, arch: str) -> NotebookLine:
        return next(line for line in self.lines if line.said.arch == arch)

    @property
    def judged(self) -> int:
        return sum(v.counted for line in self.lines for v in line.verdicts.values())

    @property
    def holds(self) -> int:
        return sum(v.outcome == "yes" for line in self.lines for v in line.verdicts.values())


def _adjective_verdict(said: str, ranked: Ranked | None) -> Verdict:
    if ranked is None:
        return Verdict("not measured")
    if ranked.all_tied:
        return Verdict("cannot tell", ranked)
    return Verdict("yes" if ranked.adjective == said else "no", ranked)


def _balanced(weakest: Mapping[str, Weakest]) -> tuple[set[str], int | None]:
    """Who meets "Balanced" (the best weakest rank), and that rank; nobody when every model's
    weakest rank is the same (the rule then tells none apart)."""
    if not weakest:
        return set(), None
    best = min(w.rank for w in weakest.values())
    if all(w.rank == best for w in weakest.values()):
        return set(), best
    return {arch for arch, w in weakest.items() if w.rank == best}, best


def _use_cases(arch: str, memory: Mapping[str, Ranked], accuracy: Mapping[str, Ranked],
               balanced: set[str]) -> list[str]:  # fmt: skip
    """The notebook's use cases whose rule (:data:`USE_CASE_RULES`) ``arch`` meets."""
    held = []
    rank = memory.get(arch)
    if rank is not None and not rank.all_tied:
        if rank.rank == 1:
            held.append("Long sequences")
        if rank.rank == max(r.rank for r in memory.values()):
            held.append("Short sequences")
    if arch in balanced:
        held.append("Balanced")
    place = accuracy.get(arch)
    if place is not None and not place.all_tied and place.rank == 1:
        held.append("Full context needed")
    return held


def _use_case_verdict(nb: NotebookRow, held: Sequence[str], memory: Mapping[str, Ranked],
                      accuracy: Mapping[str, Ranked], weakest: Mapping[str, Weakest],
                      balanced: set[str]) -> Verdict:  # fmt: skip
    if nb.use_case in held:
        return Verdict("yes")
    if nb.use_case == "Balanced":
        if nb.arch not in weakest:
            return Verdict("not measured")
        if not balanced:
            return Verdict("cannot tell", reason="weakest alike")
        return Verdict("no", reason="gives up more", others=tuple(sorted(balanced, key=list(weakest).index)))
    rank = (accuracy if nb.use_case == "Full context needed" else memory).get(nb.arch)
    if rank is None:
        return Verdict("not measured")
    if rank.all_tied:
        return Verdict("cannot tell", rank, "accuracy alike" if nb.use_case == "Full context needed" else "")
    if nb.use_case == "Long sequences":
        return Verdict("no", rank, "holds longer", rank.ahead)
    if nb.use_case == "Short sequences":
        return Verdict("no", rank, "holds less", tuple(a for a, r in memory.items() if r.rank > rank.rank))
    return Verdict("no", rank, "more accurate", tuple(a for a, r in accuracy.items() if r.rank == 1))


def notebook_facts(
    imdb_rows: Sequence[ArchSummary],
    memory_records: Sequence[dict[str, Any]],
    manifest: Mapping[str, Any],
    gradient_payload: Mapping[str, Any] | None = None,
) -> NotebookFacts | None:
    """What the notebook's table, measured, states: per row of the notebook, the measured
    values, their ranks and adjectives among the four, the use cases each meets and whether the
    notebook's word holds. Arguments as :func:`notebook_section`'s; None when the folder lacks
    either task's runs."""
    ok_imdb = {row.arch: row for row in imdb_rows if row.ok}
    if not ok_imdb or not memory_records:
        return None
    rows, _ = memory_rows(memory_records, manifest.get("archs"))
    loads = _sorted_loads(load for row in rows if (load := load_of(row)) is not None)
    found = horizons([r for r in rows if not _is_floor(r)], threshold_of(manifest))
    four = [ok_imdb[nb.arch] for nb in NOTEBOOK if nb.arch in ok_imdb]
    params = rank_adjectives({r.arch: -r.value("param_count") for r in four
                              if r.value("param_count") is not None},
                             SCALES["Parameters"], lambda a, b: a == b)  # fmt: skip
    speeds = {r.arch: s for r in four if (s := _speed_score(r)) is not None}
    speed = rank_adjectives(speeds, SCALES["Speed"], _speed_tied)
    memory_scores = {nb.arch: memory_score(found, nb.arch, loads)
                     for nb in NOTEBOOK if any(h.arch == nb.arch for h in found)}  # fmt: skip
    memory = rank_adjectives(memory_scores, SCALES["Long-term Memory"], lambda a, b: a == b)
    accuracy = rank_adjectives({r.arch: r.value("test_accuracy") for r in four
                                if r.value("test_accuracy") is not None}, PLACES, _accuracy_tied)  # fmt: skip
    columns = {"Speed": speed, "Long-term Memory": memory, "Test acc": accuracy}
    weakest = {nb.arch: w for nb in NOTEBOOK
               if (w := weakest_rank({c: ranks.get(nb.arch) for c, ranks in columns.items()}))}  # fmt: skip
    balanced, best_weakest = _balanced(weakest)
    by_horizon = {(h.arch, h.load): h for h in found}
    lines = []
    for nb in NOTEBOOK:
        row = ok_imdb.get(nb.arch)
        held = _use_cases(nb.arch, memory, accuracy, balanced)
        ran = row is not None or nb.arch in memory_scores
        verdicts = {
            "Parameters": _adjective_verdict(nb.parameters, params.get(nb.arch)),
            "Speed": _adjective_verdict(nb.speed, speed.get(nb.arch)),
            "Long-term Memory": _adjective_verdict(nb.memory, memory.get(nb.arch)),
            "Use Case": _use_case_verdict(nb, held, memory, accuracy, weakest, balanced),
        } if ran else {}  # fmt: skip
        lines.append(NotebookLine(
            nb, row, params.get(nb.arch), speeds.get(nb.arch) if row is not None else None,
            speed.get(nb.arch),
            tuple(by_horizon[(nb.arch, load)] for load in loads if (nb.arch, load) in by_horizon),
            memory.get(nb.arch),
            gradient_decay(gradient_payload, nb.arch) if nb.arch in memory_scores else None,
            accuracy.get(nb.arch), weakest.get(nb.arch), tuple(held), verdicts,
        ))  # fmt: skip
    span = (gradient_payload or {}).get("span", GRADIENT_SPAN)
    return NotebookFacts(tuple(lines), span, tuple(four), best_weakest)


# ---- the notebook's table, rendered from its facts ---------------------------------------------


def _cell(text: str, ranked: Ranked | None) -> str:
    if ranked is None:
        return text
    return f"{text} (**{'alike' if ranked.all_tied else ranked.adjective}**)"


def _names_do(names: Sequence[str], what: str) -> str:
    """```gru` holds longer`` / ```lstm` and `gru` hold longer``."""
    return f"{_join([f'`{a}`' for a in names])} hold{'s' if len(names) == 1 else ''} {what}"


def _verdict_text(column: str, verdict: Verdict) -> str:
    """``yes`` / ``no, Medium here (2nd of 4; `gru` is faster)`` / ``not measured`` / ..."""
    ranked = verdict.ranked
    if verdict.outcome in ("yes", "not measured"):
        return verdict.outcome
    if verdict.outcome == "cannot tell":
        return "cannot tell, " + (_ALIKE.get(verdict.reason, "every horizon alike here")
                                  if column == "Use Case" else "all alike here")  # fmt: skip
    if column != "Use Case":
        assert ranked is not None  # an adjective's "no" is a rank
        ahead = _join([f"`{a}`" for a in ranked.ahead]) if ranked.ahead else ""
        who = f"; {ahead} {_AHEAD_VERBS[column][len(ranked.ahead) > 1]}" if ahead else ", first here"
        return f"no, {ranked.adjective} here ({_ordinal(ranked.rank)} of {ranked.of}{who})"
    return "no, " + {
        "holds longer": lambda: _names_do(verdict.others, "longer"),
        "holds less": lambda: _names_do(verdict.others, "less"),
        "gives up more": lambda: f"{_join([f'`{a}`' for a in verdict.others])} "
        f"{'gives' if len(verdict.others) == 1 else 'give'} up less where weakest",
        "more accurate": lambda: f"{_join([f'`{a}`' for a in verdict.others])} "
        f"{'ranks' if len(verdict.others) == 1 else 'rank'} first in Test acc",
    }[verdict.reason]()


#: A Use Case "cannot tell", by what was alike (``Verdict.reason``; else every horizon).
_ALIKE = {"weakest alike": "every weakest rank alike here", "accuracy alike": "every accuracy alike here"}


def _place(ranked: Ranked) -> str:
    return "alike" if ranked.all_tied else f"{_ordinal(ranked.rank)} of {ranked.of}"


def _use_case_cell(line: NotebookLine, best_weakest: int | None) -> str:
    """The rules met, in bold, and the column places they rest on, e.g. ``**Balanced**: Speed
    2nd, Long-term Memory 3rd, Test acc 2nd of 4; weakest 3rd, the four's best``."""
    met = f"**{' / '.join(line.use_cases)}**" if line.use_cases else "**none of the four**"
    ranks = {"Speed": line.speed, "Long-term Memory": line.memory, "Test acc": line.accuracy}
    shown = [f"{column} {_ordinal(r.rank)}" for column, r in ranks.items() if r is not None]
    if not shown:
        return met
    text = f"{met}: {', '.join(shown)} of {max(r.of for r in ranks.values() if r is not None)}"
    if line.weakest is not None and best_weakest is not None:
        best = ("the four's best" if line.weakest.rank == best_weakest
                else f"the four's best: {_ordinal(best_weakest)}")  # fmt: skip
        text += f"; weakest {_ordinal(line.weakest.rank)}, {best}"
    return text


def _memory_cell(line: NotebookLine, span: int) -> str:
    """Horizons per load (‡ where a deciding T rests on a budget-bound run), the gradient figure."""
    if not line.horizons:
        return MISSING
    text = "horizon " + ", ".join(f"{h.text}{f' {BUDGET_MARK}' if h.bound_at else ''} "
                                  f"({h.load.label})" for h in line.horizons)  # fmt: skip
    if line.gradient is not None:
        text += f"; gradient ×{line.gradient[0]:.2g} per {span} steps ({line.gradient[1]})"
    return _cell(text, line.memory)


def _accuracy_cell_imdb(line: NotebookLine) -> str:
    """``87.14% ‡ (1st of 4)``: the mean IMDb test accuracy and its place."""
    row = line.imdb
    if row is None or row.value("test_accuracy") is None:
        return MISSING
    text = f"{format_number(row.value('test_accuracy'), 'percent')}%" + (
        f" {BUDGET_MARK}" if row.budget_bound else "")
    return text + (f" ({_place(line.accuracy)})" if line.accuracy is not None else "")


def _notebook_cells(line: NotebookLine, facts: NotebookFacts) -> list[str]:
    """One row of the rendered table: the measured cells, what the notebook said, the verdicts."""
    nb, row = line.said, line.imdb
    said = f"{nb.parameters} · {nb.speed} · {nb.memory} · {nb.use_case}"
    if not line.ran:
        return [f"{nb.model} (`{nb.arch}`)", MISSING, MISSING, MISSING, MISSING, MISSING, said, "not run"]
    count = line.param_count
    param_cell = _cell(format_count(count), line.params) if count is not None else MISSING
    speed_cell = MISSING
    if row is not None and line.speed_score is not None:
        parts = [f"{label} {marked(row, METRICS[metric], format_number(row.value(metric), 'sig3'))}"
                 for label, metric in (("train", "train_samples_per_s"), ("infer", "infer_samples_per_s"))
                 if row.value(metric) is not None]  # fmt: skip
        # the figure the column ranks, so a reader can check the adjective and every place quoted
        parts.append(f"geometric mean {format_number(line.speed_score, 'sig3')}")
        speed_cell = _cell(", ".join(parts) + " samples/s", line.speed)
    verdicts = "; ".join(f"{column}: {_verdict_text(column, v)}" for column, v in line.verdicts.items())
    return [f"{nb.model} (`{nb.arch}`)", param_cell, speed_cell, _memory_cell(line, facts.span),
            _accuracy_cell_imdb(line), _use_case_cell(line, facts.best_weakest), said, verdicts]


def render_notebook(facts: NotebookFacts) -> str:
    """The markdown of "The notebook's table, measured", from its facts."""
    headers = ["Model", "Parameters", "Speed (IMDb)", "Long-term Memory", "Test acc (IMDb)",
               "Use Case", "Notebook said", "Holds?"]  # fmt: skip
    body = [_notebook_cells(line, facts) for line in facts.lines]
    lines = [
        "## The notebook's table, measured", "",
        "The notebook this project grew from ends with a table of adjectives. Here is each of its "
        "cells measured in this folder: the value, the adjective that value earns (in bold), what "
        "the notebook said, and whether it holds.", "",
        markdown_table(headers, body, align="llllllll"), "",
        f"The notebook's adjective holds in {facts.holds} of {facts.judged} cells that could be judged.",
        "", "How the adjectives are given (ranks among the four models above that ran):", "",
        f"- **Parameters**: trainable parameters on IMDb, fewest first: "
        f"{', '.join(SCALES['Parameters'])}; equal counts tie.",
        f"- **Speed**: the geometric mean of IMDb training and inference throughput (samples/s, "
        f"this machine; shown in the cell), fastest first: {', '.join(SCALES['Speed'])}; speeds "
        f"within {(SPEED_TIE - 1) * 100:.0f}% of the fastest of their group tie. Every place in "
        "Speed quoted in this section is this ranking's.",
        f"- **Long-term Memory**: the memory horizons (heaviest load first, then the lighter ones), "
        f"longest first: {', '.join(SCALES['Long-term Memory'])}; equal horizons at every load tie. "
        f"The gradient figure, where the gradient-flow probe ran, is the factor by which the norm "
        f"of the loss gradient with respect to an input embedding changes per "
        f"{facts.span} steps of distance from the "
        "readout, after training (`gradient_flow.json`); it is shown, not ranked. "
        f"{BUDGET_MARK} after a horizon: the test accuracy at one of the distances that decide it "
        "(its last solved or first failed T) rests on a budget-bound run (the memory section "
        "lists them).",
        "- **Test acc**: the mean IMDb test accuracy, highest first, placed 1st to 4th (the "
        "notebook gave it no adjective); equal as shown (two decimals) ties. Whether a "
        "difference between two of them is significant, the IMDb section's paired tests say.",
        "- Ranks: tied models share the best rank of their group, and the next group's rank "
        "counts the models before it; with all four ranked, rank k gets the k-th adjective "
        "(with fewer, the ranks spread evenly over the four). All four alike: no adjective.",
        "- **Use Case**: the notebook's use cases as rules on the columns of this table; a model "
        "earns each rule it meets (after the colon: its places in the Speed, Long-term Memory and "
        "Test acc columns, the weakest of them, and the best weakest place of the four): "
        + "; ".join(f"*{name}*: {rule}" for name, rule in USE_CASE_RULES.items()) + ".",
    ]  # fmt: skip
    for note in (budget_note(facts.compared, lambda r: f"`{r.arch}` on IMDb"),
                 contention_note(facts.compared)):
        if note:
            lines += ["", note]
    return "\n".join(lines)


def notebook_section(
    imdb_rows: Sequence[ArchSummary],
    memory_records: Sequence[dict[str, Any]],
    manifest: Mapping[str, Any],
    gradient_payload: Mapping[str, Any] | None = None,
) -> str | None:
    """"The notebook's table, measured": its four rows, every cell a measured value with the
    adjective that measurement earns, what the notebook said and whether it holds
    (:func:`notebook_facts`, rendered by :func:`render_notebook`).

    ``imdb_rows``: the IMDb task's :func:`reports.table.summarize` rows; ``memory_records``: the
    memory suite's records; ``gradient_payload``: ``gradient_flow.json`` as read (None: absent).
    None when the folder lacks either task's runs.
    """
    facts = notebook_facts(imdb_rows, memory_records, manifest, gradient_payload)
    return None if facts is None else render_notebook(facts)


# ---- the registrations -------------------------------------------------------------------------

#: The settings of a memory run that make it another experiment, not another seed.
SWEPT = ("alphabet", "n_signals", "distance")
#: The name of the notebook's closing section.
NOTEBOOK_SECTION = "notebook"
#: The tasks the notebook's table needs in one folder: IMDb for size and speed, memory for memory.
NOTEBOOK_TASKS = (IMDB_TASK, MEMORY_TASK)


def _build_memory(context: TaskContext) -> Built:
    notebook_follows = set(NOTEBOOK_TASKS).issubset(context.tasks)
    return memory_section(context.records, context.manifest, imdb_present=notebook_follows,
                          plot_prefix=context.plot_prefix)  # fmt: skip


def _build_notebook(context: ReportContext) -> Built:
    text = notebook_section(context.rows[IMDB_TASK], context.tasks[MEMORY_TASK],
                            context.manifest, context.payloads.get(GRADIENT_PAYLOAD))  # fmt: skip
    return text, {}


register_task_report(TaskReport(
    MEMORY_TASK, swept_settings=SWEPT, section=_build_memory, figures=(HORIZON_PLOT,),
    smoke_note="at the two shortest distances only, with tiny models on a few thousand "
    "sequences: its horizons, ranks and the sentences below"))
register_closing_section(ClosingSection(NOTEBOOK_SECTION, _build_notebook,
                                        tasks=NOTEBOOK_TASKS, order=20))  # fmt: skip
