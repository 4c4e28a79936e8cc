"""Padding and length-bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_pipeline import Batch, EncodedSplit, make_batches


def _split(lengths: list[int], seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return EncodedSplit(
        name="train",
        tokens=torch.from_numpy(rng.integers(2, 50, int(offsets[-1]))),
        offsets=torch.from_numpy(offsets),
        labels=torch.from_numpy(rng.integers(0, 2, len(lengths))),
        review_ids=torch.arange(len(lengths)),
        stars=torch.ones(len(lengths), dtype=torch.long),
    )


def test_pad_right_pads_to_the_longest_in_the_batch() -> None:
    split = _split([3, 1, 5, 2])
    tokens, lengths = split.pad([3, 0, 1], pad_index=1)
    assert tokens.shape == (3, 3)
    assert lengths.tolist() == [2, 3, 1]
    assert tokens.dtype == lengths.dtype == torch.int64
    for row, i in enumerate([3, 0, 1]):
        review = split.tokens[split.offsets[i] : split.offsets[i + 1]]
        assert torch.equal(tokens[row, : len(review)], review)
        assert (tokens[row, len(review) :] == 1).all()


def test_pad_handles_the_last_review_and_rejects_no_indices() -> None:
    split = _split([2, 4])
    tokens, _ = split.pad(torch.tensor([1, 0]), pad_index=7)
    assert tokens[1].tolist()[2:] == [7, 7]
    assert torch.equal(tokens[0], split.tokens[2:6])
    with pytest.raises(ValueError):
        split.pad([], pad_index=1)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_review_once(shuffle: bool) -> None:
    lengths = np.random.default_rng(1).integers(1, 60, 1000).tolist()
    split = _split(lengths)
    batches = make_batches(split, 32, pad_index=1, shuffle=shuffle, seed=4)
    assert all(isinstance(b, Batch) for b in batches)
    seen = torch.cat([b.index for b in batches]).sort().values
    assert torch.equal(seen, torch.arange(1000))
    assert [len(b) for b in batches].count(32) == 31
    for batch in batches:
        assert batch.tokens.shape == (len(batch), int(batch.lengths.max()))
        assert batch.lengths.tolist() == sorted(batch.lengths.tolist(), reverse=True)
        assert batch.lengths.device.type == "cpu" and batch.lengths.dtype == torch.int64
        assert batch.labels.dtype == torch.float32
        assert torch.equal(batch.labels, split.labels[batch.index].float())
        assert torch.equal(batch.lengths, split.lengths[batch.index])


def test_shuffled_order_depends_on_the_seed_only() -> None:
    split = _split(np.random.default_rng(2).integers(1, 60, 500).tolist())
    first = [b.index.tolist() for b in make_batches(split, 16, pad_index=1, shuffle=True, seed=0)]
    again = [b.index.tolist() for b in make_batches(split, 16, pad_index=1, shuffle=True, seed=0)]
    other = [b.index.tolist() for b in make_batches(split, 16, pad_index=1, shuffle=True, seed=1)]
    assert first == again
    assert first != other


def test_bucketing_cuts_padding() -> None:
    lengths = np.random.default_rng(3).integers(1, 400, 3200).tolist()
    split = _split(lengths)
    batches = make_batches(split, 32, pad_index=1, shuffle=True, seed=0)
    padded = sum(b.tokens.numel() for b in batches)
    real = sum(lengths)
    # Random batches of uniform lengths in [1, 400) waste about half; buckets almost nothing.
    assert padded / real < 1.1


def test_evaluation_order_is_sorted_by_length() -> None:
    split = _split([5, 9, 1, 9, 3])
    batches = make_batches(split, 2, pad_index=1, shuffle=False)
    assert [b.index.tolist() for b in batches] == [[1, 3], [0, 4], [2]]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make_batches(_split([1, 2]), 0, pad_index=1, shuffle=False)
