"""Peak memory that repeats: the bytes of live tensors, counted as the operators make them.

On CPU the resident set's peak (VmHWM) depends on what the process did before: the allocator
reuses freed memory unseen, and code pages are mapped or not. The same point measured twice in
one process read different resident peaks; counted at the operator level (every tensor an
operator returns is counted until its storage is freed) it read the same bytes, since it depends
only on the computation. So the cost suite's CPU peak is that count, the weights, gradients,
optimizer state and inputs alive at the start included; the resident growth is recorded beside
it. Memory a kernel allocates for itself and frees before it returns (a workspace) is not seen.
On CUDA the caching allocator already counts live tensors: the growth of
``torch.cuda.max_memory_allocated`` over the phase, plus the bytes the phase started with.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from bench.run.instruments import PeakMemory, synchronize

MIB = 2**20


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of live tensor storages and their peak while it is active.

    A storage is counted once (views share it), from the operator that returned it until it is
    freed (a weak reference's finalizer); ``start_with`` storages are counted from the start.
    """

    def __init__(self, start_with: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        for tensor in start_with:
            self._add(tensor)

    def _add(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta" or tensor.is_sparse:
            return
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self._live:
            return
        self._live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._add(leaf)
        return out


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """The bytes of the distinct storages behind ``tensors`` (views counted once)."""
    return LiveTensorBytes(tensors).current


def held_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                 inputs: Iterable[torch.Tensor]) -> list[torch.Tensor]:  # fmt: skip
    """What a phase starts with: weights, gradients, optimizer state and its inputs."""
    tensors = [p for p in model.parameters()] + [b for b in model.buffers()]
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values()
                    if isinstance(v, torch.Tensor)]  # fmt: skip
    return tensors + list(inputs)


def phase_peak(fn: Callable[[], object], device: torch.device,
               held: Iterable[torch.Tensor]) -> dict[str, float | None]:  # fmt: skip
    """Peak memory (MiB) of one call of ``fn``: ``peak_mb`` (live tensors: the counted bytes on
    CPU, the caching allocator's on CUDA) and, on CPU, ``rss_growth_mb`` (how far the resident
    peak rose above the resident set at the start: not repeatable, shown beside it)."""
    gc.collect()
    held = list(held)
    if device.type == "cuda":  # other architectures' weights stay resident: only ours count
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        growth = torch.cuda.max_memory_allocated(device) - before
        return {"peak_mb": (growth + storage_bytes(held)) / MIB, "rss_growth_mb": None}
    with PeakMemory(device) as rss, LiveTensorBytes(held) as counted:
        fn()
    return {"peak_mb": counted.peak / MIB, "rss_growth_mb": rss.peak_mb}
