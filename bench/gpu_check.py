"""``python -m bench.gpu_check``: the command of :mod:`bench.dev.gpu_check`, kept at its documented name."""

import sys

from bench.dev.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
