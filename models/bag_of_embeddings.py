"""``bag_of_embeddings``: the no-recurrence baseline.

The mean of the embeddings of a review's real tokens, then dropout and one linear logit. In the
report it shows what recurrence buys over word identity alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.base import TextClassifier
from models.registry import register_model

__all__ = ["BagOfEmbeddings"]


class BagOfEmbeddings(TextClassifier):
    """Mean of real-token embeddings -> dropout -> ``Linear(embedding_dim, 1)``.

    Args:
        vocab_size: number of token ids.
        pad_index: the padding id; its embedding is fixed at zero.
        embedding_dim: embedding size.
        dropout: dropout on the averaged embedding.
    """

    def __init__(
        self, *, vocab_size: int, pad_index: int, embedding_dim: int, dropout: float
    ) -> None:
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding_dim, 1)

    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``[B]`` of a validated batch."""
        device = tokens.device
        # Mask by length rather than trusting the pad id: whatever follows a review is ignored.
        real = torch.arange(tokens.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        real = real.to(device, non_blocking=True)
        summed = (self.embedding(tokens) * real.unsqueeze(2)).sum(dim=1)
        mean = summed / lengths.to(device, non_blocking=True).unsqueeze(1)
        return self.classifier(self.dropout(mean)).squeeze(1)


@register_model(
    description="Baseline without recurrence: mean of the real tokens' embeddings, then linear",
    default=True,
    recurrent=False,
    family="floor",
    training="gradient",
    # Embedding, then Linear(embedding_dim -> 1) with its bias.
    param_count=lambda vocab_size, hp: vocab_size * hp["embedding_dim"] + hp["embedding_dim"] + 1,
    # The head counted at every token, as for the recurrent models; the mean is additions only.
    flops_per_token=lambda hp: 2.0 * hp["embedding_dim"],
)
def bag_of_embeddings(
    *, vocab_size: int, pad_index: int, embedding_dim: int = 100, dropout: float = 0.5
) -> BagOfEmbeddings:
    """Bag-of-embeddings baseline with the recurrent models' embedding size and dropout."""
    return BagOfEmbeddings(
        vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim, dropout=dropout
    )
