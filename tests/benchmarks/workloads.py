"""The fixed, seeded inputs of the model and trainer benchmarks.

Review lengths follow IMDb's, truncated at 250 tokens. The real training set's token counts
(torchtext ``basic_english``) have p50 ~ 201, p90 ~ 521 and p99 ~ 1041. A log-normal with median
201 and sigma 0.73 gives p90 = 201 * exp(1.2816 * 0.73) = 513 and p99 = 201 * exp(2.3263 * 0.73)
= 1100, within 2% and 6% of the real quantiles (sigma = 0.74 fits p90 exactly, 0.71 fits p99;
0.73 splits the difference). Truncating at 250 then cuts ~38% of reviews to exactly 250 tokens,
as truncating the real data does; lengths are clipped below at 8 (IMDb has no shorter review).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from data_pipeline import EncodedSplit
from models import model_info

MAX_LEN = 250
VOCAB_SIZE = 10_000
PAD_INDEX = 1
MEDIAN_LENGTH = 201
LENGTH_SIGMA = 0.73
MIN_LENGTH = 8

# Small enough that the suite runs in a few minutes on two cores, large enough that every model's
# step is dominated by its own computation rather than by Python call overhead.
SMALL_HYPERPARAMS: dict[str, Any] = {"embedding_dim": 32, "hidden_dim": 32, "num_layers": 1}


def imdb_lengths(count: int, seed: int) -> np.ndarray:
    """``count`` review lengths drawn from the truncated log-normal fit (int64, in [8, 250])."""
    rng = np.random.default_rng(seed)
    lengths = np.round(rng.lognormal(np.log(MEDIAN_LENGTH), LENGTH_SIGMA, count))
    return np.clip(lengths, MIN_LENGTH, MAX_LEN).astype(np.int64)


def imdb_batch(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded tokens ``[B, 250]``, CPU lengths ``[B]`` and float targets ``[B]``.

    The first review is set to 250 tokens so the batch is as wide as the truncation whatever the
    draw (a batch is padded to its longest review, and with 32 draws one reaches 250 anyway with
    probability 1 - 0.62**32, i.e. always in practice).
    """
    lengths = torch.from_numpy(imdb_lengths(batch_size, seed))
    lengths[0] = MAX_LEN
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, VOCAB_SIZE, (batch_size, MAX_LEN), generator=generator)
    tokens[torch.arange(MAX_LEN).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD_INDEX
    targets = torch.randint(0, 2, (batch_size,), generator=generator).float()
    return tokens, lengths, targets


def imdb_split(name: str, count: int, seed: int) -> EncodedSplit:
    """An encoded split of ``count`` random reviews with IMDb-like lengths and balanced labels."""
    lengths = torch.from_numpy(imdb_lengths(count, seed))
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.zeros(count + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    tokens = torch.randint(2, VOCAB_SIZE, (int(offsets[-1]),), generator=generator)
    labels = torch.arange(count, dtype=torch.int64) % 2
    return EncodedSplit(
        name=name,
        tokens=tokens,
        offsets=offsets,
        labels=labels,
        review_ids=torch.arange(count, dtype=torch.int64),
        stars=torch.where(labels == 1, 8, 2),
    )


def small_hyperparams(name: str) -> dict[str, Any]:
    """The entries of :data:`SMALL_HYPERPARAMS` that model ``name`` accepts."""
    accepted = model_info(name).hyperparams
    return {key: value for key, value in SMALL_HYPERPARAMS.items() if key in accepted}


def param_count(model: torch.nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
