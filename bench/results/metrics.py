"""The metric registry: what each number in a run record is, declared once.

A metric is one :func:`register_metric` call (name, report label, unit, direction, how it is
summarised over seeds, how it is shown, what it measures) plus the code that computes it
(``bench.run.execute``). Everything else reads the registry: record validation, the report's main
table, its definitions, the terminal summary, ``summary.csv`` and the schema page's metrics table
(:mod:`bench.results.schema_page`; ``python -m bench.metrics docs/record-schema.md`` rewrites it). Registration order is column
order.

Records stay readable when a metric is added: a record written before it lacks it and renders
with that cell empty. Only the metrics registered with ``required=True`` (those records have always
carried) must be present in a successful record. This module imports nothing that trains, so
reports may read it as part of the record schema.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DISPLAYS",
    "METRICS",
    "SUMMARIES",
    "Metric",
    "definition_groups",
    "metrics_markdown",
    "register_metric",
    "required_metrics",
]

#: How a metric's seeds are summarised: mean ± sample sd (with a 95% t interval), or the mean only
#: (counts that do not vary in a way worth a spread).
SUMMARIES = ("mean_sd", "mean")
#: How a value is shown: a count (1.2M), a fraction as a percentage, a fraction to 3 decimals,
#: 3 significant figures, or a small fraction as a percentage to 3 significant figures.
DISPLAYS = ("count", "percent", "fraction", "sig3", "efficiency")


@dataclass(frozen=True)
class Metric:
    """One metric of a run record.

    Attributes:
        name: the record key, flat and unit-suffixed (``latency_ms_p50``).
        label: the report's column header, without the direction arrow.
        unit: what the number counts (``fraction``, ``1/s``, ``ms``, ``MiB``, ...).
        higher_is_better: True or False, or None for a count with no better direction.
        summary: one of :data:`SUMMARIES`.
        display: one of :data:`DISPLAYS`.
        definition: how it is measured, for the report and the schema page; metrics measured the
            same way share one definition text and are listed together.
        required: every successful record has it (true only of metrics that every record ever
            written has; a metric added later is optional so older records stay readable).
        in_table: a column of the report's main table.
        in_terminal: a column of the terminal summary.
        contended: the figure changes when other runs share the machine (a speed, a time, a
            memory peak): the report marks it for runs whose record says they did
            (``concurrent_runs`` above 1).
        bounds: the values the quantity can take, (low, high), None where it has no bound: a
            share ``(0, 1)``, a time, a size or a rate ``(0, None)``. An interval over seeds is
            cut to them (a t interval can pass a bound; the quantity cannot).
        scored_on: for a share of examples scored right (an accuracy), the key of the record's
            ``data`` that counts those examples (``n_test``): its interval then covers the
            examples' sampling as well as the seeds' spread (:func:`reports.stats.share_interval`).
    """

    name: str
    label: str
    unit: str
    higher_is_better: bool | None
    summary: str
    display: str
    definition: str
    required: bool = False
    in_table: bool = True
    in_terminal: bool = False
    contended: bool = False
    bounds: tuple[float | None, float | None] = (None, None)
    scored_on: str | None = None

    def within_bounds(self, low: float, high: float) -> tuple[float, float]:
        """The interval ``[low, high]`` cut to :attr:`bounds` (NaN stays NaN)."""
        floor, ceiling = self.bounds
        if floor is not None and low < floor:
            low = floor
        if ceiling is not None and high > ceiling:
            high = ceiling
        return low, high

    @property
    def range_text(self) -> str:
        """The bounds as the schema page shows them: ``[0, 1]``, ``>= 0``, or ``—``."""
        floor, ceiling = self.bounds
        if floor is not None and ceiling is not None:
            return f"[{floor:g}, {ceiling:g}]"
        if floor is not None:
            return f">= {floor:g}"
        return f"<= {ceiling:g}" if ceiling is not None else "—"


#: Registered metrics by name, in registration (column) order.
METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    label: str,
    unit: str,
    higher_is_better: bool | None,
    summary: str,
    display: str,
    definition: str,
    bounds: tuple[float | None, float | None],
    required: bool = False,
    in_table: bool = True,
    in_terminal: bool = False,
    contended: bool = False,
    scored_on: str | None = None,
) -> Metric:
    """Register a metric (see :class:`Metric`); returns it. ``bounds`` has no default: every
    metric says what values it can take.

    Raises:
        ValueError: a duplicate name, an unknown summary or display, an empty definition, or
            bounds whose low end is above the high one.
    """
    if name in METRICS:
        raise ValueError(f"metric {name!r} is already registered")
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {', '.join(SUMMARIES)}, got {summary!r}")
    if display not in DISPLAYS:
        raise ValueError(f"display must be one of {', '.join(DISPLAYS)}, got {display!r}")
    if not definition.strip() or "\n" in definition or "|" in definition:
        raise ValueError(f"metric {name!r} needs a one-line definition without '|'")
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise ValueError(f"metric {name!r}: bounds {bounds} have the low end above the high one")
    metric = Metric(name, label, unit, higher_is_better, summary, display, definition.strip(),
                    required, in_table, in_terminal, contended, (low, high), scored_on)  # fmt: skip
    METRICS[name] = metric
    return metric


def required_metrics() -> list[str]:
    """The metrics every successful record must have."""
    return [m.name for m in METRICS.values() if m.required]


def definition_groups() -> list[list[Metric]]:
    """The registered metrics grouped by identical definition, in registration order."""
    groups: dict[str, list[Metric]] = {}
    for metric in METRICS.values():
        groups.setdefault(metric.definition, []).append(metric)
    return list(groups.values())


_BETTER = {True: "higher", False: "lower", None: "—"}
def metrics_markdown() -> str:
    """The schema page's metrics table (between its markers)."""
    lines = ["| metric | unit | range | better | how it is measured |", "|---|---|---|---|---|"]
    for group in definition_groups():
        units = list(dict.fromkeys(m.unit for m in group))
        ranges = list(dict.fromkeys(m.range_text for m in group))
        better = list(dict.fromkeys(_BETTER[m.higher_is_better] for m in group))
        lines.append(f"| {', '.join(f'`{m.name}`' for m in group)} | {', '.join(units)} | "
                     f"{', '.join(ranges)} | {', '.join(better)} | {group[0].definition} |")  # fmt: skip
    return "\n".join(lines)


# ---- the metrics every run records ---------------------------------------------------------------
_TEST = "on the whole test split, once, with the checkpoint selected on validation"
_LOSS = "mean binary cross-entropy"
_TRAIN_SPEED = ("steady-state training throughput: warm-up batches excluded; tokens are real "
                "tokens, padding excluded")  # fmt: skip
_LATENCY = "one review of median length, batch of one, after warm-up"
_EPOCHS = "early stopping may end before the configured epochs"

register_metric("param_count", bounds=(0.0, None), label="Params", unit="count", higher_is_better=None, summary="mean",
                display="count", required=True, in_terminal=True,
                definition="trainable parameters")  # fmt: skip
register_metric("core_param_count", bounds=(0.0, None), label="Core params", unit="count",
                higher_is_better=None, summary="mean", display="count",
                definition="trainable parameters outside the embedding table: the recurrence (with "
                "its block's MLP, norms and convolutions, for a modern one) and the readout; none "
                "for a self-fitting model. Records written before it: "
                "`param_count` − vocabulary × `embedding_dim` (every registered network has one "
                "table of that size)")  # fmt: skip
register_metric("state_size", bounds=(1.0, None), label="State", unit="count",
                higher_is_better=None, summary="mean", display="count",
                definition="floats each review carries from one step to the next: every layer's "
                "recurrent state (an LSTM's h and c, a complex state's two parts, a convolution's "
                "window), as the registry declares it and a test holds it to the model's "
                "`final_state`; none for a model that is not recurrent. Records written before "
                "it: the registry's declaration at the record's hyperparameters")  # fmt: skip
register_metric("test_accuracy", bounds=(0.0, 1.0), scored_on="n_test", label="Test acc %", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="percent", required=True, in_terminal=True,
                definition=_TEST)  # fmt: skip
register_metric("test_loss", bounds=(0.0, None), label="Test loss", unit="nats", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, in_table=False, definition=_LOSS)
register_metric("test_precision", bounds=(0.0, 1.0), label="Precision", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="fraction", required=True, in_table=False,
                definition=_TEST)  # fmt: skip
register_metric("test_recall", bounds=(0.0, 1.0), label="Recall", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="fraction", required=True, in_table=False,
                definition=_TEST)  # fmt: skip
register_metric("test_f1", bounds=(0.0, 1.0), label="F1", unit="fraction", higher_is_better=True, summary="mean_sd",
                display="fraction", required=True, definition=_TEST)
register_metric("test_roc_auc", bounds=(0.0, 1.0), label="ROC-AUC", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="fraction", required=True, definition=_TEST)
register_metric("val_accuracy", bounds=(0.0, 1.0), scored_on="n_val", label="Val acc %", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="percent", required=True,
                definition="at the selected epoch")  # fmt: skip
register_metric("val_loss", bounds=(0.0, None), label="Val loss", unit="nats", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, in_table=False, definition=_LOSS)
register_metric("train_samples_per_s", bounds=(0.0, None), contended=True, label="Train samples/s", unit="1/s", higher_is_better=True,
                summary="mean_sd", display="sig3", required=True, in_terminal=True,
                definition=_TRAIN_SPEED)  # fmt: skip
register_metric("train_tokens_per_s", bounds=(0.0, None), contended=True, label="Train tokens/s", unit="1/s", higher_is_better=True,
                summary="mean_sd", display="sig3", required=True, definition=_TRAIN_SPEED)
register_metric("infer_samples_per_s", bounds=(0.0, None), contended=True, label="Infer samples/s", unit="1/s", higher_is_better=True,
                summary="mean_sd", display="sig3", required=True,
                definition="evaluation-mode forward passes at the evaluation batch size")  # fmt: skip
register_metric("latency_ms_p50", bounds=(0.0, None), contended=True, label="Latency p50 ms", unit="ms", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, in_terminal=True,
                definition=_LATENCY)  # fmt: skip
register_metric("latency_ms_p95", bounds=(0.0, None), contended=True, label="Latency p95 ms", unit="ms", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, definition=_LATENCY)
register_metric("train_peak_mem_mb", bounds=(0.0, None), contended=True, label="Train peak MiB", unit="MiB", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, in_terminal=True,
                definition="CUDA: `torch.cuda.max_memory_allocated`, reset before training. CPU: "
                "growth of peak resident memory (VmHWM) over training, above the resident memory "
                "before it (activations, gradients, optimizer state, allocator slack; the weights "
                "and data loaded before are excluded)")  # fmt: skip
register_metric("infer_peak_mem_with_weights_mb", bounds=(0.0, None), contended=True, label="Infer peak MiB", unit="MiB",
                higher_is_better=False, summary="mean_sd", display="sig3",
                definition="the test pass with the model's weights, at the evaluation batch size. "
                "CUDA: `torch.cuda.max_memory_allocated`, reset before the pass (weights, "
                "activations, batches). CPU: measured in a fresh process, so no earlier phase's "
                "freed memory hides it: the rise of peak resident memory (VmHWM) while it builds "
                "the model, loads the selected weights and runs the pass (weights, batches, "
                "activations), above the resident memory before (the interpreter, torch, the "
                "encoded test split, and torch's one-off first-use cost, paid beforehand by the "
                "same pass through the same architecture with a two-token vocabulary); glibc's "
                "mmap threshold is fixed at 128 KiB so every sizeable tensor is returned when freed "
                "and the peak does not depend on the allocator's history; null where "
                "`measure.infer_memory` is off (the memory suite) or the kernel does not expose "
                "peak memory")  # fmt: skip
register_metric("epochs_run", bounds=(1.0, None), label="Epochs", unit="count", higher_is_better=None, summary="mean",
                display="count", required=True, in_table=False, definition=_EPOCHS)  # fmt: skip
register_metric("best_epoch", bounds=(1.0, None), label="Best epoch", unit="count", higher_is_better=None,
                summary="mean", display="count", required=True, in_table=False, definition=_EPOCHS)
register_metric("efficiency", bounds=(0.0, None), contended=True, label="Efficiency %", unit="fraction", higher_is_better=True,
                summary="mean_sd", display="efficiency", required=True,
                definition="model FLOP/s achieved in training (3 × the FLOPs per token its "
                "registration declares × real tokens per second) ÷ dense matmul FLOP/s measured on "
                "the same device in the same process; not measured for a model that declares no "
                "FLOPs or fits itself")  # fmt: skip
register_metric("train_time_s", bounds=(0.0, None), contended=True, label="Train time s", unit="s", higher_is_better=False,
                summary="mean_sd", display="sig3", required=True, in_terminal=True,
                definition="wall time of the training loop including validation passes")  # fmt: skip
