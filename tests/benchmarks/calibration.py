"""Calibration workloads and the timed-run helper every benchmark of this suite goes through.

The regression gate (:mod:`bench.dev.gate`) compares each benchmark's fastest round with the
baseline commit's, measured in the same run on the same machine. The calibration serves what is
read inside one tree's passes: ratios between two benchmarks measured up to a minute apart (the
default padding path against the alternative, ``lstm`` against ``lstm_scratch``). Each benchmark
round is bracketed by two fixed calibration workloads, measured just before and just after it in
the same process:

``matmul``
    a fixed float32 matrix product, repeated (BLAS throughput).
``python``
    a fixed pure-Python loop (interpreter speed).

The minimum over all of a benchmark's calibration samples goes into its ``extra_info``, with the
benchmark's choice of normaliser: ``python`` for the pure-Python reference implementations of
the data pipeline, ``mixed`` (the geometric mean of both) for everything else, whose time is part
BLAS kernels and part framework overhead (dispatch, autograd, Python). Dividing a benchmark's
fastest round by it cancels most of how loaded the machine was at that moment (not how fast the
machine is: relative kernel costs differ between CPUs by up to 2x). Measured over repeated runs, both
with and without extra load, the choice mattered less than the clock (below): the largest
run-to-run spread of a figure over 4 runs was 1.48 with ``matmul``, 1.48 with ``python`` and 1.38
with ``mixed``, against 1.75 for raw times. ``python`` alone would normalise a BLAS-bound benchmark
by a workload with none of its sensitivities (a future BLAS or oneDNN upgrade, a machine with
wider vector units), hence ``mixed``.

Clock: on the CPU, rounds and calibration are timed in process CPU time (``time.process_time``),
not wall time. On a machine shared with other jobs a round's wall time includes the time the
scheduler gave the core to someone else, which grows with the round's length: a 2 ms calibration
usually runs within one time slice while a 100 ms step is preempted several times, so dividing
wall times does not cancel load. CPU time counts only the work this process did (the machine has
no SMT siblings to share a core's pipeline with). What load still changes, cache and memory
bandwidth and the clock frequency, acts on the calibration too. On CUDA, where the work happens
off the CPU, rounds are timed in wall time with the device synchronised inside the round.

Why bracket every round rather than calibrate once per session: load on a shared machine changes
within seconds; a calibration taken a minute earlier says little about the machine a benchmark
ran on. Why minima: on a time-shared CPU, noise only ever adds time, so the fastest of several
rounds is the one least disturbed, for the benchmark and for the calibration alike.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from pytest_benchmark.fixture import BenchmarkFixture

from bench.run.instruments import synchronize

# Normalisers a benchmark may choose; bench.dev.gate knows the same names.
NORMALISERS = ("matmul", "python", "mixed")

# Fixed: changing them moves every normalised figure the in-run checks read.
_MATMUL_SIZE = 256  # 2 * 256**3 = 34 MFLOP per product, about 1 ms on one core
_MATMUL_REPS = 2
_PYTHON_ITERATIONS = 20_000  # about 2 ms of interpreter work

# One thread by default (RNNBENCH_BENCH_THREADS overrides). Measured on the 2-core development
# machine while another process kept both cores busy: a one-layer lstm training step took 195 ms
# at best and 5.5 s at median with 2 threads, against 60 and 72 ms with 1. A multi-threaded
# kernel waits at every barrier for its slowest thread, and a thread descheduled by the other
# process's work stalls all of them, so the slow-down is not proportional to the load and no
# calibration can cancel it. One thread measures the code, not the scheduler.
THREADS = int(os.environ.get("RNNBENCH_BENCH_THREADS", "1"))


def clock_for(device: torch.device) -> Callable[[], float]:
    """The clock rounds on ``device`` are timed with: CPU time on the CPU, wall time on CUDA."""
    return time.perf_counter if device.type == "cuda" else time.process_time


class Calibration:
    """Collects calibration samples for one benchmark: one of each workload per call.

    Args:
        device: where the matmul workload runs (the benchmark's device; CUDA work is synchronised).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.clock = clock_for(device)
        generator = torch.Generator().manual_seed(0)
        self._a = torch.randn(_MATMUL_SIZE, _MATMUL_SIZE, generator=generator).to(device)
        self._b = torch.randn(_MATMUL_SIZE, _MATMUL_SIZE, generator=generator).to(device)
        self.matmul_s: list[float] = []
        self.python_s: list[float] = []

    def _matmul(self) -> None:
        for _ in range(_MATMUL_REPS):
            torch.mm(self._a, self._b)
        synchronize(self.device)

    @staticmethod
    def _python() -> int:
        # Integer arithmetic, a dict store and a branch: the interpreter's everyday operations.
        total = 0
        table: dict[int, int] = {}
        for i in range(_PYTHON_ITERATIONS):
            total += (i * i) % 7
            if total & 1:
                table[i & 255] = total
        return total

    def sample(self) -> None:
        """Time each workload once and keep the times."""
        for workload, samples in ((self._matmul, self.matmul_s), (self._python, self.python_s)):
            start = self.clock()
            workload()
            samples.append(self.clock() - start)

    def summary(self, normalise_by: str) -> dict[str, Any]:
        """The ``extra_info["calibration"]`` entry: minima over the samples, and the choice."""
        if normalise_by not in NORMALISERS:
            raise ValueError(f"normalise_by must be one of {NORMALISERS}, got {normalise_by!r}")
        return {
            "matmul_s": min(self.matmul_s),
            "python_s": min(self.python_s),
            "samples": len(self.matmul_s),
            "normalise_by": normalise_by,
        }


def timed(
    benchmark: BenchmarkFixture,
    fn: Callable[[], object],
    *,
    device: torch.device,
    normalise_by: str,
    min_rounds: int,
    min_time_s: float = 0.5,
    max_rounds: int = 300,
    warmup_rounds: int = 2,
    before_round: Callable[[], None] | None = None,
    **extra_info: Any,
) -> Any:
    """Benchmark ``fn``, each round preceded by calibration samples; returns ``fn``'s result.

    Runs at least ``min_rounds`` rounds and, for quick functions, enough more (up to
    ``max_rounds``) to spend ``min_time_s`` in them: the fastest of 25 one-millisecond rounds
    still depends on what else ran in those 25 ms, the fastest of 300 much less.

    ``before_round``, when given, runs untimed before every round (after its calibration
    sample): a reference workload to interleave with ``fn``, which times itself.

    ``fn`` must leave the device idle when it returns (call :func:`bench.run.instruments.synchronize`
    inside it on CUDA), so a round's time is its work's time. ``extra_info`` gets the calibration,
    the thread count, the clock, the torch version and whatever the caller passes.
    """
    calibration = Calibration(device)
    calibration.sample()
    # pytest-benchmark takes one timer per session (--benchmark-timer); the clock depends on the
    # device, so it is set per benchmark on the fixture, which reads it when the rounds run.
    benchmark._timer = calibration.clock
    start = calibration.clock()
    fn()  # also the first warm-up call
    estimate_s = max(calibration.clock() - start, 1e-6)
    rounds = min(max_rounds, max(min_rounds, math.ceil(min_time_s / estimate_s)))

    def setup() -> None:
        calibration.sample()
        if before_round is not None:
            before_round()

    result = benchmark.pedantic(fn, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds)
    calibration.sample()
    benchmark.extra_info.update(extra_info)
    benchmark.extra_info.update(
        device=device.type,
        threads=torch.get_num_threads(),
        clock=calibration.clock.__name__,
        torch_version=torch.__version__,
        calibration=calibration.summary(normalise_by),
    )
    return result
