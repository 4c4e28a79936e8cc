"""Render a results folder: ``report.md``, ``summary.csv`` and ``plots/*.png`` beside the runs.

A folder may hold several tasks: each gets its own section of the report, its own comparisons and
its own figures (IMDb's in ``plots/``, another task's in ``plots/<task>/``). The memory suite's
runs differ by distance and load, not only by seed: that task gets its own section
(:func:`reports.memory.memory_section`), and a folder with both IMDb and memory runs ends with the
notebook's comparison table, measured (:func:`reports.memory.notebook_section`); a folder with
the gradient-flow probe's results (``gradient_flow.json``) shows them before that table.

Everything is computed in memory first and written only once it all succeeded, each file through
a temporary file and an atomic rename: a bad record leaves the folder as it was, and an
interrupted render leaves whole files (old or new), never half of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bench.records import (
    DEFAULT_TASK,
    RecordError,
    load_folder,
    read_gradient_flow,
    read_manifest,
    task_facts,
    write_bytes_atomic,
)
from reports.compare import Comparer
from reports.gradients import GRADIENT_PLOT, gradient_section
from reports.markdown import RERUN_HINT, TaskSection, render_markdown, smoke_caveat
from reports.memory import HORIZON_PLOT, MEMORY_TASK, memory_section, notebook_section
from reports.plots import PLOT_TITLES, PLOTS_DIR, render_plots
from reports.table import by_task, summarize, summary_frame

REPORT_NAME = "report.md"
SUMMARY_NAME = "summary.csv"
#: Everything a render writes into a results folder: its files, then its folders.
REPORT_FILES = (REPORT_NAME, SUMMARY_NAME)
REPORT_DIRS = (PLOTS_DIR,)
#: The names of the figures a render writes (IMDb's in ``plots/``, another task's in
#: ``plots/<task>/``).
PLOT_NAMES = frozenset({*PLOT_TITLES, GRADIENT_PLOT, HORIZON_PLOT})


def is_report_output(relative: str, tasks: Iterable[str]) -> bool:
    """Whether a render writes the file at ``relative`` (a path inside a results folder, with
    ``/``) in a folder that may hold runs of ``tasks``: what ``--overwrite`` may remove."""
    parts = relative.split("/")
    if len(parts) == 1:
        return parts[0] in REPORT_FILES
    in_plots = parts[0] == PLOTS_DIR and parts[-1] in PLOT_NAMES
    return in_plots and (len(parts) == 2 or (len(parts) == 3 and parts[1] in set(tasks)))


def build_outputs(results_dir: Path) -> dict[str, bytes]:
    """Every output file of the report, keyed by its path relative to ``results_dir``.

    Raises :class:`bench.records.RecordError` when the folder is not a results folder or holds
    no readable record; unreadable records are listed in the report, the rest renders.
    """
    results_dir = Path(results_dir)
    folder = load_folder(results_dir)
    manifest = read_manifest(results_dir)
    records = folder.records
    if not records:
        if folder.unreadable:  # nothing else to show: say what is wrong with what is there
            raise RecordError(f"{folder.unreadable[0].message}; {RERUN_HINT}")
        raise RecordError(f"{results_dir} holds no run records yet (runs/*/record.json)")
    sections, plots, imdb_rows = [], {}, []
    tasks = by_task(records, manifest.get("tasks"))
    caveat = smoke_caveat(manifest)  # after the heading of each section that draws conclusions
    for task, task_records in tasks.items():
        # IMDb's figures keep the names they had before tasks existed.
        prefix = "" if task == DEFAULT_TASK else f"{task}/"
        facts = task_facts(task_records[0])
        if task == MEMORY_TASK:
            body, figures = memory_section(task_records, manifest,
                                           imdb_present=DEFAULT_TASK in tasks)  # fmt: skip
            body = _after_heading(body, caveat)
            plots.update(figures)
            sections.append(TaskSection(facts, task_records, [], Comparer(results_dir, []),
                                        list(figures), prefix, body=body))  # fmt: skip
            continue
        rows = summarize(task_records, manifest.get("archs"))
        if task == DEFAULT_TASK:
            imdb_rows = rows
        figures = render_plots(rows, str(facts.get("example") or "example"))
        task_plots = {prefix + name: png for name, png in figures.items()}
        plots.update(task_plots)
        sections.append(TaskSection(facts, task_records, rows, Comparer(results_dir, rows),
                                    list(task_plots), prefix))
    # The gradient-flow probe (``run_all.py --suite memory``), then the notebook's table, which
    # draws on everything above.
    gradients = read_gradient_flow(results_dir)
    text, figures = gradient_section(gradients, manifest.get("archs"))
    plots.update(figures)
    closing = [text]
    if DEFAULT_TASK in tasks and MEMORY_TASK in tasks:
        closing.append(notebook_section(imdb_rows, tasks[MEMORY_TASK], manifest, gradients))
    closing = [_after_heading(section, caveat) for section in closing]
    markdown = render_markdown(records, manifest, sections, folder.unreadable, closing)
    frame = summary_frame(records, manifest.get("archs"), manifest.get("tasks"))
    outputs = {
        REPORT_NAME: markdown.encode("utf-8"),
        SUMMARY_NAME: frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode(
            "utf-8"
        ),
    }
    outputs.update({f"{PLOTS_DIR}/{name}": png for name, png in plots.items()})
    return outputs


def _after_heading(section: str | None, text: str) -> str | None:
    """``section`` (markdown opening with its heading line) with ``text`` after the heading."""
    if not section or not text:
        return section
    heading, _, rest = section.partition("\n\n")
    return f"{heading}\n\n{text}{rest}"


def render_report(results_dir: Path) -> Path:
    """Render the report of ``results_dir`` into it and return the path of ``report.md``."""
    results_dir = Path(results_dir)
    outputs = build_outputs(results_dir)
    # The report last: a reader who sees a new report.md finds its plots and summary already there.
    for relative in sorted(outputs, key=lambda name: name == REPORT_NAME):
        write_bytes_atomic(results_dir / relative, outputs[relative])
    return results_dir / REPORT_NAME
