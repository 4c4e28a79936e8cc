"""Measurement: timers, peak memory per phase, latency, training FLOPs and the efficiency calibration.

A model's forward FLOPs per token are declared in the model registry, not derived here.

Timing discipline (after pytorch's fastrnns and nanoGPT's bench.py): warm-up is not counted, CUDA
work is synchronised at the edges of a timed region (never inside the hot loop), the garbage
collector is off inside timed regions, and latency is reported as a median with a tail percentile.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU, whose kernels run synchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """Keep the garbage collector out of a timed region."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- memory -----------------------------------------------------------------------------------

def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    # Writing "5" to clear_refs resets the kernel's peak-RSS counter (VmHWM) to the current RSS,
    # so each phase gets its own peak inside one process (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one phase, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting it at the start of the phase (the
    tensors the caching allocator holds for the phase, weights included). CPU: how far the peak
    resident set (VmHWM) rose above the resident set at the start of the phase (activations,
    gradients, optimizer state, allocator slack; weights and data loaded before the phase are
    excluded). ``peak_mb`` is None where neither is available.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: float | None = None
        self._baseline_kib: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            gc.collect()
            self._baseline_kib = _proc_status_kib("VmRSS") if _reset_cpu_peak() else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._baseline_kib is not None:
            peak_kib = _proc_status_kib("VmHWM")
            if peak_kib is not None:
                self.peak_mb = max(0, peak_kib - self._baseline_kib) / 1024


# --- latency ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    reps: int


def measure_latency(
    fn: Callable[[], object], device: torch.device, *, warmup: int, reps: int
) -> Latency:
    """Time ``fn`` ``reps`` times after ``warmup`` untimed calls; synchronised per call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times_ms = np.empty(reps)
    with gc_disabled():
        for i in range(reps):
            start = time.perf_counter()
            fn()
            synchronize(device)
            times_ms[i] = (time.perf_counter() - start) * 1e3
    return Latency(float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 95)), reps)


# --- FLOPs and efficiency -------------------------------------------------------------------------

def training_flops(forward_flops_per_token: float, tokens: int) -> float:
    """FLOPs of training on ``tokens`` real tokens: forward plus backward.

    The backward pass computes two products per forward product (the gradient with respect to the
    input and with respect to the weights), so a training step costs 3x the forward FLOPs.
    """
    return 3.0 * forward_flops_per_token * tokens


def matmul_flops_per_s(
    device: torch.device, *, size: int, dtype: torch.dtype = torch.float32, reps: int = 10
) -> float:
    """Dense square matmul throughput (FLOP/s) on ``device``: the calibration for ``efficiency``.

    The median of ``reps`` timed products of two ``size`` x ``size`` matrices, after warm-up.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    synchronize(device)
    times = []
    with gc_disabled():
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return 2.0 * size**3 / float(np.median(times))


#: glibc's mallopt parameters (malloc.h): freed memory below this size is kept for reuse, and
#: the heap is trimmed only above that much free memory at its top.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The largest value glibc takes for either (an int).
_KEEP_BYTES = 2**31 - 1


def retain_freed_memory() -> dict[str, Any]:
    """Make glibc's malloc keep the memory a step frees for the next step, as a caching allocator
    does, and say what was done.

    By default glibc serves a large tensor with a fresh ``mmap`` (the threshold adapts as the
    process runs) and returns it on free, so every step zero-fills its activations again: a
    bidirectional LSTM's step at T = 256, batch 64 took about 29,000 page faults and twice the
    time, and which allocations took the slow path changed during a run (the same point read
    72 ms in one round and 93 ms in the next). With both thresholds at their maximum every
    allocation comes from the heap and stays there; memory counted per tensor is unchanged.
    Applied to this process only, from here on; elsewhere than glibc it does nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return {"allocator": "default", "retains_freed_memory": False}
    done = all(mallopt(param, _KEEP_BYTES) == 1 for param in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD))
    return {"allocator": "glibc malloc, mmap and trim thresholds at their maximum" if done
            else "glibc malloc (mallopt refused)", "retains_freed_memory": done}
