"""Reports: pure functions from run records to tables, plots and the markdown report.

Re-rendering never trains anything; the same records give the same ``report.md`` byte for byte.
``reports`` reads records through :mod:`bench.results.records` and imports nothing else of the project.
"""

# The modules that declare a task's report or a closing section register them on import (closing
# sections follow in the order they register: the gradient-flow probe's, then the notebook's
# table, for which memory imports the other two). A task's own module joins this list.
import reports.cost  # noqa: F401, I001  (last: its closing section ends the report)
import reports.gradients
import reports.imdb
import reports.memory  # noqa: F401  (the three register on import)
from reports.render import render_report
from reports.table import summary_frame, terminal_summary

__all__ = ["render_report", "summary_frame", "terminal_summary"]
