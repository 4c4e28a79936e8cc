"""``python -m bench.metrics``: the command of :mod:`bench.results.metrics`, kept at its documented name."""

import sys

from bench.results.metrics import main

if __name__ == "__main__":
    sys.exit(main())
