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

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.metrics import METRICS
from reports.markdown import _distinct, _spec_value
from reports.plots import PLOTS_DIR, name_colors, new_figure, png_bytes
from reports.recommend import best_at_winners, pareto_set
from reports.stats import mean_std_ci
from reports.table import (
    MISSING,
    ArchSummary,
    contention_note,
    format_ci,
    format_count,
    format_number,
    markdown_table,
    marked,
    summarize,
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
        return f"{self.alphabet} symbols × {self.n_signals}"

    @property
    def short(self) -> str:
        return f"{self.alphabet}×{self.n_signals}"


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
    text += f" (n={stat.n})"
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


def _horizon_sentence(load: Load, found: Sequence[Horizon]) -> str:
    """``16 symbols × 2: `gru` holds up to T = 128; `lstm` up to T = 64; `rnn` not at T = 16.``"""
    groups: dict[tuple[int, int], list[Horizon]] = {}
    for horizon in sorted(found, key=lambda h: h.key, reverse=True):
        groups.setdefault(horizon.key, []).append(horizon)
    parts = []
    for index, members in enumerate(groups.values()):
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
    for horizon in found:
        late = horizon.solved_after_failing
        if late:
            text += (f" `{horizon.arch}` reached the threshold again at T = "
                     f"{', '.join(map(str, late))} after failing T = {horizon.first_failed}; the "
                     "horizon counts unbroken success only.")  # fmt: skip
    return text


def _values(records: Sequence[dict[str, Any]], key: str) -> str:
    """The distinct values of ``section.field`` in the records' specs, e.g. ``12`` or ``8, 12``."""
    values = _distinct(_spec_value(r, key) for r in records)
    return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values) or MISSING


def _task_text(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any], threshold: float) -> str:
    suite = suite_settings(manifest)
    target = suite.get("target_accuracy")
    stopped = sum(1 for r in records if r.get("stop_reason") == "target_reached")
    budget = (f"at most {_values(records, 'train.epochs')} epochs with early stopping after "
              f"{_values(records, 'train.patience')} epochs without a better validation loss, "
              f"{_values(records, 'data.n_train')} training sequences, embedding "
              f"{_values(records, 'model.embedding_dim')}, hidden {_values(records, 'model.hidden_dim')}")  # fmt: skip
    if isinstance(target, int | float):
        budget += (f"; a run stops as soon as its validation accuracy reaches {target * 100:g}% "
                   f"({stopped} of {len(records)} runs did)")  # fmt: skip
    seeds_at_change = suite.get("seeds_at_change")
    seeds = (f"Seed 0 runs at every T; {seeds_at_change} seeds run at the last T each "
             "architecture solves and the first it fails" if isinstance(seeds_at_change, int)
             else "Seeds as listed per cell")  # fmt: skip
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
        f"Training budget: {budget}. **Horizons depend on this budget**: a longer training may "
        "solve larger T, so they say what these models reach within it, not what they could "
        "ever hold.",
        "",
        f"A distance T counts as *solved* when the mean test accuracy over the seeds run there "
        f"is at least {threshold * 100:g}%"
        + ("" if "threshold" in suite else " (the default; the manifest names no threshold)")
        + f"; chance is {CHANCE * 100:g}%. The *horizon* is the largest T solved with every "
        f"smaller T of the sweep solved too (`< T`: not even the smallest; `≥ T`: every T it ran). "
        f"{seeds}; intervals are 95% Student t intervals over seeds (none with one seed), clipped "
        "to 0–100%.",
    ])


def _horizon_table(found: Sequence[Horizon], loads: Sequence[Load]) -> str:
    by = {(h.arch, h.load): h for h in found}
    body = [[f"`{arch}`"] + [by[(arch, load)].text if (arch, load) in by else MISSING for load in loads]
            for arch in _ordered_horizons(found, loads)]  # fmt: skip
    return markdown_table(["Architecture"] + [f"Horizon T, {load.label}" for load in loads], body)


def _change_table(found: Sequence[Horizon], loads: Sequence[Load]) -> str:
    by = {(h.arch, h.load): h for h in found}
    body = []
    for arch in _ordered_horizons(found, loads):
        for load in loads:
            horizon = by.get((arch, load))
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


def _floor_table(floors: Sequence[ArchSummary], loads: Sequence[Load]) -> tuple[str, str]:
    """The floors' accuracy at every T they ran, and a sentence on how far from chance."""
    archs = list(dict.fromkeys(row.arch for row in floors))
    body, spans = [], []
    for arch in archs:
        for load in loads:
            points = sorted((r for r in floors if r.arch == arch and load_of(r) == load),
                            key=lambda r: r.setting["distance"])  # fmt: skip
            if not points:
                continue
            cells = "; ".join(f"T = {p.setting['distance']}: {_accuracy_cell(p)}" for p in points)
            body.append([f"`{arch}`", load.label, cells])
            means = [p.value("test_accuracy") for p in points if p.value("test_accuracy") is not None]
            spans += [abs(m - CHANCE) for m in means]
    table = markdown_table(["Floor", "Load", "Test acc % by distance"], body, align="lll")
    sentence = ""
    if spans:
        sentence = (f"The non-recurrent floors see which symbols occur, not their order: their "
                    f"mean test accuracy is at most {max(spans) * 100:.2f} points from chance "
                    f"({CHANCE * 100:g}%) at every distance they ran.")  # fmt: skip
    return table, sentence


def _t_interval(values: Sequence[float]) -> tuple[float, float]:
    # The report's one interval over seeds (reports.stats), so the figure and the tables agree.
    _, _, lo, hi, _ = mean_std_ci(values)
    return max(lo, 0.0), min(hi, 100.0)  # accuracy in %: clipped as the tables clip it


def horizon_plot(
    rows: Sequence[ArchSummary], loads: Sequence[Load], threshold: float
) -> bytes | None:
    """Test accuracy against T (log2 axis), one panel per load, one line per architecture: the
    mean over seeds with its 95% Student t interval as a band where several seeds ran."""
    import seaborn as sns  # here, not at the top: only this figure needs it, and it loads pyplot

    points = [(row, run) for row in rows for run in row.ok
              if run["metrics"].get("test_accuracy") is not None]  # fmt: skip
    if not points or not loads:
        return None
    frame = pd.DataFrame({
        "arch": [row.arch for row, _ in points],
        "load": [load_of(row).label for row, _ in points],
        "T": [int(row.setting["distance"]) for row, _ in points],
        "accuracy": [float(run["metrics"]["test_accuracy"]) * 100 for _, run in points],
    })  # fmt: skip
    archs = list(dict.fromkeys(row.arch for row in rows))
    colors = name_colors(archs)
    fig = new_figure(max(6.0, 5.0 * len(loads)), 4.8)
    axes = fig.subplots(1, len(loads), sharey=True, squeeze=False)[0]
    for ax, load in zip(axes, loads, strict=True):
        panel = frame[frame["load"] == load.label]
        present = [a for a in archs if a in set(panel["arch"])]
        if present:
            sns.lineplot(data=panel, x="T", y="accuracy", hue="arch", hue_order=present,
                         palette=colors, errorbar=_t_interval, marker="o", legend=False, ax=ax)  # fmt: skip
        ax.axhline(threshold * 100, color="black", linestyle="--", linewidth=1)
        ax.axhline(CHANCE * 100, color="0.5", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ticks = sorted(set(panel["T"]))
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
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8))
    fig.suptitle("Memory: test accuracy against distance (mean over seeds, 95% t interval)")
    return png_bytes(fig)


def memory_section(
    records: Sequence[dict[str, Any]], manifest: Mapping[str, Any], *, imdb_present: bool = False
) -> tuple[str, dict[str, bytes]]:
    """The memory task's part of the report and its figure.

    Returns the markdown (``##`` headings; the renderer demotes them under the task's heading when
    a folder holds several tasks) and the figures keyed by their path under ``plots/``
    (``memory/memory_horizon.png``). ``imdb_present``: the folder also holds IMDb runs (the
    notebook's table then follows at the end of the report; otherwise one line says how to get it).
    """
    threshold = threshold_of(manifest)
    rows, unusable = memory_rows(records, manifest.get("archs"))
    loads = _sorted_loads(load for row in rows if (load := load_of(row)) is not None)
    recurrent = [row for row in rows if not _is_floor(row)]
    found = horizons(recurrent, threshold)
    lines = ["## Memory horizons", ""]  # the smoke caveat goes after it (reports.render)
    lines.append(_task_text([r for row in rows for r in row.records], manifest, threshold))
    if found:
        lines += ["", "### How far each architecture carries what it read", "",
                  _horizon_table(found, loads), "",
                  *(f"- {_horizon_sentence(load, [h for h in found if h.load == load])}"
                    for load in loads if any(h.load == load for h in found)),
                  "", "### Accuracy where the result changes", "",
                  "Test accuracy at the last distance each architecture solves and at the first "
                  "it fails (mean over seeds, 95% interval, seeds):", "",
                  _change_table(found, loads)]  # fmt: skip
    else:
        lines += ["", "No recurrent architecture has a memory run with its distance and load."]
    floors = [row for row in rows if _is_floor(row)]
    if floors:
        table, sentence = _floor_table(floors, loads)
        lines += ["", "### Non-recurrent floors", "", table] + (["", sentence] if sentence else [])
    if unusable:
        lines += ["", "Left out: " + ", ".join(sorted({f"`{r.arch}`" for r in unusable}))
                  + " runs whose records do not say their distance and load (`spec.data`)."]  # fmt: skip
    plots = {}
    png = horizon_plot(rows, loads, threshold)
    if png is not None:
        name = f"{MEMORY_TASK}/{HORIZON_PLOT}"
        plots[name] = png
        title = "Test accuracy against distance"
        lines += ["", f"### {title}", "", f"![{title}]({PLOTS_DIR}/{name})", "",
                  "One panel per load; a line per architecture through the mean over seeds, the "
                  "band its 95% Student t interval where several seeds ran (at the distances where "
                  "the result changes); dashed: the threshold, dotted: chance."]  # fmt: skip
    if not imdb_present:
        lines += ["", "Run the IMDb comparison into this folder too (`run_all.py --out <this "
                  "folder> --resume`) to get the notebook's comparison table, measured."]  # fmt: skip
    return "\n".join(lines), plots


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
    "Balanced": "it is Pareto-optimal among the four on IMDb (test accuracy, latency p50, peak "
    "training memory) and its horizon does not rank last",
    "Full context needed": "it is the most accurate of the four on IMDb (mean test accuracy)",
}


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
    for task in (MEMORY_TASK, "imdb"):
        for probe in probes:
            trained = probe.get("trained")
            if probe.get("arch") != arch or probe.get("task") != task or not isinstance(trained, Mapping):
                continue
            decay = trained.get("decay_per_span")
            if isinstance(decay, int | float) and math.isfinite(decay):
                where = "IMDb" if task == "imdb" else "memory"
                if task == MEMORY_TASK and isinstance(probe.get("alphabet"), int):
                    where += f", {probe['alphabet']}×{probe.get('n_signals')}"
                if isinstance(probe.get("distance_T"), int):
                    where += f", T = {probe['distance_T']}"
                return float(decay), where
    return None


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _verdict(said: str, ranked: Ranked | None, verbs: tuple[str, str]) -> str:
    """``yes`` / ``no, Medium here (2nd of 4; `gru` is faster)`` / ``not measured``; ``verbs``:
    what the ones ranked before it do, said of one and of several (``is faster``, ``are faster``)."""
    if ranked is None:
        return "not measured"
    if ranked.all_tied:
        return "cannot tell, all alike here"
    if ranked.adjective == said:
        return "yes"
    ahead = _join([f"`{a}`" for a in ranked.ahead]) if ranked.ahead else ""
    who = f"; {ahead} {verbs[len(ranked.ahead) > 1]}" if ahead else ", first here"
    return f"no, {ranked.adjective} here ({_ordinal(ranked.rank)} of {ranked.of}{who})"


def _cell(text: str, ranked: Ranked | None) -> str:
    if ranked is None:
        return text
    return f"{text} (**{'alike' if ranked.all_tied else ranked.adjective}**)"


def notebook_section(
    imdb_rows: Sequence[ArchSummary],
    memory_records: Sequence[dict[str, Any]],
    manifest: Mapping[str, Any],
    gradient_payload: Mapping[str, Any] | None = None,
) -> str | None:
    """"The notebook's table, measured": its four rows, every cell a measured value with the
    adjective that measurement earns, what the notebook said and whether it holds.

    ``imdb_rows``: the IMDb task's :func:`reports.table.summarize` rows; ``memory_records``: the
    memory suite's records; ``gradient_payload``: ``gradient_flow.json`` as read (None: absent).
    None when the folder lacks either task's runs.
    """
    ok_imdb = {row.arch: row for row in imdb_rows if row.ok}
    if not ok_imdb or not memory_records:
        return None
    threshold = threshold_of(manifest)
    rows, _ = memory_rows(memory_records, manifest.get("archs"))
    loads = _sorted_loads(load for row in rows if (load := load_of(row)) is not None)
    found = horizons([r for r in rows if not _is_floor(r)], threshold)
    archs = [nb.arch for nb in NOTEBOOK]
    four = [ok_imdb[a] for a in archs if a in ok_imdb]
    by_horizon = {(h.arch, h.load): h for h in found}

    params = rank_adjectives({r.arch: -r.value("param_count") for r in four
                              if r.value("param_count") is not None},
                             SCALES["Parameters"], lambda a, b: a == b)  # fmt: skip
    speeds = {r.arch: s for r in four if (s := _speed_score(r)) is not None}
    speed = rank_adjectives(speeds, SCALES["Speed"], _speed_tied)
    memory_scores = {arch: memory_score(found, arch, loads)
                     for arch in archs if any(h.arch == arch for h in found)}  # fmt: skip
    memory = rank_adjectives(memory_scores, SCALES["Long-term Memory"], lambda a, b: a == b)
    winners = best_at_winners(four)
    front, dominated_by, _ = pareto_set(four)
    front_archs = {r.arch for r in front}
    most_accurate = next((row.arch for title, row in winners if title == "Most accurate"), None)

    def claims(arch: str) -> list[str]:
        held = []
        rank = memory.get(arch)
        if rank is not None and not rank.all_tied:
            last_rank = max(r.rank for r in memory.values())
            if rank.rank == 1:
                held.append("Long sequences")
            if rank.rank == last_rank:
                held.append("Short sequences")
        if arch in front_archs and "Short sequences" not in held:
            held.append("Balanced")
        if arch == most_accurate:
            held.append("Full context needed")
        return held

    def use_case_verdict(nb: NotebookRow) -> str:
        held = claims(nb.arch)
        if nb.use_case in held:
            return "yes"
        rank = memory.get(nb.arch)
        if nb.use_case in ("Short sequences", "Long sequences"):
            if rank is None:
                return "not measured"
            if rank.all_tied:
                return "cannot tell, every horizon alike here"
            if nb.use_case == "Long sequences":
                return f"no, {_join([f'`{a}`' for a in rank.ahead])} hold{'s' if len(rank.ahead) == 1 else ''} longer"
            behind = [a for a, r in memory.items() if r.rank > rank.rank]
            return f"no, {_join([f'`{a}`' for a in behind])} hold{'s' if len(behind) == 1 else ''} less"
        if nb.use_case == "Balanced":
            if nb.arch in dominated_by:
                return f"no, dominated on IMDb by `{dominated_by[nb.arch]}`"
            if nb.arch in front_archs:
                return "no, its horizon ranks last"
            return "not measured"
        return f"no, `{most_accurate}` is more accurate on IMDb" if most_accurate else "not measured"

    body, holds_count, judged = [], 0, 0
    for nb in NOTEBOOK:
        row = ok_imdb.get(nb.arch)
        if row is None and nb.arch not in memory_scores:
            body.append([f"{nb.model} (`{nb.arch}`)", MISSING, MISSING, MISSING, MISSING,
                         f"{nb.parameters} · {nb.speed} · {nb.memory} · {nb.use_case}", "not run"])  # fmt: skip
            continue
        count = row.value("param_count") if row is not None else None
        param_cell = _cell(format_count(count), params.get(nb.arch)) if count is not None else MISSING
        if row is not None and nb.arch in speeds:
            parts = [f"{label} {marked(row, METRICS[metric], format_number(row.value(metric), 'sig3'))}"
                     for label, metric in (("train", "train_samples_per_s"), ("infer", "infer_samples_per_s"))
                     if row.value(metric) is not None]  # fmt: skip
            speed_cell = _cell(", ".join(parts) + " samples/s", speed.get(nb.arch))
        else:
            speed_cell = MISSING
        if nb.arch in memory_scores:
            spans = ", ".join(f"{by_horizon[(nb.arch, load)].text} ({load.short})"
                              for load in loads if (nb.arch, load) in by_horizon)  # fmt: skip
            text = f"horizon {spans}"
            decay = gradient_decay(gradient_payload, nb.arch)
            if decay is not None:
                span = (gradient_payload or {}).get("span", GRADIENT_SPAN)
                text += f"; gradient ×{decay[0]:.2g} per {span} steps ({decay[1]})"
            memory_cell = _cell(text, memory.get(nb.arch))
        else:
            memory_cell = MISSING
        roles = [title.lower() for title, winner in winners if winner.arch == nb.arch]
        if row is not None:
            if nb.arch in front_archs:
                roles.append("Pareto-optimal on IMDb")
            elif nb.arch in dominated_by:
                roles.append(f"dominated on IMDb by `{dominated_by[nb.arch]}`")
        held = claims(nb.arch)
        # the roles are among these four: the IMDb section above may name a floor instead
        use_cell = (f"**{' / '.join(held)}**" if held else "**none of the four**") + (
            f": among the four, {'; '.join(roles)}" if roles else "")
        verdicts = {
            "Parameters": _verdict(nb.parameters, params.get(nb.arch), ("has fewer", "have fewer")),
            "Speed": _verdict(nb.speed, speed.get(nb.arch), ("is faster", "are faster")),
            "Long-term Memory": _verdict(nb.memory, memory.get(nb.arch), ("holds longer", "hold longer")),
            "Use Case": use_case_verdict(nb),
        }
        for verdict in verdicts.values():
            judged += verdict == "yes" or verdict.startswith("no")
            holds_count += verdict == "yes"
        body.append([
            f"{nb.model} (`{nb.arch}`)", param_cell, speed_cell, memory_cell, use_cell,
            f"{nb.parameters} · {nb.speed} · {nb.memory} · {nb.use_case}",
            "; ".join(f"{column}: {verdict}" for column, verdict in verdicts.items()),
        ])  # fmt: skip
    headers = ["Model", "Parameters", "Speed (IMDb)", "Long-term Memory", "Use Case",
               "Notebook said", "Holds?"]  # fmt: skip
    lines = [
        "## The notebook's table, measured", "",
        "The notebook this project grew from ends with a table of adjectives. Here is each of its "
        "cells measured in this folder: the value, the adjective that value earns (in bold), what "
        "the notebook said, and whether it holds.", "",
        markdown_table(headers, body, align="lllllll"), "",
        f"The notebook's adjective holds in {holds_count} of {judged} cells that could be judged.",
        "", "How the adjectives are given (ranks among the four models above that ran):", "",
        f"- **Parameters**: trainable parameters on IMDb, fewest first: "
        f"{', '.join(SCALES['Parameters'])}; equal counts tie.",
        f"- **Speed**: the geometric mean of IMDb training and inference throughput (samples/s, "
        f"this machine), fastest first: {', '.join(SCALES['Speed'])}; speeds within "
        f"{(SPEED_TIE - 1) * 100:.0f}% of the fastest of their group tie.",
        f"- **Long-term Memory**: the memory horizons (heaviest load first, then the lighter ones), "
        f"longest first: {', '.join(SCALES['Long-term Memory'])}; equal horizons at every load tie. "
        f"The gradient figure, where the gradient-flow probe ran, is the factor by which the norm "
        f"of the loss gradient with respect to an input embedding changes per "
        f"{(gradient_payload or {}).get('span', GRADIENT_SPAN)} steps of distance from the "
        "readout, after training (`gradient_flow.json`); it is shown, not ranked.",
        "- Ranks: tied models share the best rank of their group, and the next group's rank "
        "counts the models before it; with all four ranked, rank k gets the k-th adjective "
        "(with fewer, the ranks spread evenly over the four). All four alike: no adjective.",
        "- **Use Case**: the notebook's use cases as rules on the measurements; a model earns each "
        "rule it meets (after the colon: what the report's recommendation names it for among the "
        "four, and its place on the IMDb Pareto front): "
        + "; ".join(f"*{name}*: {rule}" for name, rule in USE_CASE_RULES.items()) + ".",
    ]  # fmt: skip
    note = contention_note(four)
    if note:
        lines += ["", note]
    return "\n".join(lines)
