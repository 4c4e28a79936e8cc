"""The report's gradient-flow section: a table of decays and one figure, from ``gradient_flow.json``.

A pure function of the payload (read with :func:`bench.records.read_gradient_flow`; measured by
``bench.gradflow``): no torch, no clock, so the same payload always renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.lines import Line2D

from reports.plots import PLOTS_DIR, name_colors, new_figure, png_bytes
from reports.table import MISSING, markdown_table

#: The figure's file name under ``plots/``.
GRADIENT_PLOT = "gradient_flow.png"
GRADIENT_TITLE = "Gradient norm against distance from the readout"


def format_decay(value: float | None) -> str:
    """A decay factor for a table: three significant digits down to 0.001, then scientific;
    ``—`` where it could not be fitted."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0 (vanished)"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.1e}"


def _panel_key(probe: Mapping[str, Any]) -> tuple[str, str]:
    return str(probe["task"]), str(probe["setting"])


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


def _table(probes: Sequence[Mapping[str, Any]], span: int, archs: Sequence[str]) -> str:
    # Several seeds of one architecture on one batch: each row names its seed.
    keys = [(p["arch"], *_panel_key(p)) for p in probes]
    repeated = {k for k in keys if keys.count(k) > 1}
    panels = list(dict.fromkeys(_panel_key(p) for p in probes))
    ordered = sorted(probes, key=lambda p: (panels.index(_panel_key(p)), archs.index(p["arch"]),
                                            p["seed"]))  # fmt: skip
    body = []
    for probe in ordered:
        arch = probe["arch"]
        if (arch, *_panel_key(probe)) in repeated:
            arch += f" (seed {probe['seed']})"
        body.append([
            arch, str(probe["task"]), str(probe["setting"]),
            format_decay(probe["init"]["decay_per_span"]),
            format_decay(probe["trained"]["decay_per_span"]),
            _near_far(probe["trained"]),
            _accuracy(probe["trained"]),
        ])  # fmt: skip
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


def _batches(probes: Sequence[Mapping[str, Any]]) -> str:
    described = dict.fromkeys(f"{p['task']}, {p['sequences']} sequences ({p['setting']})"
                              for p in probes)  # fmt: skip
    return "; ".join(described)


def gradient_section(
    payload: Mapping[str, Any] | None, arch_order: Sequence[str] | None = None
) -> tuple[str | None, dict[str, bytes]]:
    """The report's "Gradient flow" section and its figure.

    Args:
        payload: a ``gradient_flow.json`` payload (:func:`bench.records.read_gradient_flow`), or
            None.
        arch_order: the report's architecture order, so each architecture keeps the colour it has
            in the other figures; architectures not in it follow, as the payload lists them.

    Returns:
        ``(markdown, {"gradient_flow.png": png})``, the figure keyed by its name under
        ``plots/`` (the markdown links ``plots/gradient_flow.png``); ``(None, {})`` for no payload
        or one without probes.
    """
    probes = list((payload or {}).get("probes") or ())
    if not probes:
        return None, {}
    assert payload is not None  # narrowed: probes came from it
    span = int(payload["span"])
    archs = _arch_order(probes, arch_order)
    figure = gradient_figure(payload, archs)
    text = [
        "## Gradient flow",
        "",
        "How strongly does training reach back to a token far before the readout? For each "
        "architecture, the norm of the gradient of the loss (binary cross-entropy, batch mean) "
        "with respect to each input token's embedding, against the token's distance from the "
        "readout (0: the last token), on one fixed batch per task "
        f"({_batches(probes)}), each distance averaged over the sequences that reach it. It is "
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
        _table(probes, span, archs),
        "",
    ]
    if figure is None:
        return "\n".join(text), {}
    text += [f"![{GRADIENT_TITLE}]({PLOTS_DIR}/{GRADIENT_PLOT})", ""]
    return "\n".join(text), {GRADIENT_PLOT: figure}
