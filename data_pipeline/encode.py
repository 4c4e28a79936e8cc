"""Encoded splits: flat token ids plus offsets, truncated, with labels and review metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .corpus import KeyTable, token_ranges

__all__ = ["EncodedSplit", "encode_split"]


@dataclass(frozen=True)
class EncodedSplit:
    """One split (``train``, ``val`` or ``test``), stored flat: review ``i`` is
    ``tokens[offsets[i]:offsets[i + 1]]``, already truncated to ``max_len`` ids.

    Attributes:
        name: ``"train"``, ``"val"`` or ``"test"``.
        tokens: int64, the ids of all reviews back to back.
        offsets: int64 [N + 1].
        labels: int64 [N], pos = 1, neg = 0.
        review_ids: int64 [N], the ``<id>`` of ``<id>_<stars>.txt``.
        stars: int64 [N], the star rating.
        untruncated_lengths: int64 [N], token counts before truncation (0 for an empty review).
    """

    name: str
    tokens: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor
    review_ids: torch.Tensor
    stars: torch.Tensor
    untruncated_lengths: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """int64 [N]: each review's length after truncation; always >= 1."""
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"EncodedSplit({self.name!r}, {len(self)} reviews, {len(self.tokens)} tokens)"

    @classmethod
    def unlabeled(cls, name: str, reviews: Sequence[Sequence[int]]) -> EncodedSplit:
        """A split of already-encoded ``reviews`` (each at least one id) with no labels, stars or
        review ids: text to classify. Its labels are -1 (unknown)."""
        lengths = torch.tensor([len(ids) for ids in reviews], dtype=torch.long)
        if (lengths < 1).any():
            raise ValueError("every review needs at least one token id")
        offsets = torch.zeros(len(reviews) + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(lengths, 0)
        tokens = torch.tensor([i for ids in reviews for i in ids], dtype=torch.long)
        unknown = torch.full((len(reviews),), -1, dtype=torch.long)
        return cls(name, tokens, offsets, labels=unknown, review_ids=unknown.clone(), stars=unknown.clone())

    def pad(
        self, indices: Sequence[int] | torch.Tensor | np.ndarray, pad_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The reviews at ``indices`` as ``(tokens LongTensor[B, T], lengths LongTensor[B])``, right-
        padded with ``pad_index`` to the longest of them (``T = lengths.max()``)."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            raise ValueError("pad needs at least one index")
        lengths = self.lengths[index]
        columns = torch.arange(int(lengths.max()))
        positions = self.offsets[index].unsqueeze(1) + columns
        inside = columns < lengths.unsqueeze(1)
        # Positions past a review's end are clamped (then masked), so the gather stays in bounds.
        values = self.tokens[positions.clamp_(max=len(self.tokens) - 1)]
        return torch.where(inside, values, torch.tensor(pad_index, dtype=torch.long)), lengths


def encode_split(
    name: str,
    table: KeyTable,
    keys: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    *,
    labels: np.ndarray,
    review_ids: np.ndarray,
    stars: np.ndarray,
    max_len: int,
    unk_index: int = 0,
) -> EncodedSplit:
    """Cut one split out of the token-key stream ``keys`` and map it to vocabulary ids.

    ``starts``/``lengths`` locate each of the split's reviews in the stream. Each review keeps its
    first ``max_len`` tokens (only those are looked up); an empty review becomes a single
    ``unk_index`` so every length is >= 1.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    kept = np.minimum(lengths, max_len)
    tokens = table.lookup(keys[token_ranges(starts, kept)])
    if (lengths == 0).any():
        # Insert the <unk> of each empty review at its place.
        empty_positions = (np.cumsum(kept) - kept)[lengths == 0]
        tokens = np.insert(tokens, empty_positions, unk_index)
        kept = np.maximum(kept, 1)
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=offsets[1:])

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))

    return EncodedSplit(
        name=name,
        tokens=tensor(tokens),
        offsets=tensor(offsets),
        labels=tensor(labels),
        review_ids=tensor(review_ids),
        stars=tensor(stars),
        untruncated_lengths=tensor(lengths),
    )
