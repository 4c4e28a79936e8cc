"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

No pyplot: figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, so
rendering touches no global backend state and works in any process (a test, a worker, a server).
Each architecture keeps one colour in every figure of every report, taken from its place in the
model registry (:func:`name_colors`), whatever else a folder holds.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from reports.table import ArchSummary, format_count

#: The folder of a results folder that holds the plots.
PLOTS_DIR = "plots"
#: Plot file names (relative to ``plots/``) with the markdown caption of each (``{example}``: what
#: one example of the task is called, see :func:`plot_title`).
PLOT_TITLES: dict[str, str] = {
    "learning_curves.png": "Learning curves (mean over seeds)",
    "accuracy_vs_throughput.png": "Test accuracy against training throughput",
    "memory_and_params.png": "Peak memory and parameter count",
    "latency.png": "Single-{example} latency",
}


def plot_title(name: str, example: str = "review") -> str:
    """The caption of plot ``name`` for a task whose examples are called ``example``."""
    return PLOT_TITLES[name].format(example=example)

_DPI = 120


Color = tuple[float, float, float, float]


def _palette(count: int) -> list[Color]:
    """At least ``count`` distinct colours: tab10, then tab20's light shades, tab20b and tab20c; beyond
    those, hues a golden angle apart at alternating lightness (never two alike)."""
    colors = [colormaps["tab10"](i) for i in range(10)]
    colors += [colormaps["tab20"](i) for i in range(1, 20, 2)]
    colors += [colormaps[name](i) for name in ("tab20b", "tab20c") for i in range(20)]
    for i in range(count - len(colors)):
        hue = (i * 0.618033988749895) % 1.0
        colors.append((*colorsys.hsv_to_rgb(hue, 0.65, 0.55 + 0.35 * (i % 2)), 1.0))
    return colors


def arch_colors(rows: Sequence[ArchSummary]) -> dict[str, Color]:
    """The colour of each row's architecture (:func:`name_colors`)."""
    return name_colors([row.arch for row in rows])


def name_colors(names: Sequence[str]) -> dict[str, Color]:
    """One colour per architecture, the same in every report: by its place in the model
    registry; a name the registry does not hold (a record of an architecture since removed)
    takes the next free colour, in sorted order, so no two names of one figure are alike. The
    registry is imported here, when a figure is drawn: a report section imports no torch."""
    from models import list_models

    registered = list_models()
    order = registered + sorted(set(names) - set(registered))
    palette = _palette(len(order))
    return {name: palette[order.index(name)] for name in names}


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global backend state), laid out by
    matplotlib's constrained layout."""
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes that depend on its content and matplotlib's version only."""
    buf = io.BytesIO()
    # No "Software" stamp: the bytes then depend on the data and the matplotlib version only.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _spans_decades(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) >= 10


def _epoch_means(row: ArchSummary, key: str) -> tuple[list[int], list[float]]:
    """Mean of a history ``key`` per epoch over the seeds that reached that epoch."""
    per_epoch: dict[int, list[float]] = {}
    for rec in row.ok:
        for entry in rec["history"]:
            value = entry.get(key)
            if value is not None and math.isfinite(value):
                per_epoch.setdefault(int(entry["epoch"]), []).append(float(value))
    epochs = sorted(per_epoch)
    return epochs, [float(np.mean(per_epoch[e])) for e in epochs]


def learning_curves(rows: Sequence[ArchSummary]) -> bytes | None:
    """Train and validation loss and accuracy per epoch, one line per architecture."""
    colors = arch_colors(rows)
    drawn = [r for r in rows if r.ok and any(rec["history"] for rec in r.ok)]
    if not drawn:
        return None
    fig = new_figure(10, 7)
    axes = fig.subplots(2, 2, sharex=True, sharey="row")
    panels = (
        (axes[0][0], "train_loss", "Training loss", 1.0),
        (axes[0][1], "val_loss", "Validation loss", 1.0),
        (axes[1][0], "train_accuracy", "Training accuracy", 100.0),
        (axes[1][1], "val_accuracy", "Validation accuracy", 100.0),
    )
    for ax, key, title, scale in panels:
        for row in drawn:
            epochs, means = _epoch_means(row, key)
            if epochs:
                ax.plot(
                    epochs,
                    [m * scale for m in means],
                    marker="o",
                    color=colors[row.arch],
                    label=row.arch,
                )
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("binary cross-entropy (nats)")
    axes[1][0].set_ylabel("accuracy (%)")
    axes[1][0].set_xlabel("epoch")
    axes[1][1].set_xlabel("epoch")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1][1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    fig.suptitle("Learning curves (mean over seeds)")
    return png_bytes(fig)


def _place_labels(
    fig: Figure, ax: Axes, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str]
) -> None:
    """Label points, trying offsets around each until the label covers no point or other label."""
    renderer = fig.canvas.get_renderer()
    # Scales and limits must be final before display coordinates mean anything.
    fig.canvas.draw()
    radius = 6 * fig.dpi / 72  # about a marker's size, in pixels
    points = ax.transData.transform(np.column_stack([xs, ys]))
    offsets = [(7, 7, "left", "bottom"), (7, -7, "left", "top"), (-7, 7, "right", "bottom"),
               (-7, -7, "right", "top"), (0, 12, "center", "bottom"), (0, -12, "center", "top"),
               (12, 0, "left", "center"), (-12, 0, "right", "center")]  # fmt: skip
    placed = [
        Bbox.from_extents(px - radius, py - radius, px + radius, py + radius) for px, py in points
    ]
    for x, y, label in zip(xs, ys, labels, strict=True):
        annotation, box = None, None
        for dx, dy, ha, va in offsets:
            annotation = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=9,
            )  # fmt: skip
            box = annotation.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            annotation.remove()
            annotation = None
        if annotation is None:
            # Every spot is taken: keep the first one rather than drop a label.
            dx, dy, ha, va = offsets[0]
            annotation = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=9,
            )  # fmt: skip
            box = annotation.get_window_extent(renderer)
        placed.append(box)


def _front_2d(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both higher-better)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any(
            (ox >= x and oy >= y) and (ox, oy) != (x, y)
            for j, (ox, oy) in enumerate(points)
            if j != i
        ):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def accuracy_vs_throughput(rows: Sequence[ArchSummary]) -> bytes | None:
    """Test accuracy against training samples/s, the Pareto front of the two drawn."""
    colors = arch_colors(rows)
    drawn = [
        r for r in rows if r.value("test_accuracy") is not None and r.value("train_samples_per_s")
    ]
    if not drawn:
        return None
    fig = new_figure(8, 5.5)
    ax = fig.subplots()
    xs = [r.value("train_samples_per_s") for r in drawn]
    ys = [r.value("test_accuracy") * 100 for r in drawn]
    for row, x, y in zip(drawn, xs, ys, strict=True):
        x_std = row.stats["train_samples_per_s"].std
        y_std = row.stats["test_accuracy"].std * 100
        ax.errorbar(
            x,
            y,
            xerr=x_std if math.isfinite(x_std) else None,
            yerr=y_std if math.isfinite(y_std) else None,
            fmt="o",
            markersize=8,
            capsize=3,
            color=colors[row.arch],
        )
    front = _front_2d(list(zip(xs, ys, strict=True)))
    ax.plot(
        [xs[i] for i in front],
        [ys[i] for i in front],
        linestyle="--",
        marker="o",
        markersize=15,
        markerfacecolor="none",
        markeredgecolor="black",
        color="0.4",
        zorder=0,
        label="Pareto front (higher accuracy, higher throughput)",
    )
    ax.legend(loc="lower right", fontsize=9)
    log_x = _spans_decades(xs)
    if log_x:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel("training throughput (samples/s, this machine"
                  + (", log scale)" if log_x else ")"))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy against training throughput (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    _place_labels(fig, ax, xs, ys, [r.arch for r in drawn])
    return png_bytes(fig)


def _bar_labels(
    ax: Axes, bars, texts: Sequence[str], heights: Sequence[float] | None = None
) -> None:
    """Write ``texts`` above ``bars`` (or above ``heights``, e.g. the top of a whisker)."""
    tops = heights if heights is not None else [bar.get_height() for bar in bars]
    for bar, text, top in zip(bars, texts, tops, strict=True):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, top),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )


def _arch_axis(ax, names: Sequence[str]) -> None:
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center"
    )


def memory_and_params(rows: Sequence[ArchSummary]) -> bytes | None:
    """Peak training and inference memory (grouped bars) beside the parameter count."""
    colors = arch_colors(rows)
    mem_rows = [
        r
        for r in rows
        if r.value("train_peak_mem_mb") is not None or r.value("infer_peak_mem_with_weights_mb") is not None
    ]
    par_rows = [r for r in rows if r.value("param_count") is not None]
    if not mem_rows and not par_rows:
        return None
    fig = new_figure(11, 4.8)
    ax_mem, ax_par = fig.subplots(1, 2)
    width = 0.4
    if mem_rows:
        for offset, metric, hatch, name in ((-width / 2, "train_peak_mem_mb", None, "training"),
                                            (width / 2, "infer_peak_mem_with_weights_mb", "//", "inference")):  # fmt: skip
            values = [r.value(metric) or 0.0 for r in mem_rows]
            bars = ax_mem.bar(
                [i + offset for i in range(len(mem_rows))],
                values,
                width=width,
                color=[colors[r.arch] for r in mem_rows],
                hatch=hatch,
                edgecolor="black",
                linewidth=0.5,
                label=name,
            )
            _bar_labels(ax_mem, bars, [f"{v:,.0f}" if r.value(metric) is not None else "—"
                                       for v, r in zip(values, mem_rows, strict=True)])  # fmt: skip
        _arch_axis(ax_mem, [r.arch for r in mem_rows])
        legend = ax_mem.legend(title="phase (hatched: inference)", fontsize=8)
        for handle in legend.legend_handles:
            handle.set_facecolor("white")
        ax_mem.set_ylabel("peak memory (MiB)")
        ax_mem.margins(y=0.15)
    else:
        ax_mem.text(
            0.5, 0.5, "memory not measured", ha="center", va="center", transform=ax_mem.transAxes
        )
    ax_mem.set_title("Peak memory per phase")
    ax_mem.grid(alpha=0.3, axis="y")
    if par_rows:
        values = [r.value("param_count") for r in par_rows]
        bars = ax_par.bar(
            range(len(par_rows)),
            values,
            color=[colors[r.arch] for r in par_rows],
            edgecolor="black",
            linewidth=0.5,
        )
        _bar_labels(ax_par, bars, [format_count(v) for v in values])
        _arch_axis(ax_par, [r.arch for r in par_rows])
        if _spans_decades(values):
            ax_par.set_yscale("log")
            ax_par.set_ylabel("trainable parameters (count, log scale)")
        else:
            ax_par.set_ylabel("trainable parameters (count)")
        ax_par.margins(y=0.15)
    else:
        ax_par.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax_par.transAxes)
    ax_par.set_title("Parameter count")
    ax_par.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def latency(rows: Sequence[ArchSummary], example: str = "review") -> bytes | None:
    """Latency bars at p50 with whiskers up to p95 (one example, batch of one)."""
    colors = arch_colors(rows)
    drawn = [r for r in rows if r.value("latency_ms_p50") is not None]
    if not drawn:
        return None
    fig = new_figure(8, 4.8)
    ax = fig.subplots()
    p50 = [r.value("latency_ms_p50") for r in drawn]
    p95 = [r.value("latency_ms_p95") for r in drawn]
    upper = [max(0.0, hi - lo) if hi is not None else 0.0 for lo, hi in zip(p50, p95, strict=True)]
    bars = ax.bar(
        range(len(drawn)),
        p50,
        yerr=[[0.0] * len(drawn), upper],
        capsize=5,
        color=[colors[r.arch] for r in drawn],
        edgecolor="black",
        linewidth=0.5,
    )
    _bar_labels(
        ax,
        bars,
        [
            f"p50 {lo:.3g}" + (f"\np95 {hi:.3g}" if hi is not None else "")
            for lo, hi in zip(p50, p95, strict=True)
        ],
        heights=[lo + up for lo, up in zip(p50, upper, strict=True)],
    )
    _arch_axis(ax, [r.arch for r in drawn])
    if _spans_decades(p50 + [v for v in p95 if v is not None]):
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, log scale)")
    else:
        ax.set_ylabel("latency (ms)")
    ax.margins(y=0.15)
    ax.set_title(f"{plot_title('latency.png', example)}: bar p50, whisker to p95 (lower is better)")
    ax.grid(alpha=0.3, axis="y", which="both")
    return png_bytes(fig)


def render_plots(rows: Sequence[ArchSummary], example: str = "review") -> dict[str, bytes]:
    """Every figure that has data, keyed by its file name under ``plots/``."""
    makers = {
        "learning_curves.png": learning_curves,
        "accuracy_vs_throughput.png": accuracy_vs_throughput,
        "memory_and_params.png": memory_and_params,
        "latency.png": lambda rows: latency(rows, example),
    }
    out = {}
    for name, make in makers.items():
        png = make(rows)
        if png is not None:
            out[name] = png
    return out
