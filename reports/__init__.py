"""Reports: pure functions from run records to tables, plots and the markdown report.

Re-rendering never trains anything; the same records give the same ``report.md`` byte for byte.
``reports`` reads records through :mod:`bench.records` and imports nothing else of the project.
"""

from reports.render import render_report
from reports.table import summary_frame, terminal_summary

__all__ = ["render_report", "summary_frame", "terminal_summary"]
