"""Per-model speed: one training step and one inference step, for every registered model.

Parametrized over ``list_models()``, so a newly registered model is benchmarked (and reported by
the gate as "new" until the baseline commit has it) without an edit here. Every model gets the same fixed batch: 32
reviews with IMDb-like lengths truncated at 250 (:mod:`tests.benchmarks.workloads`), embedding 32,
hidden 32, one layer. The batch is the same for ``lstm`` and ``lstm_scratch``, so their ratio is a
like-for-like comparison of the fused kernel and the hand-written loop.

``test_train_step_alternative_padding`` times the padding mode ``auto`` does *not* pick on the
device, for every model that has a choice; the gate checks that the default is no slower.
"""

from __future__ import annotations

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture
from torch import nn
from torch.nn import functional as F

from bench.run.instruments import synchronize
from models import create_model, list_models, model_info
from models.recurrent import AUTO_PADDING_MODE
from tests.benchmarks.calibration import timed
from tests.benchmarks.workloads import (
    PAD_INDEX,
    VOCAB_SIZE,
    imdb_batch,
    param_count,
    small_hyperparams,
)

BATCH_SIZE = 32
TRAIN_ROUNDS = 15
INFER_ROUNDS = 25
# The packed path runs ATen's step-by-step cell on CPU (a packed bilstm step is ~0.6 s on one
# core); fewer rounds keep the file short, and the comparison it feeds has a wide margin.
ALTERNATIVE_ROUNDS = 6

# Every model step is normalised by the geometric mean of both calibrations. At these sizes a step
# is BLAS work (recurrent kernels, embedding gradient, Adam) and framework overhead (dispatch,
# autograd, Python) in proportions that differ per model, and over repeated runs on the shared
# machine "mixed" kept every model's figure steadier than "matmul" alone (largest run-to-run
# spread 1.38 against 1.48).
NORMALISE_BY = "mixed"


def _alternative_padding(name: str) -> dict[str, str]:
    """For each device type, the padding mode that ``auto`` does not choose (none: no choice).

    A model has the choice when its builder declares a ``padding_mode`` hyperparameter; what
    ``auto`` picks per device type is ``models.recurrent.AUTO_PADDING_MODE``.
    """
    if "padding_mode" not in model_info(name).hyperparams:
        return {}
    return {
        device_type: "packed" if chosen == "padded" else "padded"
        for device_type, chosen in AUTO_PADDING_MODE.items()
    }


_ALTERNATIVES = {name: _alternative_padding(name) for name in list_models()}
_WITH_PADDING_CHOICE = [name for name, alternatives in _ALTERNATIVES.items() if alternatives]


def _build(name: str, device: torch.device, **overrides: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(
        name, vocab_size=VOCAB_SIZE, pad_index=PAD_INDEX, **small_hyperparams(name), **overrides
    )
    return model.to(device)


def _padding_mode(name: str, device: torch.device) -> str | None:
    """The mode ``auto`` runs ``name`` in on ``device`` (None: the model has no choice)."""
    return AUTO_PADDING_MODE[device.type] if _ALTERNATIVES[name] else None


def _time_train_step(
    benchmark: BenchmarkFixture, model: nn.Module, device: torch.device, name: str, rounds: int,
    padding_mode: str | None,
) -> None:
    tokens, lengths, targets = imdb_batch(BATCH_SIZE)
    tokens, targets = tokens.to(device), targets.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(tokens, lengths), targets).backward()
        optimizer.step()
        synchronize(device)

    timed(
        benchmark,
        train_step,
        device=device,
        normalise_by=NORMALISE_BY,
        min_rounds=rounds,
        kind="train_step",
        model=name,
        padding_mode=padding_mode,
        param_count=param_count(model),
        batch_size=BATCH_SIZE,
        tokens_per_batch=int(lengths.sum()),
    )


@pytest.mark.parametrize("name", list_models())
def test_train_step(benchmark: BenchmarkFixture, device: torch.device, name: str) -> None:
    """Forward, BCE loss, backward and an Adam step, on the model's default padding path."""
    benchmark.group = f"train-step-{device.type}"
    _time_train_step(
        benchmark, _build(name, device), device, name, TRAIN_ROUNDS, _padding_mode(name, device)
    )


@pytest.mark.parametrize("name", list_models())
def test_infer_step(benchmark: BenchmarkFixture, device: torch.device, name: str) -> None:
    """One forward pass in inference mode, on the model's default padding path."""
    benchmark.group = f"infer-step-{device.type}"
    model = _build(name, device).eval()
    tokens, lengths, _ = imdb_batch(BATCH_SIZE)
    tokens = tokens.to(device)

    def infer_step() -> None:
        with torch.inference_mode():
            model(tokens, lengths)
        synchronize(device)

    timed(
        benchmark,
        infer_step,
        device=device,
        normalise_by=NORMALISE_BY,
        min_rounds=INFER_ROUNDS,
        kind="infer_step",
        model=name,
        padding_mode=_padding_mode(name, device),
        param_count=param_count(model),
        batch_size=BATCH_SIZE,
        tokens_per_batch=int(lengths.sum()),
    )


@pytest.mark.parametrize("name", _WITH_PADDING_CHOICE)
def test_train_step_alternative_padding(
    benchmark: BenchmarkFixture, device: torch.device, name: str
) -> None:
    """The training step on the padding path ``auto`` rejects on this device (packed on CPU)."""
    benchmark.group = f"padding-alternative-{device.type}"
    mode = _ALTERNATIVES[name][device.type]
    _time_train_step(
        benchmark, _build(name, device, padding_mode=mode), device, name, ALTERNATIVE_ROUNDS, mode
    )
    benchmark.extra_info["kind"] = "train_step_alternative_padding"
