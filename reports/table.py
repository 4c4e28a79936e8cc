"""Per-architecture summaries of run records, and the tables built from them.

:func:`summarize` groups records by architecture (rows in registry order, as the runner writes it
into the manifest) and aggregates each metric over the successful seeds. The main markdown table,
the terminal table and :func:`summary_frame` (the data behind ``summary.csv``) are views of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.results.metrics import METRICS, Metric
from bench.results.records import DEFAULT_TASK, budget_bound, current, ok_records, task_of
from reports.sections import AloneFigures, swept_settings
from reports.stats import mean_std_ci, reps_to_bound_quantile, share_interval

#: Shown for a value that was not measured (a null or absent metric, a single seed's spread).
MISSING = "—"
#: The metric the report ranks architectures by; its column also shows n and the 95% interval.
HEADLINE = "test_accuracy"


@dataclass(frozen=True)
class MetricStats:
    """One metric of one architecture over its successful seeds (NaN where undefined).

    ``covers``: what the interval's width accounts for: ``seeds`` (a t interval over them), or
    ``seeds and examples`` (an accuracy: the seeds' spread and the test set's sampling,
    :func:`reports.stats.share_interval`; with one seed the examples' alone).
    """

    mean: float
    std: float
    ci_lo: float
    ci_hi: float
    n: int
    covers: str = "seeds"

    @property
    def present(self) -> bool:
        return self.n > 0


@dataclass
class ArchSummary:
    """Everything the report says about one architecture on one task."""

    arch: str
    description: str
    recurrent: bool | None
    training: str  # "gradient" or "self_fit" (see training_of)
    records: list[dict[str, Any]]
    family: str = "classic"  # see family_of
    ok: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, MetricStats] = field(default_factory=dict)
    task: str = DEFAULT_TASK
    #: The values of the task's swept settings (:func:`reports.sections.swept_settings`) these
    #: runs share; empty for a task that sweeps none.
    setting: dict[str, Any] = field(default_factory=dict)
    #: Speed and memory measured alone, which replaced the runs' own (:func:`take_alone`).
    alone: AloneFigures | None = None

    @property
    def concurrent_runs(self) -> int:
        """The most runs that shared the machine with any successful seed (1: all ran alone;
        records written before the field existed ran one at a time)."""
        return max((r.get("concurrent_runs", 1) for r in self.ok), default=1)

    @property
    def shared_machine(self) -> bool:
        """Whether the row's speed and memory figures were measured while runs shared the
        machine (never once :func:`take_alone` replaced them)."""
        return self.alone is None and self.concurrent_runs > 1

    @property
    def budget_bound(self) -> list[dict[str, Any]]:
        """The successful runs the epoch cap ended while they were still learning
        (:func:`budget_bound`)."""
        return [r for r in self.ok if budget_bound(r)]

    def value(self, metric: str) -> float | None:
        """The mean of ``metric`` over the successful seeds, or None if never measured."""
        stat = self.stats.get(metric)
        return stat.mean if stat is not None and stat.present else None

    @property
    def seeds(self) -> list[int]:
        return sorted(r["seed"] for r in self.ok)

    def failure_text(self) -> str:
        """The distinct errors of the failed seeds, e.g. ``oom: CUDA out of memory``."""
        seen: list[str] = []
        for rec in self.failed:
            err = rec.get("error") or {}
            text = f"{err.get('type', 'crash')}: {_one_line(err.get('message', ''))}"
            if text not in seen:
                seen.append(text)
        return "; ".join(seen)


#: Marks a figure that rests on a budget-bound run (:func:`budget_bound`).
BUDGET_MARK = "‡"


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def training_of(record: dict[str, Any]) -> str:
    """How a run's model learned, as its record declares (``spec.model.training``).

    Records written before the registry declared it say so only through ``stop_reason``:
    ``"fitted"`` is written for a self-fitting model and nothing else.
    """
    declared = ((record.get("spec") or {}).get("model") or {}).get("training")
    if isinstance(declared, str):
        return declared
    return "self_fit" if record.get("stop_reason") == "fitted" else "gradient"


#: The families of the registry (``models.registry.FAMILIES``), in the order the report groups
#: rows by, and what each group is called where a table shows more than one.
FAMILY_LABELS = {"classic": "classic recurrences", "modern": "modern recurrences",
                 "floor": "floors (not recurrent)"}  # fmt: skip


def _registered(arch: str) -> Any:
    """The registry's entry for ``arch``, or None where this checkout does not register it."""
    from models import UnknownModelError, model_info

    try:
        return model_info(arch)
    except UnknownModelError:
        return None


def family_of(record: Mapping[str, Any]) -> str:
    """The run's model family, as its record declares it (``spec.model.family``). Records written
    before the registry declared families: the registry's family for the architecture, else
    ``floor`` for a model not recurrent and ``classic`` for one that is."""
    model = (record.get("spec") or {}).get("model") or {}
    declared = model.get("family")
    if isinstance(declared, str) and declared in FAMILY_LABELS:
        return declared
    info = _registered(str(record.get("arch")))
    if info is not None:
        return info.family
    return "classic" if model.get("recurrent", True) else "floor"


def _arch_order(records: Sequence[dict[str, Any]], arch_order: Iterable[str] | None) -> list[str]:
    """``arch_order``, then the rest in order of appearance; grouped by family (stable)."""
    order: list[str] = []
    for arch in list(arch_order or []) + [r["arch"] for r in records]:
        if arch not in order:
            order.append(arch)
    family = {r["arch"]: family_of(r) for r in records}
    rank = {name: i for i, name in enumerate(FAMILY_LABELS)}
    return sorted(order, key=lambda arch: rank.get(family.get(arch, "classic"), 0))


def by_task(
    records: Sequence[dict[str, Any]], task_order: Iterable[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``records`` split by task: tasks in ``task_order`` (the manifest's ``tasks``), then in
    order of first appearance; a task without records is left out."""
    groups: dict[str, list[dict[str, Any]]] = {task: [] for task in task_order or []}
    for rec in records:
        groups.setdefault(task_of(rec), []).append(rec)
    return {task: recs for task, recs in groups.items() if recs}


def summarize(
    records: Sequence[dict[str, Any]], arch_order: Iterable[str] | None = None,
    task_order: Iterable[str] | None = None,
) -> list[ArchSummary]:
    """Group ``records`` by (task, architecture) and aggregate every metric over the successful
    seeds.

    Rows come task by task (see :func:`by_task`); within a task they follow ``arch_order`` (the
    manifest's ``archs``, i.e. the registry order), then any other architecture in order of
    first appearance in ``records``. An architecture named in ``arch_order`` without any record
    gets no row. A task that sweeps settings (:func:`reports.sections.swept_settings`) gets a
    row per architecture and value of those settings, in ascending order of the values. A run
    that a successful budget extension supersedes is left out: the extension stands for it
    (:func:`bench.results.records.current`).
    """
    rows = []
    for task, task_records in by_task(current(records), task_order).items():
        rows += _summarize_task(task, task_records, arch_order)
    return rows


def setting_of(record: dict[str, Any]) -> dict[str, Any]:
    """The values of the swept settings of the record's task, as its report declares them
    (:func:`reports.sections.swept_settings`), read from its ``spec.data``; empty for a task that
    sweeps none."""
    data = (record.get("spec") or {}).get("data") or {}
    return {key: data.get(key) for key in swept_settings(task_of(record))}


def _setting_key(setting: dict[str, Any]) -> tuple[tuple[int, Any], ...]:
    # None (a record without the field) sorts first; values of one field are all numbers.
    return tuple((value is not None, value if value is not None else 0) for value in setting.values())


def _summarize_task(
    task: str, records: Sequence[dict[str, Any]], arch_order: Iterable[str] | None
) -> list[ArchSummary]:
    groups: dict[str, dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]]] = {}
    for rec in records:
        key = tuple(setting_of(rec).items())
        groups.setdefault(rec["arch"], {}).setdefault(key, []).append(rec)
    rows = []
    for arch in _arch_order(records, arch_order):
        for key in sorted(groups.get(arch, {}), key=lambda k: _setting_key(dict(k))):
            rows.append(_summarize_group(task, arch, dict(key), groups[arch][key]))
    return rows


def _summarize_group(
    task: str, arch: str, setting: dict[str, Any], records: Sequence[dict[str, Any]]
) -> ArchSummary:
    """One row: the runs of ``arch`` at one value of the task's swept settings, over seeds."""
    recs = sorted(records, key=lambda r: r["seed"])
    first = recs[0]
    model_spec = (first.get("spec") or {}).get("model") or {}
    recurrent = model_spec.get("recurrent")
    row = ArchSummary(
        arch=arch,
        description=str(first.get("model_description") or ""),
        recurrent=recurrent if isinstance(recurrent, bool) else None,
        training=training_of(first),
        records=recs,
        family=family_of(first),
        ok=ok_records(recs),
        failed=[r for r in recs if r["status"] != "ok"],
        task=task,
        setting=setting,
    )
    for metric, info in METRICS.items():
        mean, std, lo, hi, n = mean_std_ci(metric_value(r, metric) for r in row.ok)
        # With few seeds and a wide spread a t interval can pass what the quantity can take (a
        # share above 1, a time below 0): cut to its bounds, it still covers the mean as often.
        lo, hi = info.within_bounds(lo, hi)
        examples = _examples_scored(row.ok, info.scored_on)
        if examples:
            lo, hi = share_interval(mean, std, n, examples)
        if metric in TAIL_REPS and not tail_bounded(row.ok, metric):
            mean, std, lo, hi, n = math.nan, math.nan, math.nan, math.nan, 0
        row.stats[metric] = MetricStats(mean, std, lo, hi, n,
                                        "seeds and examples" if examples else "seeds")
    return row


def metric_value(record: Mapping[str, Any], metric: str) -> Any:
    """``record``'s value of ``metric``; for ``core_param_count`` in a record written before it
    existed, derived: ``param_count`` − vocabulary × ``embedding_dim`` for a network (every
    registered one has one embedding table of that size, which a test checks), None for a
    self-fitting model; for ``state_size`` likewise, the registry's declaration at the record's
    hyperparameters."""
    metrics = record.get("metrics") or {}
    if metric not in ("core_param_count", "state_size") or metric in metrics:
        return metrics.get(metric)
    model = (record.get("spec") or {}).get("model") or {}
    if metric == "state_size":
        return _declared_state_size(str(record.get("arch")), model)
    vocab, dim = (record.get("data") or {}).get("vocab_size"), model.get("embedding_dim")
    total = metrics.get("param_count")
    if training_of(dict(record)) != "gradient" or not all(isinstance(v, int) for v in (vocab, dim, total)):
        return None
    core = total - vocab * dim
    return core if core > 0 else None  # a total no table of that size fits: not derived


def _declared_state_size(arch: str, model: Mapping[str, Any]) -> int | None:
    """The registry's ``state_size`` of ``arch`` at a record's hyperparameters (``spec.model``),
    for a record written before it was recorded; None for a model that is not recurrent or not
    registered here."""
    info = _registered(arch)
    if info is None or not info.recurrent or info.state_size is None:
        return None
    return info.declared_state_size(**{k: v for k, v in model.items() if k in info.hyperparams})


#: Tail quantiles and the setting that says from how many repetitions each record took them.
TAIL_REPS = {"latency_ms_p95": "latency_reps"}


def tail_bounded(records: Sequence[Mapping[str, Any]], metric: str) -> bool:
    """Whether every record took ``metric`` (a p95) from enough repetitions to bound it
    (:func:`reports.stats.reps_to_bound_quantile`: 72); a record that does not say is taken at
    its word. The memory suite's 5 and the grid's 50 are not enough: the report shows none."""
    key = TAIL_REPS[metric]
    reps = [((r.get("spec") or {}).get("measure") or {}).get(key) for r in records]
    return all(not isinstance(n, int) or n >= reps_to_bound_quantile() for n in reps)


def tail_note(rows: Sequence[ArchSummary]) -> str | None:
    """Why a table shows no p95 latency, when the runs took too few repetitions for one."""
    few = sorted({n for row in rows for r in row.ok
                  if isinstance(n := ((r.get("spec") or {}).get("measure") or {}).get("latency_reps"), int)
                  and n < reps_to_bound_quantile()})  # fmt: skip
    need = reps_to_bound_quantile()
    why = (f"a 95th percentile needs at least {need} for the slowest of them to bound it (fewer, "
           "and it moves with whatever the slowest repetition did)")
    if any(row.alone for row in rows):
        unbounded = [r for r in rows if r.ok and r.value("latency_ms_p50") is not None
                     and r.value("latency_ms_p95") is None]  # fmt: skip
        return (f"Latency p95 is not shown where the cost suite timed fewer than {need} batch-1 "
                f"inferences: {why}.") if unbounded else None
    if not few:
        return None
    return f"Latency p95 is not shown: the runs timed {', '.join(map(str, few))} repetitions, and {why}."


def _examples_scored(records: Sequence[dict[str, Any]], key: str | None) -> int:
    """How many examples each of ``records`` scored (the fewest, should they differ); 0 when
    the metric is no share of examples or a record does not say (written before it did)."""
    if key is None or not records:
        return 0
    counts = [(r.get("data") or {}).get(key) for r in records]
    return min(counts) if all(isinstance(c, int) and c > 0 for c in counts) else 0


def take_alone(rows: Sequence[ArchSummary], figures: Mapping[str, Mapping[str, AloneFigures]]) -> bool:
    """Replace every speed, time and memory figure of ``rows`` by the one measured alone, when
    every row with a successful run has such figures (``figures[task][arch]``); a figure not
    measured alone (the training time) becomes not measured. Figures of two sources are never
    mixed in one table: with any row lacking them nothing changes. True when replaced."""
    measured = [r for r in rows if r.ok]
    if not measured or any(r.arch not in figures.get(r.task, {}) for r in measured):
        return False
    for row in measured:
        alone = figures[row.task][row.arch]
        row.alone = alone
        for metric in cost_columns():
            value = alone.values.get(metric.name)
            row.stats[metric.name] = (MetricStats(float(value), math.nan, math.nan, math.nan, 1)
                                      if value is not None else
                                      MetricStats(math.nan, math.nan, math.nan, math.nan, 0))
    return True


def summary_frame(
    records: Sequence[dict[str, Any]], arch_order: Iterable[str] | None = None,
    task_order: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per (task, architecture): run counts, then ``<metric>_mean/_std/_n/_ci_lo/_ci_hi``.

    A task that sweeps settings (:func:`reports.sections.swept_settings`, e.g. the memory suite's
    distance and load) has a row per architecture and value, the values in columns named after the settings
    (after ``task``; present only when such a task is in ``records``, empty in other tasks' rows),
    so its runs are never averaged across them. The interval is the 95% Student t interval over
    seeds cut to the metric's bounds (a time never below 0, a share never above 1); with one
    seed std and interval are NaN. Row order as in :func:`summarize`.
    """
    summaries = summarize(records, arch_order, task_order)
    swept = list(dict.fromkeys(key for summary in summaries for key in summary.setting))
    rows = []
    for summary in summaries:
        row: dict[str, Any] = {
            "arch": summary.arch,
            "task": summary.task,
            **{key: summary.setting.get(key) for key in swept},
            "description": summary.description,
            "recurrent": summary.recurrent,
            "n_runs": len(summary.records),
            "n_ok": len(summary.ok),
            "n_failed": len(summary.failed),
            "errors": summary.failure_text(),
            "concurrent_runs_max": summary.concurrent_runs,
        }
        for metric, stat in summary.stats.items():
            row[f"{metric}_mean"] = stat.mean
            row[f"{metric}_std"] = stat.std
            row[f"{metric}_n"] = stat.n
            row[f"{metric}_ci_lo"] = stat.ci_lo
            row[f"{metric}_ci_hi"] = stat.ci_hi
        rows.append(row)
    return pd.DataFrame(rows)


# ---- number formatting -------------------------------------------------------------------------


def _decimals(value: float, sig: int = 3, max_decimals: int = 4) -> int:
    """Decimals that show ``value`` to ``sig`` significant figures (none for large numbers)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return int(min(max_decimals, max(0, sig - 1 - math.floor(math.log10(abs(value))))))


def format_count(value: float) -> str:
    """A parameter count: ``1.23M``, ``45.6k``, ``789``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.{_decimals(scaled)}f}{suffix}"
    return f"{value:.0f}"


#: How each column's numbers are shown: (scale, fixed decimals or None for 3 significant figures).
_KINDS: dict[str, tuple[float, int | None]] = {
    "percent": (100.0, 2),  # a fraction shown as a percentage
    "fraction": (1.0, 3),
    "sig3": (1.0, None),
    "efficiency": (100.0, None),
}


def format_number(value: float | None, kind: str) -> str:
    """One number as the report shows it (``—`` when missing)."""
    if value is None or not math.isfinite(value):
        return MISSING
    if kind == "count":
        return format_count(value)
    scale, fixed = _KINDS[kind]
    scaled = value * scale
    decimals = fixed if fixed is not None else _decimals(scaled)
    return f"{scaled:,.{decimals}f}"


def format_stat(stat: MetricStats, metric: Metric) -> str:
    """A metric over seeds as its registration says: ``mean ± std`` (the std to the mean's
    decimals) for a ``mean_sd`` summary, the mean alone for ``mean`` or with one seed."""
    kind = metric.display
    if not stat.present:
        return MISSING
    if stat.n == 1 or not math.isfinite(stat.std) or metric.summary == "mean":
        return format_number(stat.mean, kind)
    scale, fixed = _KINDS[kind]
    decimals = fixed if fixed is not None else _decimals(stat.mean * scale)
    return f"{stat.mean * scale:,.{decimals}f} ± {stat.std * scale:,.{decimals}f}"


def format_ci(stat: MetricStats, kind: str) -> str:
    """``[lo, hi]`` of the 95% interval, or ``—`` where there is none (one seed of a metric
    whose interval is over seeds alone)."""
    if not math.isfinite(stat.ci_lo):
        return MISSING
    return f"[{format_number(stat.ci_lo, kind)}, {format_number(stat.ci_hi, kind)}]"


# ---- the main table ----------------------------------------------------------------------------


def header(metric: Metric) -> str:
    """A column header: the metric's label and its direction arrow."""
    return metric.label + {True: " ↑", False: " ↓"}.get(metric.higher_is_better, "")


def main_columns() -> list[Metric]:
    """The main table's metric columns, in registration order: what a run learned and its size
    (a figure that changes with the machine's load is in :func:`cost_columns`' table)."""
    return [m for m in METRICS.values() if m.in_table and not m.contended]


def cost_columns() -> list[Metric]:
    """The columns of the training runs' speed and memory table, in registration order."""
    return [m for m in METRICS.values() if m.in_table and m.contended]


def _best_values(rows: Sequence[ArchSummary], columns: Sequence[Metric]) -> dict[str, str]:
    """The best mean per directional column as the table shows it, when the shown means differ:
    every mean that shows as this text is bold (a tie at the shown precision is bold on each)."""
    best: dict[str, str] = {}
    for col in columns:
        values = [v for r in rows if (v := r.value(col.name)) is not None]
        shown = {format_number(v, col.display) for v in values}
        # Bold singles out the best; with one value, or all shown alike, there is none.
        if col.higher_is_better is None or len(shown) < 2:
            continue
        top = max(values) if col.higher_is_better else min(values)
        best[col.name] = format_number(top, col.display)
    return best


#: Marks a speed, time or memory figure measured while other runs shared the machine.
CONTENDED_MARK = "†"


def marked(row: ArchSummary, metric: Metric, text: str) -> str:
    """``text`` with :data:`CONTENDED_MARK` when ``metric`` depends on the machine's load and
    ``row``'s runs shared the machine."""
    shared = metric.contended and row.shared_machine and text != MISSING
    return f"{text} {CONTENDED_MARK}" if shared else text


def contention_note(rows: Sequence[ArchSummary]) -> str | None:
    """What the mark means, naming the architectures measured alone; None when all were."""
    shared = [r for r in rows if r.ok and r.shared_machine]
    if not shared:
        return None
    most = max(r.concurrent_runs for r in shared)
    alone = [r.arch for r in rows if r.ok and not r.shared_machine]
    note = (f"{CONTENDED_MARK} measured while up to {most} runs shared the machine "
            "(`concurrent_runs` in the records: `run_all.py --jobs`, or Ray tasks on one node). "
            "Those runs competed for cores, memory bandwidth and caches (on CUDA, for the GPU), so "
            "these speed, time and memory figures are not what the architecture gets alone: "
            "compare them only with figures measured under the same concurrency, and re-run with "
            "`--jobs 1` for figures to quote.")
    if alone:
        note += (" " + ", ".join(f"`{a}`" for a in alone) + " ran alone: do not compare "
                 "their unmarked figures with marked ones.")
    return note


def budget_note(rows: Sequence[ArchSummary],
                name: Callable[[ArchSummary], str] = lambda r: f"`{r.arch}`") -> str | None:  # fmt: skip
    """What :data:`BUDGET_MARK` means and which rows carry it, each called ``name(row)`` (None:
    no row does)."""
    bound = [(r, len(r.budget_bound)) for r in rows if r.budget_bound]
    if not bound:
        return None
    which = "; ".join(f"{name(r)}: {k} of {len(r.ok)} seeds" for r, k in bound)
    return (f"{BUDGET_MARK} budget-bound: the epoch cap ended training before early stopping "
            f"would have (`stop_reason: epochs` with the best validation loss within the last "
            f"`patience` epochs), so more epochs might change the figure: {which}.")


def seeds_cell(row: ArchSummary) -> str:
    """``3``, or ``2 (1 of 3 failed)`` when some seeds failed."""
    if not row.failed:
        return str(len(row.ok))
    return f"{len(row.ok)} ({len(row.failed)} of {len(row.records)} failed)"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def main_table_rows(
    rows: Sequence[ArchSummary], columns: Sequence[Metric] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the main table, or of a table of ``columns`` (markdown emphasis
    included)."""
    columns = main_columns() if columns is None else list(columns)
    headers = ["Architecture", "Seeds"]
    for col in columns:
        headers.append(header(col))
        if col.name == HEADLINE:
            headers.append("Test acc 95% CI")
    best = _best_values(rows, columns)
    body = []
    grouped = len({row.family for row in rows}) > 1
    for index, row in enumerate(rows):
        if grouped and (index == 0 or rows[index - 1].family != row.family):
            # A label row opens each family's group, where the table holds more than one.
            width = len(headers)
            body.append([f"*{FAMILY_LABELS.get(row.family, row.family)}*"] + [""] * (width - 1))
        cells = [f"`{row.arch}`", seeds_cell(row)]
        for col in columns:
            stat = row.stats[col.name]
            if not row.ok:
                # Every seed failed: the failure is the result. Parameters may still be known.
                sizes = [v for r in row.failed if (v := metric_value(r, col.name)) is not None]
                if col.name in ("param_count", "core_param_count", "state_size") and sizes:
                    cells.append(format_count(sizes[0]))
                elif col.name == HEADLINE:
                    cells.append(_escape(f"FAIL ({row.failure_text()})"))
                    cells.append(MISSING)
                else:
                    cells.append("FAIL")
                continue
            text = format_stat(stat, col)
            if stat.present and best.get(col.name) == format_number(stat.mean, col.display):
                text = f"**{text}**"
            text = marked(row, col, text)
            if col.name == HEADLINE:
                # The headline metric also gets its seed count and its interval.
                bound = f" {BUDGET_MARK}" if row.budget_bound else ""
                cells.append(f"{text} (n={stat.n}){bound}")
                cells.append(format_ci(stat, col.display))
            else:
                cells.append(text)
        body.append(cells)
    return headers, body


def markdown_table(
    headers: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A GitHub markdown table. ``align`` has one letter per column, ``l`` or ``r``; by default
    the first column (names) is left-aligned and the rest (numbers) right-aligned."""
    align = align or "l" + "r" * (len(headers) - 1)
    rules = [{"l": "---", "r": "---:"}[letter] for letter in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def main_table(rows: Sequence[ArchSummary]) -> str:
    """The report's main table as markdown."""
    return markdown_table(*main_table_rows(rows))


def cost_table(rows: Sequence[ArchSummary]) -> str:
    """The training runs' speed, time and memory as markdown (marked where runs shared the
    machine)."""
    return markdown_table(*main_table_rows(rows, cost_columns()))


def terminal_summary(records: Sequence[dict[str, Any]], manifest: dict[str, Any] | None) -> str:
    """A compact plain-text table of the run for the terminal (tabulate)."""
    manifest = manifest or {}
    rows = summarize(records, manifest.get("archs"), manifest.get("tasks"))
    columns = [m for m in METRICS.values() if m.in_terminal]
    # The task column only where there is more than one task: an IMDb folder reads as before; the
    # setting column only where a task sweeps settings (one row per value, never averaged).
    several = len({row.task for row in rows}) > 1
    swept = any(row.setting for row in rows)
    headers = ["task"] * several + ["arch"] + ["setting"] * swept + ["seeds"]
    headers += [header(c) for c in columns]
    body = []
    for row in rows:
        setting = " ".join(f"{key}={value}" for key, value in row.setting.items())
        names = [row.task] * several + [row.arch] + [setting] * swept + [seeds_cell(row)]
        if not row.ok:
            body.append([*names, f"FAIL ({row.failure_text()})"])
            continue
        body.append(names + [marked(row, c, format_stat(row.stats[c.name], c)) for c in columns])
    title = (
        f"rnnbench: profile {manifest.get('profile', '?')}, device {manifest.get('device', '?')}"
    )
    if isinstance(manifest.get("wall_time_s"), int | float):
        title += f", {manifest['wall_time_s']:.0f} s"
    table = tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True)
    notes = [contention_note(rows)]
    if manifest.get("profile") == "smoke":
        notes.append("smoke profile: a check that the pipeline works, on a subsample with tiny "
                     "models; these figures are no basis for choosing (run quick or full)")
    return f"{title}\n{table}" + "".join(f"\n{note}" for note in notes if note)
