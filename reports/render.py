"""Render a results folder: ``report.md``, ``summary.csv`` and ``plots/*.png`` beside the runs.

Everything is computed in memory first and written only once it all succeeded, each file through
a temporary file and an atomic rename: a bad record leaves the folder as it was, and an
interrupted render leaves whole files (old or new), never half of one.
"""

from __future__ import annotations

from pathlib import Path

from bench.records import RecordError, load_folder, read_manifest, write_bytes_atomic
from reports.compare import Comparer
from reports.markdown import RERUN_HINT, render_markdown
from reports.plots import PLOTS_DIR, render_plots
from reports.table import summarize, summary_frame

REPORT_NAME = "report.md"
SUMMARY_NAME = "summary.csv"
#: Everything a render writes into a results folder: its files, then its folders.
REPORT_FILES = (REPORT_NAME, SUMMARY_NAME)
REPORT_DIRS = (PLOTS_DIR,)


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
    rows = summarize(records, manifest.get("archs"))
    comparer = Comparer(results_dir, rows)
    plots = render_plots(rows)
    markdown = render_markdown(records, manifest, rows, comparer, plots, folder.unreadable)
    frame = summary_frame(records, manifest.get("archs"))
    outputs = {
        REPORT_NAME: markdown.encode("utf-8"),
        SUMMARY_NAME: frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode(
            "utf-8"
        ),
    }
    outputs.update({f"{PLOTS_DIR}/{name}": png for name, png in plots.items()})
    return outputs


def render_report(results_dir: Path) -> Path:
    """Render the report of ``results_dir`` into it and return the path of ``report.md``."""
    results_dir = Path(results_dir)
    outputs = build_outputs(results_dir)
    # The report last: a reader who sees a new report.md finds its plots and summary already there.
    for relative in sorted(outputs, key=lambda name: name == REPORT_NAME):
        write_bytes_atomic(results_dir / relative, outputs[relative])
    return results_dir / REPORT_NAME
