"""Benchmark-suite setup: one intra-op thread for the whole session, CPU and CUDA devices.

See :mod:`tests.benchmarks.calibration` for why one thread, and for how each benchmark is timed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.benchmarks.calibration import THREADS

# Every device benchmark runs on each of these; CUDA is skipped, with the reason, when absent.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


@pytest.fixture(scope="session", autouse=True)
def _benchmark_threads() -> Iterator[None]:
    """Pin torch's intra-op thread count for the session; restore it afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    # As the runs do (TrainConfig.flush_denormal): without it an early-training LSTM backward pass
    # spends most of its time on denormal floats, and its speed drifts as training moves off them.
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(previous)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device a benchmark runs on."""
    return torch.device(request.param)
