"""Reports: pure functions from run records to tables, plots and the markdown report.

Re-rendering never trains anything; the same records give the same ``report.md`` byte for byte.
``reports`` reads records through :mod:`bench.results.records` and imports nothing else of the project.
"""

# The modules that declare a task's report or a closing section register them on import; the
# closing sections' order is declared with them (ClosingSection.order), not by this list's. A
# task's own module joins this list.
import reports.cost  # noqa: F401
import reports.gradients  # noqa: F401
import reports.imdb  # noqa: F401
import reports.memory  # noqa: F401
from reports.render import render_report
from reports.table import summary_frame, terminal_summary

__all__ = ["render_report", "summary_frame", "terminal_summary"]
