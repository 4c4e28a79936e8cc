"""``python -m reports RESULTS_DIR``: re-render a results folder's report from its records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.results.records import OutputError, RecordError, load_folder
from reports.markdown import RERUN_HINT
from reports.render import render_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description=(
            "Re-render report.md, summary.csv and plots/*.png of an rnnbench results folder from "
            "its run records (nothing is re-trained)."
        ),
    )
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                        help="a results folder written by run_all.py (holds manifest.json and runs/)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        report = render_report(args.results_dir)
        unreadable = load_folder(args.results_dir).unreadable
    except (RecordError, OutputError, OSError) as exc:
        # One line, no traceback: the folder, a record or the disk is at fault, not the program.
        print(f"python -m reports: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(report)
    for item in unreadable:  # rendered without them; exit 1: not everything is in the report
        print(f"python -m reports: unreadable record left out: {item.message}; {RERUN_HINT}",
              file=sys.stderr)
    return 1 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
