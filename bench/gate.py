"""``python -m bench.gate``: the command of :mod:`bench.dev.gate`, kept at its documented name."""

import sys

from bench.dev.gate import main

if __name__ == "__main__":
    sys.exit(main())
