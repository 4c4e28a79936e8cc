"""The linear scan's speed: a minGRU layer's training step against ``nn.GRU``'s, in the same rounds.

Issue 25's measure: one layer, input and hidden width 64, batch 64, T = 1,000, one thread;
forward and backward of a loss on every step's output, input gradients included. The benchmark
times the minGRU layer (``models.min_rnn.MinGRULayer``: one input projection, then
:func:`models.scan.linear_scan`); an ``nn.GRU`` layer and an ``nn.LSTM`` layer of the same widths
run, timed with the same clock, just before each round, as the trainer benchmark's bare loop does
(ratios read from rounds seconds apart, not from two benchmarks a minute apart).

``extra_info`` carries the gated ratio (``reference_min_s``, the GRU's fastest step, with the
goal ``speedup_goal`` 1.0: minGRU no slower than GRU; the gate fails below ``speedup_limit``,
1 / 1.15), the LSTM's fastest step beside it, the fastest step of the whole residual block
(norm, mixer, MLP: what a ``mingru`` model's layer costs; reported, not gated) and the step in
element-wise passes: the time of one ``add`` over a ``[B, T, H]`` tensor, timed in the same
rounds, and how many of those the scan alone and the layer's step cost.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn

from bench.run.instruments import synchronize
from models.blocks import Mlp, ResidualClassifier
from models.min_rnn import MinGRULayer, MinRNNMixer
from models.scan import linear_scan
from tests.benchmarks.calibration import clock_for, timed

WIDTH = 64
BATCH = 64
STEPS = 1_000
ROUNDS = 8
SPEEDUP_GOAL = 1.0  # minGRU's step no slower than GRU's
SLOWDOWN_LIMIT = 1.15  # the gate fails when minGRU's step takes more than this times GRU's


def _step(layer: nn.Module, device: torch.device, *, read: Callable[[object], torch.Tensor]
          ) -> Callable[[], None]:  # fmt: skip
    """Forward and backward of ``layer`` on one batch: a weighted sum of every output step."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(BATCH, STEPS, WIDTH, generator=generator).to(device).requires_grad_()
    weights = torch.randn(BATCH, STEPS, WIDTH, generator=generator).to(device)
    layer = layer.to(device)

    def step() -> None:
        inputs.grad = None
        layer.zero_grad(set_to_none=True)
        (read(layer(inputs)) * weights).sum().backward()
        synchronize(device)

    return step


def _block(device: torch.device) -> nn.Module:
    """One residual block of the ``mingru`` model at these widths: norm, mixer, norm, MLP."""
    torch.manual_seed(0)
    model = ResidualClassifier(
        vocab_size=2, pad_index=0, dim=WIDTH, num_layers=1, mlp=Mlp, dropout=0.0, readout="last",
        make_mixer=lambda: MinRNNMixer(MinGRULayer(WIDTH, WIDTH), WIDTH, WIDTH),
    )
    lengths = torch.full((BATCH,), STEPS)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.blocks(x, lengths)

    return Block()


def _timed(fn: Callable[[], None], clock: Callable[[], float], into: list[float]) -> Callable[[], None]:
    def run() -> None:
        start = clock()
        fn()
        into.append(clock() - start)

    return run


def test_mingru_layer_vs_gru_layer(benchmark: BenchmarkFixture, device: torch.device) -> None:
    """The minGRU layer's training step, interleaved with GRU, LSTM, block and scan steps."""
    benchmark.group = f"scan-{device.type}"
    torch.manual_seed(0)
    first = lambda output: output[0]  # noqa: E731  # nn.GRU/nn.LSTM return (outputs, state)
    same = lambda output: output  # noqa: E731
    mingru = _step(MinGRULayer(WIDTH, WIDTH), device, read=same)
    references = {
        "gru": _step(nn.GRU(WIDTH, WIDTH, batch_first=True), device, read=first),
        "lstm": _step(nn.LSTM(WIDTH, WIDTH, batch_first=True), device, read=first),
        "block": _step(_block(device), device, read=same),
    }
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(BATCH, STEPS, WIDTH, generator=generator).to(device).requires_grad_()
    b = torch.randn(BATCH, STEPS, WIDTH, generator=generator).to(device).requires_grad_()
    grad = torch.randn(BATCH, STEPS, WIDTH, generator=generator).to(device)

    def scan() -> None:
        linear_scan(a, b).backward(grad)
        synchronize(device)

    out = torch.empty_like(grad)

    def elementwise_pass() -> None:
        torch.add(grad, grad, out=out)
        synchronize(device)

    references |= {"scan": scan, "pass": elementwise_pass}
    clock = clock_for(device)
    times: dict[str, list[float]] = {name: [] for name in references}
    timers = [_timed(fn, clock, times[name]) for name, fn in references.items()]

    def before_round() -> None:
        for timer in timers:
            timer()

    timed(
        benchmark, mingru, device=device, normalise_by="mixed", min_rounds=ROUNDS,
        before_round=before_round, kind="scan_layer", model="mingru", batch_size=BATCH,
        steps=STEPS, width=WIDTH,
    )
    fastest = {name: min(values) for name, values in times.items()}
    mingru_s = benchmark.stats.stats.min
    benchmark.extra_info.update(
        reference="nn.GRU (minGRU layer)", reference_min_s=fastest["gru"],
        speedup_goal=SPEEDUP_GOAL, speedup_limit=1 / SLOWDOWN_LIMIT,
        beside_min_s={"nn.LSTM": fastest["lstm"], "the mingru block": fastest["block"],
                      "the scan alone": fastest["scan"]},
        elementwise_pass_min_s=fastest["pass"],
        scan_passes=fastest["scan"] / fastest["pass"], layer_passes=mingru_s / fastest["pass"],
    )
