"""Render a results folder: ``report.md``, ``summary.csv`` and ``plots/*.png`` beside the runs.

A folder may hold several tasks: each gets its own section of the report, its own comparisons and
its own figures (in ``plots/`` or ``plots/<task>/``, as the task's report declares). What differs
between tasks is declared, not branched on here (:mod:`reports.sections`): a task whose runs the
per-architecture sections do not fit declares its own section builder, and the closing sections
(each built when the folder holds the tasks and payloads it declares it needs) follow every
task's part.

Everything is computed in memory first and written only once it all succeeded, each file through
a temporary file and an atomic rename: a bad record leaves the folder as it was, and an
interrupted render leaves whole files (old or new), never half of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.results.records import (
    RecordError,
    load_folder,
    read_manifest,
    task_facts,
    write_bytes_atomic,
)
from reports.compare import Comparer
from reports.markdown import (
    RERUN_HINT,
    TaskSection,
    render_markdown,
    smoke_caveat,
    standalone_header,
    with_glossary,
)
from reports.plots import PLOT_TITLES, PLOTS_DIR, render_plots
from reports.sections import (
    PAYLOADS,
    AloneFigures,
    ReportContext,
    TaskContext,
    alone_figures_of,
    closing_sections_for,
    declared_figures,
    task_report,
)
from reports.table import ArchSummary, by_task, summarize, summary_frame, take_alone

REPORT_NAME = "report.md"
SUMMARY_NAME = "summary.csv"
#: Everything a render writes into a results folder: its files, then its folders.
REPORT_FILES = (REPORT_NAME, SUMMARY_NAME)
REPORT_DIRS = (PLOTS_DIR,)


def plot_names() -> frozenset[str]:
    """The names of the figures a render writes (in ``plots/`` or ``plots/<task>/``): the
    per-architecture figures and every figure a registered section declares."""
    return frozenset(PLOT_TITLES) | declared_figures()


def __getattr__(name: str) -> Any:
    # PLOT_NAMES is read from the registry when asked for, so that sections registered after this
    # module was imported (a task's module, a test's) count too.
    if name == "PLOT_NAMES":
        return plot_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_report_output(relative: str, tasks: Iterable[str]) -> bool:
    """Whether a render writes the file at ``relative`` (a path inside a results folder, with
    ``/``) in a folder that may hold runs of ``tasks``: what ``--overwrite`` may remove."""
    parts = relative.split("/")
    if len(parts) == 1:
        return parts[0] in REPORT_FILES
    in_plots = parts[0] == PLOTS_DIR and parts[-1] in plot_names()
    return in_plots and (len(parts) == 2 or (len(parts) == 3 and parts[1] in set(tasks)))


def _checked_figures(figures: Mapping[str, bytes], prefix: str, declared: Iterable[str],
                     owner: str) -> dict[str, bytes]:  # fmt: skip
    """``figures`` (keyed under ``plots/``), each of which its section must have declared: an
    undeclared figure would be left behind by ``--overwrite``."""
    allowed = {prefix + name for name in declared}
    for name in figures:
        if name not in allowed:
            raise ValueError(f"{owner} wrote figure {name!r} without declaring it "
                             f"(declared: {', '.join(sorted(allowed)) or 'none'})")  # fmt: skip
    return dict(figures)


def _task_sections(
    results_dir: Path, manifest: Mapping[str, Any], tasks: Mapping[str, Sequence[dict[str, Any]]],
    alone: Mapping[str, Mapping[str, AloneFigures]],
) -> tuple[list[TaskSection], dict[str, bytes], dict[str, list[ArchSummary]]]:
    """Each task's part of the report, its figures and (tasks without a section of their own)
    its per-architecture summaries, whose speed and memory are those measured ``alone`` where
    every architecture of the task has them (:func:`reports.table.take_alone`)."""
    sections, plots, rows_by_task = [], {}, {}
    for task, task_records in tasks.items():
        declared = task_report(task)
        prefix, facts = declared.prefix, task_facts(task_records[0])
        if declared.section is not None:
            context = TaskContext(task, task_records, manifest, tasks, prefix)
            body, figures = declared.section(context)
            figures = _checked_figures(figures, prefix, declared.figures, f"task report {task!r}")
            plots.update(figures)
            sections.append(TaskSection(facts, task_records, [], Comparer(results_dir, []),
                                        list(figures), prefix,
                                        body=_after_heading(body, smoke_caveat(
                                            manifest, declared.smoke_note))))  # fmt: skip
            continue
        rows = rows_by_task[task] = summarize(task_records, manifest.get("archs"))
        take_alone(rows, alone)
        figures = render_plots(rows, str(facts.get("example") or "example"))
        task_plots = {prefix + name: png for name, png in figures.items()}
        plots.update(task_plots)
        sections.append(TaskSection(facts, task_records, rows, Comparer(results_dir, rows),
                                    list(task_plots), prefix))
    return sections, plots, rows_by_task


def build_outputs(results_dir: Path) -> dict[str, bytes]:
    """Every output file of the report, keyed by its path relative to ``results_dir``.

    Raises :class:`bench.results.records.RecordError` when the folder is not a results folder or
    holds no readable record (or a payload that cannot be read); unreadable records are listed in
    the report, the rest renders.
    """
    results_dir = Path(results_dir)
    folder = load_folder(results_dir)
    manifest = read_manifest(results_dir)
    records = folder.records
    if not records:
        standalone = _standalone_outputs(results_dir, manifest)
        if standalone is not None:
            return standalone
        if folder.unreadable:  # nothing else to show: say what is wrong with what is there
            raise RecordError(f"{folder.unreadable[0].message}; {RERUN_HINT}")
        raise RecordError(f"{results_dir} holds no run records yet (runs/*/record.json)")
    tasks = by_task(records, manifest.get("tasks"))
    # The smoke warning goes after the heading of each section that draws conclusions, in the
    # section's own words where it declares them.
    # Every payload is read, needed or not: a file that cannot be read is named, never skipped.
    payloads = {name: read(results_dir) for name, read in PAYLOADS.items()}
    sections, plots, rows = _task_sections(results_dir, manifest, tasks, alone_figures_of(payloads))
    context = ReportContext(results_dir, manifest, tasks, rows, payloads)
    closing = []
    for section in closing_sections_for(tasks, payloads):
        text, figures = section.build(context)
        plots.update(_checked_figures(figures, "", section.figures,
                                      f"closing section {section.name!r}"))  # fmt: skip
        closing.append(_after_heading(text, smoke_caveat(manifest, section.smoke_note)))
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


def _standalone_outputs(results_dir: Path, manifest: Mapping[str, Any]) -> dict[str, bytes] | None:
    """The report of a folder without run records: its standalone closing sections (the cost
    suite's, say), when it holds their payloads; None when it holds none."""
    payloads = {name: read(results_dir) for name, read in PAYLOADS.items()}
    sections = [s for s in closing_sections_for((), payloads) if s.standalone]
    if not sections:
        return None
    context = ReportContext(results_dir, manifest, {}, {}, payloads)
    title = "; ".join(s.title or s.name for s in sections)
    measured = [item for s in sections if s.measured for item in s.measured(context)]
    parts, plots = [standalone_header(measured, manifest, title)], {}
    for section in sections:
        text, figures = section.build(context)
        plots.update(_checked_figures(figures, "", section.figures,
                                      f"closing section {section.name!r}"))  # fmt: skip
        parts.append(_after_heading(text, smoke_caveat(manifest, section.smoke_note)))
    outputs = {REPORT_NAME: with_glossary("\n\n".join(p for p in parts if p) + "\n").encode("utf-8")}
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
