"""What the report branches on, declared where each task or closing section is registered.

Two registries, plain dicts in registration order, in the way models and metrics are registered:

- a **task report** (:class:`TaskReport`, :func:`register_task_report`) declares what a task's
  part of the report needs that the records do not say: the data settings its folder sweeps (each
  value a row of its own, never averaged across), its published results, its own section builder
  when the per-architecture sections do not fit its runs, the figures that builder writes, and
  where its figures live. A task nobody declared gets the plain report (:func:`task_report`).
- a **closing section** (:class:`ClosingSection`, :func:`register_closing_section`) comes after
  every task's part: it declares the tasks it needs in one folder (the notebook's table needs IMDb
  and memory runs) and the payload files it needs (the gradient-flow section needs the probe's
  ``gradient_flow.json``); the renderer builds it only when the folder has them all.

:mod:`reports.render` reads these declarations and names no task. Registry mistakes fail loudly:
a duplicate name raises, an unknown one says "did you mean" and lists what exists. The modules
that register are imported by :mod:`reports` itself (see ``reports/__init__.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

#: A published result: (model, its setting, its test accuracy as the source gives it).
Published = tuple[str, str, str]
#: What a section builder returns: its markdown (``##`` headings first; None: nothing to say) and
#: its figures as PNG bytes, keyed by their path under ``plots/``.
Built = tuple[str | None, dict[str, bytes]]


@dataclass(frozen=True)
class TaskContext:
    """What a task's own section builder is given: the task's records, the manifest, every task
    in the folder (with its records) and the folder under ``plots/`` its figures go to."""

    task: str
    records: Sequence[dict[str, Any]]
    manifest: Mapping[str, Any]
    tasks: Mapping[str, Sequence[dict[str, Any]]]
    plot_prefix: str


@dataclass(frozen=True)
class ReportContext:
    """What a closing section builder is given: the whole folder, as the renderer read it."""

    results_dir: Path
    manifest: Mapping[str, Any]
    #: Every task's records, in the report's task order.
    tasks: Mapping[str, Sequence[dict[str, Any]]]
    #: Each task's per-architecture summaries (:func:`reports.table.summarize`); a task with its
    #: own section has none here.
    rows: Mapping[str, Sequence[Any]]
    #: Every registered payload as read (None: the folder has no such file).
    payloads: Mapping[str, Any]


@dataclass(frozen=True)
class TaskReport:
    """A task's declaration for the reports.

    ``swept_settings``: the ``spec.data`` fields its folder sweeps (a row per value, never averaged
    across). ``published``: results from the literature, shown apart from what was measured;
    ``published_setting``: how their setting usually differs from a run here, if it does.
    ``section``: its own builder (:class:`TaskContext` -> :data:`Built`), replacing the
    per-architecture sections; ``figures``: the file names that builder writes. ``plot_prefix``:
    where its figures go under ``plots/`` (None: ``<task>/``).
    """

    task: str
    swept_settings: tuple[str, ...] = ()
    published: tuple[Published, ...] = ()
    published_setting: str = ""
    section: Callable[[TaskContext], Built] | None = None
    figures: tuple[str, ...] = ()
    plot_prefix: str | None = None
    #: What its section's figures are in a smoke run, for the smoke warning (None: the grid's).
    smoke_note: str | None = None

    @property
    def prefix(self) -> str:
        """The path of its figures under ``plots/``: ``""`` or ``"<task>/"``."""
        return f"{self.task}/" if self.plot_prefix is None else self.plot_prefix


@dataclass(frozen=True)
class ClosingSection:
    """A section after every task's part, drawn from what the whole folder holds.

    ``build``: :class:`ReportContext` -> :data:`Built` (figures keyed under ``plots/``).
    ``tasks``: the tasks whose runs it needs in one folder; ``payloads``: the payloads
    (:func:`register_payload`) it needs; it is built only when the folder has them all.
    ``figures``: the file names its builder writes. ``standalone``: a folder holding its
    payloads and no run record gets a report of the standalone sections alone. ``order``: where
    it goes among the closing sections (ascending; ties in registration order), declared so the
    report's order never depends on which module happened to be imported first.
    """

    name: str
    build: Callable[[ReportContext], Built]
    tasks: tuple[str, ...] = ()
    payloads: tuple[str, ...] = ()
    figures: tuple[str, ...] = field(default=())
    standalone: bool = False
    order: int = 100
    #: What its figures are in a smoke run, for the smoke warning (None: the training grid's).
    smoke_note: str | None = None
    #: The title of a standalone report of this section (None: its name).
    title: str | None = None
    #: What the header of its standalone report describes: the items of its payloads that carry
    #: an ``environment`` (machine, software, commit), as run records do.
    measured: Callable[[ReportContext], Sequence[dict[str, Any]]] | None = None
    #: Speed and memory measured alone, from its payloads: ``{task: {arch: AloneFigures}}``.
    #: Where every architecture of a task has them, the task's tables and recommendation take
    #: them instead of its training runs' figures (which may have shared the machine).
    alone_figures: Callable[[Mapping[str, Any]], Mapping[str, Mapping[str, AloneFigures]]] | None = None


@dataclass(frozen=True)
class AloneFigures:
    """One architecture's speed and memory measured alone, under the run metrics' names
    (``train_samples_per_s``, ``latency_ms_p50``, ...; a metric it did not measure is absent)."""

    values: Mapping[str, float]
    #: Where they come from, for a sentence ("the cost suite's ...").
    source: str
    #: What the latency is of ("at batch 1, T = 256").
    latency_of: str


def alone_figures_of(payloads: Mapping[str, Any]) -> dict[str, dict[str, AloneFigures]]:
    """Every closing section's figures measured alone, from the folder's payloads, by task."""
    found: dict[str, dict[str, AloneFigures]] = {}
    for section in CLOSING_SECTIONS.values():
        if section.alone_figures is None or any(payloads.get(p) is None for p in section.payloads):
            continue
        for task, by_arch in section.alone_figures(payloads).items():
            found.setdefault(task, {}).update(by_arch)
    return found


TASK_REPORTS: dict[str, TaskReport] = {}
CLOSING_SECTIONS: dict[str, ClosingSection] = {}
#: Files beside the runs that sections read, by name: a reader from the results folder to the
#: payload (None when absent; it raises ``RecordError`` for a file that cannot be read).
PAYLOADS: dict[str, Callable[[Path], Any]] = {}

_T = TypeVar("_T")


def _lookup(registry: Mapping[str, _T], name: str, what: str) -> _T:
    """``registry[name]``, or a KeyError that says "did you mean" and lists what exists."""
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    known = ", ".join(registry) or "none"
    raise KeyError(f"unknown {what} {name!r}{hint} (registered: {known})")


def _add(registry: dict[str, _T], name: str, entry: _T, what: str) -> _T:
    if name in registry:
        raise ValueError(f"{what} {name!r} is already registered")
    registry[name] = entry
    return entry


def register_task_report(report: TaskReport) -> TaskReport:
    """Declare what ``report.task``'s part of the report needs; a task declared twice raises."""
    if report.section is None and report.figures:
        raise ValueError(f"task report {report.task!r} declares figures but no section draws them")
    return _add(TASK_REPORTS, report.task, report, "task report")


def register_closing_section(section: ClosingSection) -> ClosingSection:
    """Add a closing section, after those registered before it. Every task it needs must have a
    task report already, and every payload a reader: a misspelt name fails here, not silently."""
    for task in section.tasks:
        _lookup(TASK_REPORTS, task, f"task (needed by closing section {section.name!r})")
    for payload in section.payloads:
        _lookup(PAYLOADS, payload, f"payload (needed by closing section {section.name!r})")
    return _add(CLOSING_SECTIONS, section.name, section, "closing section")


def register_payload(name: str, reader: Callable[[Path], Any]) -> None:
    """Name a file beside the runs that sections read, with its reader."""
    _add(PAYLOADS, name, reader, "payload")


def task_report(task: str) -> TaskReport:
    """The declaration of ``task``, or the plain report's (nothing swept, nothing published, the
    per-architecture sections) for a task nobody declared."""
    return TASK_REPORTS.get(task) or TaskReport(task)


def declared_task_report(task: str) -> TaskReport:
    """The declaration of ``task``; an undeclared task raises, saying "did you mean"."""
    return _lookup(TASK_REPORTS, task, "task report")


def closing_section(name: str) -> ClosingSection:
    """The closing section ``name``; an unknown one raises, saying "did you mean"."""
    return _lookup(CLOSING_SECTIONS, name, "closing section")


def unregister_task_report(task: str) -> TaskReport:
    """Remove a declaration (for tests that register their own); an unknown one raises."""
    declared_task_report(task)
    for section in CLOSING_SECTIONS.values():
        if task in section.tasks:
            raise ValueError(f"task report {task!r} is needed by closing section {section.name!r}")
    return TASK_REPORTS.pop(task)


def unregister_closing_section(name: str) -> ClosingSection:
    """Remove a closing section (for tests that register their own); an unknown one raises."""
    closing_section(name)
    return CLOSING_SECTIONS.pop(name)


def swept_settings(task: str) -> tuple[str, ...]:
    """The ``spec.data`` fields ``task``'s folder sweeps (none for an undeclared task)."""
    return task_report(task).swept_settings


def closing_sections_for(tasks: Iterable[str], payloads: Mapping[str, Any]) -> list[ClosingSection]:
    """The closing sections a folder holding ``tasks`` and ``payloads`` gets, in their order."""
    present = set(tasks)
    return sorted((section for section in CLOSING_SECTIONS.values()
                   if present.issuperset(section.tasks)
                   and all(payloads.get(name) is not None for name in section.payloads)),
                  key=lambda section: section.order)  # fmt: skip


def declared_figures() -> frozenset[str]:
    """The file names of every figure a declared section writes (tasks' and closing ones)."""
    names = [name for report in TASK_REPORTS.values() for name in report.figures]
    names += [name for section in CLOSING_SECTIONS.values() for name in section.figures]
    return frozenset(names)
