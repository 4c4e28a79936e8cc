"""Mini-batches padded only to their own longest review, drawn from length buckets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .encode import EncodedSplit

__all__ = ["Batch", "make_batches", "POOL_BATCHES"]

POOL_BATCHES = 50  # the shuffled sampler sorts by length within pools of this many batches


@dataclass(frozen=True)
class Batch:
    """A right-padded mini-batch.

    Attributes:
        tokens: int64 [B, T], T = the longest review of this batch; padding after each review.
        lengths: int64 [B] on the CPU, in descending order (``pack_padded_sequence`` ready, also
            with ``enforce_sorted=True``).
        labels: float32 [B], 1.0 = pos.
        index: int64 [B], the reviews' positions in their split.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)


def _cut(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def make_batches(
    split: EncodedSplit, batch_size: int, *, pad_index: int, shuffle: bool, seed: int = 0
) -> list[Batch]:
    """All of ``split`` as batches of ``batch_size`` (the last one may be smaller).

    ``shuffle=True``: a seeded length-bucketed sampler. The reviews are shuffled, sorted by length
    within pools of ``POOL_BATCHES`` batches, cut into batches, and the batches shuffled; so a
    batch holds reviews of similar length (little padding) while the order still changes with
    ``seed``. ``shuffle=False``: sorted by length (longest first, ties by position), a fixed order
    for evaluation. Either way each batch lists its reviews longest first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = split.lengths.numpy()
    if shuffle:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(split))
        pool = batch_size * POOL_BATCHES
        groups = []
        for start in range(0, len(order), pool):
            members = order[start : start + pool]
            members = members[np.argsort(-lengths[members], kind="stable")]
            groups.extend(_cut(members, batch_size))
        groups = [groups[i] for i in rng.permutation(len(groups))]
    else:
        groups = _cut(np.argsort(-lengths, kind="stable"), batch_size)
    labels = split.labels.to(torch.float32)
    batches = []
    for members in groups:
        index = torch.from_numpy(np.ascontiguousarray(members, dtype=np.int64))
        tokens, batch_lengths = split.pad(index, pad_index)
        batches.append(
            Batch(tokens=tokens, lengths=batch_lengths, labels=labels[index], index=index)
        )
    return batches
