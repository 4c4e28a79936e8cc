"""The report's gradient-flow section: a table of decays and one figure, from ``gradient_flow.json``.

A pure function of the payload (read with :func:`bench.results.records.read_gradient_flow`; measured by
``bench.suites.memory.gradflow``): no torch, no clock, so the same payload always renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.lines import Line2D

from bench.results.records import read_gradient_flow
from reports.plots import PLOTS_DIR, name_colors, new_figure, png_bytes
from reports.sections import (
    Built,
    ClosingSection,
    ReportContext,
    register_closing_section,
    register_payload,
)
from reports.table import MISSING, markdown_table

#: The figure's file name under ``plots/``.
GRADIENT_PLOT = "gradient_flow.png"
GRADIENT_TITLE = "Gradient norm against distance from the readout"
#: The payload the section reads: the probe's ``gradient_flow.json`` beside the runs.
GRADIENT_PAYLOAD = "gradient_flow"


def format_decay(value: float | None) -> str:
    """A decay factor for a table: three significant digits down to 0.001, then scientific;
    ``—`` where it could not be fitted."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0 (vanished)"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.1e}"


def load_name(alphabet: int, n_signals: int) -> str:
    """A memory load's one name in every report: ``2 of 16`` (two different symbols to hold, out
    of an alphabet of 16), as the suite names it (``data_pipeline.memory.load_label``, which
    imports torch; a test keeps the two alike)."""
    return f"{n_signals} of {alphabet}"


def setting_of(probe: Mapping[str, Any]) -> str:
    """Where a probe read its batch, in the reports' words: ``T = 64, load 2 of 16`` for the
    memory task (from its fields, whatever words the payload's ``setting`` used), else the
    payload's ``setting``."""
    alphabet, n_signals, distance = (probe.get(k) for k in ("alphabet", "n_signals", "distance_T"))
    if all(isinstance(v, int) for v in (alphabet, n_signals, distance)):
        return f"T = {distance}, load {load_name(alphabet, n_signals)}"
    return str(probe["setting"])


def _panel_key(probe: Mapping[str, Any]) -> tuple[str, str]:
    return str(probe["task"]), setting_of(probe)


def _arch_order(probes: Sequence[Mapping[str, Any]], arch_order: Sequence[str] | None) -> list[str]:
    """The report's order of architectures (so each keeps its colour), then any others as met."""
    seen = [a for a in (arch_order or ()) if any(p["arch"] == a for p in probes)]
    for probe in probes:
        if probe["arch"] not in seen:
            seen.append(probe["arch"])
    return seen


def _near_far(profile: Mapping[str, Any]) -> str:
    """The gradient at the last token and at the far end of the fitted range (half the longest
    distance), as ``a → b at d``."""
    distances, norms = profile["distance"], profile["grad_norm"]
    if not distances:
        return MISSING
    far = (len(distances) - 1) // 2
    return f"{norms[0]:.1e} → {norms[far]:.1e} at {distances[far]}"


def _accuracy(trained: Mapping[str, Any]) -> str:
    accuracy, epochs = trained.get("test_accuracy"), trained.get("epochs")
    if accuracy is None:
        return MISSING
    after = f" (epoch {epochs})" if epochs is not None else ""
    return f"{100 * accuracy:.1f}%{after}"


@dataclass(frozen=True)
class GradientRow:
    """One probe of the table: its architecture's label (with the seed where several seeds of
    one architecture probed one batch) and the probe as the payload holds it."""

    label: str
    probe: Mapping[str, Any]

    @property
    def decay_at_init(self) -> float | None:
        return self.probe["init"]["decay_per_span"]

    @property
    def decay_trained(self) -> float | None:
        return self.probe["trained"]["decay_per_span"]


@dataclass(frozen=True)
class GradientFacts:
    """What the gradient-flow section states: the span a decay covers, the architectures in
    colour order, the probes in table order (batch, architecture, seed), the batches probed."""

    span: int
    archs: tuple[str, ...]
    rows: tuple[GradientRow, ...]
    batches: tuple[str, ...]
    #: The runs the probe meant to read and could not: (run id, why).
    left_out: tuple[tuple[str, str], ...] = ()

    def decays(self, arch: str) -> list[tuple[float | None, float | None]]:
        """``arch``'s (at initialisation, after training) decays, in table order."""
        return [(r.decay_at_init, r.decay_trained) for r in self.rows if r.probe["arch"] == arch]


def gradient_facts(
    payload: Mapping[str, Any] | None, arch_order: Sequence[str] | None = None
) -> GradientFacts | None:
    """The section's facts from a ``gradient_flow.json`` payload (None: no payload, no probes)."""
    probes = list((payload or {}).get("probes") or ())
    if not probes:
        return None
    assert payload is not None  # narrowed: probes came from it
    archs = _arch_order(probes, arch_order)
    # Several seeds of one architecture on one batch: each row names its seed.
    keys = [(p["arch"], *_panel_key(p)) for p in probes]
    repeated = {k for k in keys if keys.count(k) > 1}
    panels = list(dict.fromkeys(_panel_key(p) for p in probes))
    ordered = sorted(probes, key=lambda p: (panels.index(_panel_key(p)), archs.index(p["arch"]),
                                            p["seed"]))  # fmt: skip
    rows = tuple(GradientRow(p["arch"] + (f" (seed {p['seed']})" if (p["arch"], *_panel_key(p)) in repeated
                                          else ""), p) for p in ordered)  # fmt: skip
    batches = tuple(dict.fromkeys(f"{p['task']}, {p['sequences']} sequences ({setting_of(p)})"
                                  for p in probes))  # fmt: skip
    left_out = tuple((e["run_id"], e["reason"]) for e in payload.get("left_out") or ())
    return GradientFacts(int(payload["span"]), tuple(archs), rows, batches, left_out)


def _table(facts: GradientFacts) -> str:
    body = [[
        row.label, str(row.probe["task"]), setting_of(row.probe),
        format_decay(row.decay_at_init), format_decay(row.decay_trained),
        _near_far(row.probe["trained"]), _accuracy(row.probe["trained"]),
    ] for row in facts.rows]  # fmt: skip
    span = facts.span
    headers = ["Architecture", "Task", "Batch", f"Decay per {span} steps, at initialisation",
               f"Decay per {span} steps, after training",
               "Gradient after training: last token → half the longest distance",
               "Test accuracy (checkpoint's epoch)"]  # fmt: skip
    return markdown_table(headers, body, align="lllrrrr")


def gradient_figure(payload: Mapping[str, Any], arch_order: Sequence[str] | None = None) -> bytes | None:
    """Gradient norm (log scale) against distance: one panel per task and batch, one colour per
    architecture, at initialisation dashed and after training solid; None without probes."""
    probes = list(payload.get("probes") or ())
    if not probes:
        return None
    colors = name_colors(_arch_order(probes, arch_order))
    panels = list(dict.fromkeys(_panel_key(p) for p in probes))
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    # Wide enough for the title and the legend even with one panel.
    fig = new_figure(max(6.0 * ncols, 9.0), 4.2 * nrows + 1.0)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    for position, (task, setting) in enumerate(panels):
        ax = grid[position // ncols][position % ncols]
        for probe in probes:
            if _panel_key(probe) != (task, setting):
                continue
            color = colors[probe["arch"]]
            for phase, style in (("init", "--"), ("trained", "-")):
                profile = probe[phase]
                ax.plot(profile["distance"], profile["grad_norm"], linestyle=style, color=color,
                        linewidth=1.4)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(f"{task}: {setting}")
        ax.set_xlabel("distance from the readout (steps before the last token)")
        ax.set_ylabel("gradient norm (log scale)")
        ax.grid(alpha=0.3, which="major")
    for position in range(len(panels), nrows * ncols):
        grid[position // ncols][position % ncols].set_visible(False)
    handles = [Line2D([], [], color=colors[a], linewidth=2, label=a) for a in colors]
    handles += [Line2D([], [], color="0.3", linestyle="--", label="at initialisation"),
                Line2D([], [], color="0.3", linestyle="-", label="after training")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    fig.suptitle(GRADIENT_TITLE)
    return png_bytes(fig)


def gradient_section(
    payload: Mapping[str, Any] | None, arch_order: Sequence[str] | None = None
) -> tuple[str | None, dict[str, bytes]]:
    """The report's "Gradient flow" section and its figure.

    Args:
        payload: a ``gradient_flow.json`` payload (:func:`bench.results.records.read_gradient_flow`), or
            None.
        arch_order: the report's architecture order, so each architecture keeps the colour it has
            in the other figures; architectures not in it follow, as the payload lists them.

    Returns:
        ``(markdown, {"gradient_flow.png": png})``, the figure keyed by its name under
        ``plots/`` (the markdown links ``plots/gradient_flow.png``); ``(None, {})`` for no payload
        or one without probes.
    """
    facts = gradient_facts(payload, arch_order)
    if facts is None:
        return None, {}
    assert payload is not None  # narrowed: facts came from it
    figure = gradient_figure(payload, facts.archs)
    return render_gradients(facts, GRADIENT_PLOT if figure is not None else None), (
        {GRADIENT_PLOT: figure} if figure is not None else {})


def render_gradients(facts: GradientFacts, figure: str | None = None) -> str:
    """The section's markdown from its facts; ``figure``: the figure's name under ``plots/``
    (None: none could be drawn)."""
    span = facts.span
    text = [
        "## Gradient flow",
        "",
        "How strongly does training reach back to a token far before the readout? For each "
        "architecture, the norm of the gradient of the loss (binary cross-entropy, batch mean) "
        "with respect to each input token's embedding, against the token's distance from the "
        "readout (0: the last token), on one fixed batch per task "
        f"({'; '.join(facts.batches)}), each distance averaged over the sequences that reach it. It is "
        "measured twice per run, with the weights the run started from (its seed, dashed) and "
        "with its selected checkpoint (solid), in evaluation mode on the CPU. The decay is the "
        f"factor by which the gradient shrinks every {span} steps: a least-squares line through "
        "the logarithm of the norm over the near half of the distances (a bidirectional model's "
        "backward direction reads from the other end, so its short path dominates the far "
        f"half). Read it as: 1, a token {span} steps back gets as much gradient as the last one; "
        f"0.01, a hundredth; 1e-10, practically none, so what the model learns from far-back "
        "tokens comes slowly if at all. It measures how learning signal travels, not what a "
        "trained model can hold (the memory horizon measures that). Norms below float32's "
        "smallest normal number (about 1.2e-38) are shown at that floor and left out of the fit.",
        "",
        _table(facts),
        "",
    ]
    if facts.left_out:
        text += ["Left out of the probe (not in the table or the figure): " + "; ".join(
            f"`{run_id}` ({reason})" for run_id, reason in facts.left_out) + ".", ""]
    if figure is not None:
        text += [f"![{GRADIENT_TITLE}]({PLOTS_DIR}/{figure})", ""]
    return "\n".join(text)


def _build(context: ReportContext) -> Built:
    return gradient_section(context.payloads[GRADIENT_PAYLOAD], context.manifest.get("archs"))


register_payload(GRADIENT_PAYLOAD, read_gradient_flow)
# First of the closing sections: the notebook's table (order 20) draws on it.
register_closing_section(ClosingSection("gradient_flow", _build, payloads=(GRADIENT_PAYLOAD,),
                                        figures=(GRADIENT_PLOT,), order=10))  # fmt: skip
