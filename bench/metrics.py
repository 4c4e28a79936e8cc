"""``python -m bench.metrics [PAGE]``: the command of :mod:`bench.results.schema_page`, kept at its
documented name: prints the schema page's generated tables, or rewrites them in ``PAGE``."""

import sys

from bench.results.schema_page import main

if __name__ == "__main__":
    sys.exit(main())
