"""Measurement: timers, peak memory per phase, latency, FLOPs and the efficiency calibration.

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

import numpy as np
import torch
from torch import nn


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

# Gate count per recurrent cell type: the number of H-wide affine maps a cell computes per step.
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def recurrent_flops_per_token(
    mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False
) -> float:
    """Forward FLOPs per token of a stacked recurrent layer.

    Derivation: each step of each layer and direction computes its G gates as
    ``W_ih @ x_t + W_hh @ h_{t-1}`` (shapes G*H x I and G*H x H), i.e. G*H*(I + H) multiply-adds,
    which are 2*G*H*(I + H) FLOPs. The element-wise gate arithmetic (sigmoids, tanh, the cell
    update: about 10*H for an LSTM) is under 1% of that at the sizes benchmarked here and is left
    out, as are the biases. Layer 0 reads the input (I = input_size); a layer above reads the
    concatenated directions of the one below (I = H * directions).
    """
    gates = _GATES[mode]
    directions = 2 if bidirectional else 1
    total = 0.0
    layer_input = input_size
    for _ in range(num_layers):
        total += directions * 2 * gates * hidden_size * (layer_input + hidden_size)
        layer_input = hidden_size * directions
    return total


def model_flops_per_token(model: nn.Module) -> float:
    """Forward FLOPs per real token of ``model``, from its recurrent and linear layers.

    A module may declare its own cost with a ``flops_per_token()`` method (a hand-written cell
    does); its children are then not counted again. Fused recurrent modules use
    :func:`recurrent_flops_per_token`. A ``nn.Linear`` is counted as applied once per token
    (2 * in * out): for a classifier head applied once per review this overcounts by less than
    0.1% on reviews of a few hundred tokens, a price paid for not special-casing models.
    Embedding lookups and the mean of a bag of embeddings cost no multiply-adds worth counting.
    """

    def visit(module: nn.Module) -> float:
        own = getattr(module, "flops_per_token", None)
        if callable(own):
            return float(own())
        if isinstance(module, nn.RNNBase):
            return recurrent_flops_per_token(
                module.mode, module.input_size, module.hidden_size, module.num_layers,
                module.bidirectional,
            )
        if isinstance(module, nn.Linear):
            return 2.0 * module.in_features * module.out_features
        return sum(visit(child) for child in module.children())

    return visit(model)


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
