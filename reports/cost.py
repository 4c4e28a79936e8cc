"""The "Cost" section: what each architecture costs, from the cost suite's points.

Facts first (:func:`cost_facts` returns data: the task's point per architecture, the growth
exponents with their intervals, the crossovers, the kernels, the points out of memory), then
rendered in one place (:func:`render_cost`). A folder holding cost points gets the section at the
end of its report; a folder holding only cost points gets a report of this section alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from bench.results.cost import CostFolder, read_points_payload
from reports.plots import name_colors, new_figure, png_bytes
from reports.sections import (
    AloneFigures,
    ClosingSection,
    ReportContext,
    register_closing_section,
    register_payload,
)
from reports.stats import reps_to_bound_quantile

PAYLOAD = "cost_points"
#: The coverage of a growth exponent's interval (a t interval of the log-log slope).
SLOPE_LEVEL = 0.95
FIGURES = ("cost_time_vs_T.png", "cost_memory_vs_T.png", "cost_throughput_vs_batch.png")
#: The quantities whose growth is fitted: (key, phase, figure within the phase, label).
QUANTITIES = (("train_time", "train", "step_ms", "train step time"),
              ("infer_time", "infer", "step_ms", "inference time"),
              ("train_memory", "train", "peak_mb", "training peak memory"),
              ("infer_memory", "infer", "peak_mb", "inference peak memory"))  # fmt: skip
AXIS_VARIABLE = {"length": "T", "batch": "batch"}


@dataclass(frozen=True)
class Growth:
    """The exponent of ``quantity`` against ``axis`` for ``arch``: the slope of log of the
    median against log of the size, least squares, with its 95% t interval (None: < 3 points)."""

    arch: str
    axis: str
    quantity: str
    slope: float
    low: float | None
    high: float | None
    points: int


@dataclass(frozen=True)
class Crossover:
    """From ``size`` on (every larger measured size too), ``ahead`` costs less ``quantity`` than
    ``behind``, which cost less at a smaller size: each order decided by intervals that do not
    overlap (:func:`crossovers_of`)."""

    axis: str
    quantity: str
    size: int
    ahead: str
    behind: str


@dataclass(frozen=True)
class CostFacts:
    """Everything the section says, per device (``device``: the processor's name)."""

    device: str
    archs: list[str]
    task_point: dict[str, dict[str, Any]]
    growth: list[Growth]
    crossovers: list[Crossover]
    kernels: dict[str, dict[str, str | None]]
    oom: list[tuple[str, str, int]] = field(default_factory=list)
    #: Whether the allocator kept freed memory for every point (``environment.allocator``).
    retains_freed_memory: bool = False
    #: What each series covers, in words (``{"length": "T = 64 to 2,048 at batch 64"}``).
    spans: dict[str, str] = field(default_factory=dict)


def _value(point: Mapping[str, Any], phase: str, key: str) -> float | None:
    part = point.get(phase) or {}
    if part.get("status") != "ok":
        return None
    value = part.get(key)
    return value["median"] if isinstance(value, dict) else value


def _size(point: Mapping[str, Any]) -> int:
    return int(point["length_T"] if point["axis"] == "length" else point["batch"])


def fit_slope(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The least-squares slope of log ``values`` on log ``sizes`` and its 95% interval."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    slope, intercept = np.polyfit(x, y, 1)
    n = len(x)
    if n < 3:
        return float(slope), None, None
    residual = y - (slope * x + intercept)
    se = math.sqrt(float(residual @ residual) / (n - 2) / float(((x - x.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.5 + SLOPE_LEVEL / 2, n - 2)) * se
    return float(slope), float(slope - half), float(slope + half)


def series(points: Iterable[Mapping[str, Any]], arch: str, axis: str, phase: str,
           key: str) -> list[tuple[int, Mapping[str, Any]]]:  # fmt: skip
    """``arch``'s measured points on ``axis`` with a value of ``phase``/``key``, by size."""
    found = [(_size(p), p) for p in points if p["arch"] == arch and p["axis"] == axis
             and _value(p, phase, key)]  # fmt: skip
    return sorted(found, key=lambda item: item[0])


def growth_of(points: Sequence[Mapping[str, Any]], archs: Sequence[str]) -> list[Growth]:
    found = []
    for arch in archs:
        for axis in AXIS_VARIABLE:
            for quantity, phase, key, _ in QUANTITIES:
                measured = series(points, arch, axis, phase, key)
                if len(measured) >= 2:
                    slope, low, high = fit_slope([s for s, _ in measured],
                                                 [_value(p, phase, key) for _, p in measured])
                    found.append(Growth(arch, axis, quantity, slope, low, high, len(measured)))
    return found


def _interval(point: Mapping[str, Any], phase: str, key: str) -> tuple[float, float] | None:
    """The 95% interval of ``phase``/``key`` at ``point`` (None: not measured there)."""
    value = (point.get(phase) or {}).get(key)
    if not isinstance(value, dict) or value.get("low") is None or value.get("high") is None:
        return None
    return float(value["low"]), float(value["high"])


def _order(first: tuple[float, float], second: tuple[float, float]) -> int:
    """1: ``first`` costs less for sure (its interval lies below), -1: ``second`` does, 0: the
    intervals overlap (undecided)."""
    return 1 if first[1] < second[0] else -1 if second[1] < first[0] else 0


def crossovers_of(points: Sequence[Mapping[str, Any]], archs: Sequence[str]) -> list[Crossover]:
    """Every pair whose order changes along an axis and stays changed to its end, each order
    decided by intervals that do not overlap: from the crossing size on at every size, and before
    it at one size at least (noise that swaps two medians is no crossover)."""
    found = []
    for axis in AXIS_VARIABLE:
        for quantity, phase, key, _ in QUANTITIES[:2]:
            curves = {a: {s: _interval(p, phase, key) for s, p in series(points, a, axis, phase, key)}
                      for a in archs}  # fmt: skip
            for i, first in enumerate(archs):
                for second in archs[i + 1:]:
                    shared = sorted(s for s in set(curves[first]) & set(curves[second])
                                    if curves[first][s] and curves[second][s])  # fmt: skip
                    signs = [_order(curves[first][s], curves[second][s]) for s in shared]
                    if len(signs) < 2 or signs[-1] == 0:
                        continue
                    start = len(signs) - 1
                    while start > 0 and signs[start - 1] == signs[-1]:
                        start -= 1
                    if -signs[-1] not in signs[:start]:
                        continue  # never decidedly the other way round before
                    ahead, behind = (first, second) if signs[-1] == 1 else (second, first)
                    found.append(Crossover(axis, quantity, shared[start], ahead, behind))
    return found


def _kernel(point: Mapping[str, Any] | None, phase: str) -> str | None:
    """The recurrence operator of ``phase`` (most time first), else its top operator."""
    found = ((point or {}).get("kernels") or {}).get(phase)
    if not found:
        return None
    ranked = found["recurrence"] or found["top"][:1]
    return ", ".join(f"`{k['op']}`" for k in ranked[:2]) if ranked else None


def cost_facts(points: Sequence[Mapping[str, Any]], order: Sequence[str] = ()) -> list[CostFacts]:
    """The section's facts, one entry per processor the points were measured on."""
    by_device: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        env = point["environment"]
        name = env.get("device_name") if point["device"] == "cuda" else env.get("cpu_model")
        by_device.setdefault(f"{point['device']}: {name or 'unknown'}", []).append(point)
    facts = []
    for device, measured in by_device.items():
        present = {p["arch"] for p in measured}
        archs = [a for a in order if a in present] + sorted(present - set(order))
        task = {p["arch"]: p for p in measured if p["axis"] == "task"}
        facts.append(CostFacts(
            device, archs, task, growth_of(measured, archs), crossovers_of(measured, archs),
            {a: {"train": _kernel(task.get(a), "train"), "infer": _kernel(task.get(a), "infer")}
             for a in archs},
            [(p["arch"], p["axis"], _size(p)) for p in measured
             if p["status"] == "oom" and p["axis"] != "task"],
            all((p["environment"].get("allocator") or {}).get("retains_freed_memory")
                for p in measured), _spans(measured)))  # fmt: skip
    return facts


def _spans(points: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    spans = {}
    for axis, fixed in (("length", "batch"), ("batch", "length_T")):
        on = [p for p in points if p["axis"] == axis]
        if on:
            sizes = sorted({_size(p) for p in on})
            other = sorted({int(p[fixed]) for p in on})
            first, last = f"{sizes[0]:,}", f"{sizes[-1]:,}"
            spans[axis] = (f"T = {first} to {last} at batch {other[0]:,}" if axis == "length"
                           else f"batch {first} to {last} at T = {other[0]:,}")
    return spans


# --- rendering ----------------------------------------------------------------------------------

def _ms(stat: Mapping[str, Any] | None) -> str:
    if not stat:
        return "—"
    return f"{stat['median']:.3g} [{stat['low']:.3g}, {stat['high']:.3g}]"


def _phase_cells(point: Mapping[str, Any], phase: str) -> list[str]:
    part = point.get(phase)
    if part is None:
        return ["not applicable"] * 3
    if part.get("status") == "oom":
        return ["OOM"] * 3
    return [_ms(part.get("step_ms")), f"{part['samples_per_s']:,.0f}",
            "—" if part.get("peak_mb") is None else f"{part['peak_mb']:,.1f}"]


def _task_table(facts: CostFacts) -> str:
    lines = ["| Architecture | Train step ms [95% CI] | forward / backward / optimizer ms | "
             "Train samples/s | Train peak MiB | Inference ms [95% CI] | Inference samples/s | "
             "Inference peak MiB | Fit s | Train efficiency |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arch in facts.archs:
        point = facts.task_point.get(arch)
        if point is None:
            continue
        train, infer = _phase_cells(point, "train"), _phase_cells(point, "infer")
        part = point.get("train") or {}
        split = " / ".join(f"{part[k]['median']:.3g}" for k in ("forward_ms", "backward_ms",
                                                                "optimizer_ms")) \
            if part.get("status") == "ok" else train[0]
        fit = point.get("fit")
        eff = point["efficiency"].get("train")
        fit_cell = "—" if not fit else f"{fit['time_s']:.2f}"
        eff_cell = "—" if eff is None else f"{eff:.1%}"
        lines.append(f"| `{arch}` | {train[0]} | {split} | {train[1]} | {train[2]} | {infer[0]} | "
                     f"{infer[1]} | {infer[2]} | {fit_cell} | {eff_cell} |")
    return "\n".join(lines)


def _growth_table(facts: CostFacts) -> str:
    head = [f"{label} vs {AXIS_VARIABLE[axis]}" for axis in AXIS_VARIABLE
            for _, _, _, label in QUANTITIES]
    lines = ["| Architecture | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    fitted = {(g.arch, g.axis, g.quantity): g for g in facts.growth}
    for arch in facts.archs:
        cells = []
        for axis in AXIS_VARIABLE:
            for quantity, *_ in QUANTITIES:
                g = fitted.get((arch, axis, quantity))
                cells.append("—" if g is None else f"{g.slope:.2f}" if g.low is None
                             else f"{_exp(g.slope)} [{_exp(g.low)}, {_exp(g.high)}]")
        lines.append(f"| `{arch}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _exp(value: float) -> str:
    """An exponent to two decimals, never "-0.00"."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _crossover_sentences(facts: CostFacts) -> list[str]:
    verbs = {"train_time": "trains faster than", "infer_time": "infers faster than"}
    return [f"From {AXIS_VARIABLE[c.axis]} = {c.size:,} on, `{c.ahead}` {verbs[c.quantity]} "
            f"`{c.behind}`." for c in facts.crossovers] + ([
        "(A crossover is stated only where the two 95% intervals do not overlap, after it at "
        "every size and before it at one at least.)"] if facts.crossovers else [])


def _kernel_lines(facts: CostFacts) -> list[str]:
    lines = ["| Architecture | Training: recurrence kernel (else top operator) | Inference |",
             "|---|---|---|"]
    for arch in facts.archs:
        k = facts.kernels.get(arch, {})
        lines.append(f"| `{arch}` | {k.get('train') or '—'} | {k.get('infer') or '—'} |")
    return lines


def _allocator_note(all_facts: Sequence[CostFacts]) -> str:
    if not any(facts.retains_freed_memory for facts in all_facts):
        return ""
    return (" Each measuring process's allocator keeps the memory a step frees for the next "
            "step, as a caching allocator does (glibc's mallopt): by default a large tensor is a "
            "fresh mapping, zero-filled at every step, which doubled some steps' time and changed "
            "during a run.")


def _task_intro(facts: CostFacts) -> str:
    """What the task's point is: how many reviews of how many tokens on average, at which batch."""
    points = [p for p in facts.task_point.values() if p.get("samples_per_rep")]
    if not points:
        return "At the task's own lengths, the grid's batch:"
    point = points[0]
    mean = point["tokens_per_rep"] / point["samples_per_rep"]
    batches = f"{point['steps_per_rep']} training batches" if point.get("steps_per_rep") \
        else "training batches"
    return (f"At the task's own lengths, the grid's batch {point['batch']:,}: {batches} of its "
            f"reviews, {mean:,.0f} tokens a review on average, each batch padded to its own "
            "longest review:")


def render_cost(all_facts: Sequence[CostFacts], figures: Iterable[str], sittings: int = 1) -> str:
    """The section's markdown from its facts (``sittings``: the fresh processes the rounds were
    split over, from the manifest)."""
    processes = f", the rounds split over {sittings} fresh processes in turn" if sittings > 1 else ""
    parts = ["## Cost",
             "Each architecture measured alone, untrained, one point at a time (whatever --jobs "
             "said), threads pinned, each point's repetitions spread over rounds through the "
             f"whole run{processes}; medians of the timed repetitions with a distribution-free "
             "95% interval (order statistics; it never goes below zero). Peak memory on CPU: the "
             "bytes of live tensors, counted per operator (it repeats to the byte; the resident "
             "set's peak does not), weights, gradients and optimizer state included."
             + _allocator_note(all_facts)]
    for facts in all_facts:
        parts += [f"### {facts.device}", _task_intro(facts), _task_table(facts),
                  "Train efficiency: the training step's achieved FLOP/s (3 x the declared "
                  "forward FLOPs per token x tokens/s) over a matmul's, measured in the same "
                  "process; a dash where the model declares no FLOPs.",
                  "Growth: the exponent k in cost ∝ size^k (least squares on log-log, 95% "
                  "interval; a dash: fewer than two points), "
                  + " and ".join(facts.spans.get(axis, "") for axis in ("length", "batch")
                                 if axis in facts.spans) + ".", _growth_table(facts)]
        sentences = _crossover_sentences(facts)
        parts.append(" ".join(sentences) if sentences else "No crossover: along no series does "
                     "one architecture overtake another with 95% intervals that do not overlap "
                     "on both sides of the crossing.")
        if facts.oom:
            parts.append("Out of memory: " + ", ".join(
                f"`{a}` at {AXIS_VARIABLE[axis]} = {size:,}" for a, axis, size in facts.oom) + ".")
        parts += ["Kernels that ran (torch.profiler, at the task's point):",
                  "\n".join(_kernel_lines(facts))]
    parts += [f"![{name}](plots/{name})" for name in figures]
    return "\n\n".join(parts)


# --- figures ------------------------------------------------------------------------------------

def _loglog(points: Sequence[Mapping[str, Any]], archs: Sequence[str], axis: str, phase: str,
            key: str, ylabel: str) -> bytes | None:  # fmt: skip
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    colors = name_colors(list(archs))
    drawn = False
    for arch in archs:
        measured = series(points, arch, axis, phase, key)
        if not measured:
            continue
        sizes = [s for s, _ in measured]
        parts = [p[phase][key] for _, p in measured]
        if isinstance(parts[0], dict):
            mid = [q["median"] for q in parts]
            ax.fill_between(sizes, [q["low"] for q in parts], [q["high"] for q in parts],
                            color=colors[arch], alpha=0.2)
        else:
            mid = parts
        ax.plot(sizes, mid, marker="o", label=arch, color=colors[arch])
        drawn = True
    if not drawn:
        return None
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"{AXIS_VARIABLE[axis]} (log scale)")
    ax.set_ylabel(f"{ylabel} (log scale)")
    ax.legend(fontsize=8)
    return png_bytes(fig)


def _throughput(points: Sequence[Mapping[str, Any]], archs: Sequence[str]) -> bytes | None:
    return _loglog(points, archs, "batch", "train", "samples_per_s", "training samples/s") \
        or _loglog(points, archs, "batch", "infer", "samples_per_s", "inference samples/s")


def cost_figures(points: Sequence[Mapping[str, Any]], archs: Sequence[str]) -> dict[str, bytes]:
    drawn = {
        FIGURES[0]: _loglog(points, archs, "length", "train", "step_ms", "training step ms")
        or _loglog(points, archs, "length", "infer", "step_ms", "inference ms"),
        FIGURES[1]: _loglog(points, archs, "length", "train", "peak_mb", "training peak MiB")
        or _loglog(points, archs, "length", "infer", "peak_mb", "inference peak MiB"),
        FIGURES[2]: _throughput(points, archs),
    }
    return {name: png for name, png in drawn.items() if png is not None}


def cost_section(context: ReportContext) -> tuple[str, dict[str, bytes]]:
    """The closing section: facts from the folder's cost points, rendered, with its figures."""
    folder: CostFolder = context.payloads[PAYLOAD]
    order = list(context.manifest.get("archs") or [])
    facts = cost_facts(folder.points, order)
    archs = facts[0].archs if facts else []
    figures = cost_figures(folder.points, archs) if len(facts) == 1 else {}
    series = (context.manifest.get("cost_suite") or {}).get("series") or {}
    return render_cost(facts, figures, int(series.get("sittings") or 1)), figures


def _phase_ok(point: Mapping[str, Any] | None, phase: str) -> dict[str, Any] | None:
    part = (point or {}).get(phase)
    return part if isinstance(part, dict) and part.get("status") == "ok" else None


def _alone_values(task_point: Mapping[str, Any], batch_one: Mapping[str, Any] | None) -> dict[str, float]:
    """The run metrics one architecture's cost points measure, under the metrics' names."""
    values: dict[str, float] = {}
    train, infer = _phase_ok(task_point, "train"), _phase_ok(task_point, "infer")
    latency = _phase_ok(batch_one, "infer")
    fit = task_point.get("fit")
    if train:
        values.update(train_samples_per_s=train["samples_per_s"],
                      train_tokens_per_s=train["tokens_per_s"], train_peak_mem_mb=train["peak_mb"])
    elif fit:  # a self-fitting model's training is its fit, as in its run's record
        values["train_samples_per_s"] = fit["samples_per_s"]
    if infer:
        values.update(infer_samples_per_s=infer["samples_per_s"],
                      infer_peak_mem_with_weights_mb=infer["peak_mb"])
    if latency:
        values["latency_ms_p50"] = latency["step_ms"]["median"]
        if len(latency["step_ms"].get("times") or ()) >= reps_to_bound_quantile():
            values["latency_ms_p95"] = latency["latency_p95_ms"]  # else too few to bound it
    if task_point["efficiency"].get("train") is not None:
        values["efficiency"] = task_point["efficiency"]["train"]
    return {key: float(value) for key, value in values.items() if value is not None}


def alone_figures(payloads: Mapping[str, Any]) -> dict[str, dict[str, AloneFigures]]:
    """Each task's architectures' speed and memory from the cost points, for the task's tables
    and recommendation; a task measured on several devices gets none (never mixed)."""
    folder = payloads.get(PAYLOAD)
    found: dict[str, dict[str, AloneFigures]] = {}
    points = [p for p in (folder.points if folder else []) if p["status"] == "ok"]
    for task in dict.fromkeys(p["task"] for p in points):
        mine = [p for p in points if p["task"] == task]
        if len({p["device"] for p in mine}) != 1:
            continue
        for point in (p for p in mine if p["axis"] == "task"):
            ones = [p for p in mine if p["arch"] == point["arch"] and p["axis"] == "batch"
                    and p["batch"] == 1]  # fmt: skip
            one = ones[0] if ones else None
            latency_of = (f"at batch 1, T = {one['length_T']:,}" if one else "not measured")
            source = (f"the cost suite's, each architecture untrained and alone: training and "
                      f"inference at the task's own lengths, batch {point['batch']}; latency "
                      f"{latency_of}; peak memory counted as the bytes of live tensors")
            found.setdefault(task, {})[point["arch"]] = AloneFigures(
                _alone_values(point, one), source, latency_of)
    return found


#: The smoke warning's account of this section's figures.
SMOKE_NOTE = ("at a few tiny sizes (T up to 32, batch up to 4, tiny models), where the "
              "weights, not the sequence, fill the memory: its times, exponents and crossovers")
register_payload(PAYLOAD, read_points_payload)
register_closing_section(ClosingSection("cost", build=cost_section, payloads=(PAYLOAD,),
                                        figures=FIGURES, standalone=True, order=30,
                                        smoke_note=SMOKE_NOTE,
                                        title="what each architecture costs, measured alone",
                                        measured=lambda context: context.payloads[PAYLOAD].points,
                                        alone_figures=alone_figures))
