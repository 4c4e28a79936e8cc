"""``python -m bench.config``: the command of :mod:`bench.run.config`, kept at its documented name."""

import sys

from bench.run.config import main

if __name__ == "__main__":
    sys.exit(main())
