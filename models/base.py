"""The contract every model follows, and the input check every model's forward runs.

``forward(tokens: LongTensor[B, T], lengths: LongTensor[B]) -> logits[B]``: tokens right-padded,
one float logit per review (for ``BCEWithLogitsLoss``). The model owns any hidden state, so a
trainer never needs to know which kind of model it holds.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

__all__ = ["TextClassifier", "check_batch"]

_TOKEN_DTYPES = (torch.int64, torch.int32)  # what nn.Embedding accepts
_LENGTH_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


def check_batch(tokens: Tensor, lengths: Tensor, *, vocab_size: int) -> None:
    """Reject a malformed batch with a ``ValueError`` that says what is wrong.

    Shape, dtype and device checks are free. Value checks (ids in ``[0, vocab_size)``, lengths in
    ``[1, T]``) read tensor contents, so they run only on CPU tensors: on a GPU they would force a
    host synchronisation every step. ``lengths`` must be on the CPU anyway (packing and the gather
    indices are built from it on the host), so lengths are always checked; token ids only while the
    tokens are still on the CPU.

    Raises:
        ValueError: naming the offending argument and, for value errors, the first bad position.
    """
    if not isinstance(tokens, Tensor) or not isinstance(lengths, Tensor):
        raise ValueError(
            "tokens and lengths must be torch tensors, got "
            f"{type(tokens).__name__} and {type(lengths).__name__}"
        )
    if tokens.dtype not in _TOKEN_DTYPES:
        raise ValueError(f"tokens must be integer token ids (int64 or int32), got {tokens.dtype}")
    if lengths.dtype not in _LENGTH_DTYPES:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be 2-D [batch, time], got shape {tuple(tokens.shape)}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D [batch], got shape {tuple(lengths.shape)}")
    batch_size, max_time = tokens.shape
    if lengths.shape[0] != batch_size:
        raise ValueError(
            f"batch size mismatch: tokens has {batch_size} rows, lengths has {lengths.shape[0]}"
        )
    if batch_size == 0 or max_time == 0:
        raise ValueError(f"empty batch: tokens has shape {tuple(tokens.shape)}")
    if lengths.device.type != "cpu":
        raise ValueError(
            f"lengths must be a CPU tensor (got device {lengths.device}); keep it on the host, "
            "only tokens move to the accelerator"
        )

    short = (lengths < 1).nonzero()
    if short.numel():
        row = int(short[0, 0])
        raise ValueError(
            f"length {int(lengths[row])} at batch row {row}: every review needs at least one token"
        )
    long = (lengths > max_time).nonzero()
    if long.numel():
        row = int(long[0, 0])
        raise ValueError(
            f"length {int(lengths[row])} at batch row {row} exceeds the padded width T={max_time}"
        )

    if tokens.device.type == "cpu":
        low, high = torch.aminmax(tokens)
        if int(low) < 0 or int(high) >= vocab_size:
            bad = ((tokens < 0) | (tokens >= vocab_size)).nonzero()[0]
            row, col = int(bad[0]), int(bad[1])
            raise ValueError(
                f"token id {int(tokens[row, col])} at (row {row}, position {col}) is outside "
                f"[0, vocab_size={vocab_size})"
            )


class TextClassifier(nn.Module, abc.ABC):
    """Base class: validates each batch, then delegates to :meth:`classify`.

    Subclasses implement ``classify(tokens, lengths) -> logits[B]`` and may assume a well-formed
    batch: int tokens ``[B, T]``, CPU int lengths ``[B]`` with ``1 <= length <= T``.
    """

    def __init__(self, *, vocab_size: int, pad_index: int) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if not 0 <= pad_index < vocab_size:
            raise ValueError(f"pad_index {pad_index} is outside [0, vocab_size={vocab_size})")
        self.vocab_size = vocab_size
        self.pad_index = pad_index

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``[B]`` for right-padded ``tokens [B, T]`` with real lengths ``lengths [B]``."""
        check_batch(tokens, lengths, vocab_size=self.vocab_size)
        # Batches are meant to be padded to their own longest review; trimming any extra padding
        # here is free (lengths live on the CPU) and saves every model the wasted steps.
        max_length = int(lengths.max())
        if max_length < tokens.shape[1]:
            tokens = tokens[:, :max_length]
        return self.classify(tokens, lengths.long())

    @abc.abstractmethod
    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Compute the logits ``[B]`` of a validated batch (``lengths`` int64, on the CPU)."""
