"""The trainer's overhead: one ``Trainer.fit`` epoch against a bare loop doing the same work.

Same model (a small ``lstm``, same initial weights), same data, same batches (``make_batches``
with the seed ``fit`` derives for epoch 1), same optimiser and gradient clipping, and the same
single validation pass ``fit`` makes per epoch. The bare loop has no metrics, no progress bar, no
device-side loss accumulation, no state copies: whatever the trainer adds on top is its overhead.

The benchmark times the trainer's epoch; a bare epoch runs, timed with the same clock, just
before each of its rounds. The overhead ratio (fastest trainer epoch over fastest bare epoch) is
then read from rounds seconds apart rather than from two benchmarks a minute apart: measured as
two separate benchmarks, each over its own calibration, the ratio wandered between 1.03 and 1.25
over three runs of an unchanged tree. ``extra_info`` carries ``bare_epoch_min_s``; the gate reports
the ratio against the 1.05 goal (see :mod:`bench.dev.gate`).

Both run with bf16 autocast off, so on CUDA the comparison is about bookkeeping, not precision.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn

from bench.run.config import MeasureConfig, TrainConfig
from bench.run.instruments import synchronize
from bench.run.trainer import Trainer
from data_pipeline import make_batches
from models import create_model
from tests.benchmarks.calibration import clock_for, timed
from tests.benchmarks.workloads import (
    PAD_INDEX,
    VOCAB_SIZE,
    imdb_split,
    param_count,
    small_hyperparams,
)

MODEL = "lstm"
BATCH_SIZE = 32
TRAIN_REVIEWS = 8 * BATCH_SIZE  # eight steps per epoch
VAL_REVIEWS = BATCH_SIZE
ROUNDS = 10
SEED = 0
CONFIG = TrainConfig(epochs=1, batch_size=BATCH_SIZE, eval_batch_size=BATCH_SIZE, bf16=False)

_TRAIN = imdb_split("train", TRAIN_REVIEWS, seed=1)
_VAL = imdb_split("val", VAL_REVIEWS, seed=2)


def _build(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(
        MODEL, vocab_size=VOCAB_SIZE, pad_index=PAD_INDEX, **small_hyperparams(MODEL)
    )
    return model.to(device)


def bare_epoch(model: nn.Module, device: torch.device) -> Callable[[], None]:
    """One epoch of the bare loop over ``model``: what ``fit`` does, minus the bookkeeping."""
    optimizer = torch.optim.Adam(model.parameters(), lr=CONFIG.lr)
    loss_fn = nn.BCEWithLogitsLoss()

    def epoch() -> None:
        # fit's batch seed for epoch 1 is seed * 100_003 + 1: the same batches, in the same order.
        batches = make_batches(
            _TRAIN, BATCH_SIZE, pad_index=PAD_INDEX, shuffle=True, seed=SEED * 100_003 + 1
        )
        model.train()
        for batch in batches:
            tokens, labels = batch.tokens.to(device), batch.labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(tokens, batch.lengths), labels).backward()
            nn.utils.clip_grad_norm_(model.parameters(), CONFIG.grad_clip)
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            for batch in make_batches(_VAL, BATCH_SIZE, pad_index=PAD_INDEX, shuffle=False):
                model(batch.tokens.to(device), batch.lengths)
        synchronize(device)

    return epoch


def test_trainer_epoch(benchmark: BenchmarkFixture, device: torch.device) -> None:
    """``Trainer.fit`` for one epoch, progress bar off, interleaved with bare-loop epochs."""
    benchmark.group = f"trainer-overhead-{device.type}"
    model = _build(device)
    trainer = Trainer(model, CONFIG, MeasureConfig(), device, pad_index=PAD_INDEX, progress=False)
    bare = bare_epoch(_build(device), device)
    clock = clock_for(device)
    bare_s: list[float] = []

    def timed_bare_epoch() -> None:
        start = clock()
        bare()
        bare_s.append(clock() - start)

    def epoch() -> None:
        trainer.fit(_TRAIN, _VAL, seed=SEED)
        synchronize(device)

    timed(
        benchmark, epoch, device=device, normalise_by="mixed", min_rounds=ROUNDS,
        before_round=timed_bare_epoch, kind="trainer_epoch", model=MODEL,
        param_count=param_count(model), batch_size=BATCH_SIZE,
        tokens_per_batch=int(_TRAIN.lengths.sum()) // (TRAIN_REVIEWS // BATCH_SIZE),
        steps=TRAIN_REVIEWS // BATCH_SIZE,
    )
    benchmark.extra_info["bare_epoch_min_s"] = min(bare_s)
