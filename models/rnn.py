"""Registered models over the fused PyTorch recurrences: rnn, lstm, gru, bilstm, bigru.

The five differ only in the cell and the number of directions, so one factory,
:func:`register_fused`, writes their builders (``models.matched`` registers its variants with it
too). Each builder has the registry's contract, a keyword signature whose defaults are the
model's, and its facts (recurrent, gradient-trained, parameter count, FLOPs) are declared with it.

Defaults are the notebook's (embedding 100, hidden 256, 2 layers, dropout 0.5). With a 10,000-token
vocabulary the trainable parameter counts are rnn 1,223,489; lstm 1,893,185; gru 1,669,953;
bilstm 3,310,657; bigru 2,733,121 (embedding, both bias vectors per recurrent layer, one linear).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models.recurrent import ClassifierCosts, RecurrentClassifier
from models.registry import register_model

__all__ = ["DROPOUT", "EMBEDDING_DIM", "HIDDEN_DIM", "NUM_LAYERS", "register_fused"]

EMBEDDING_DIM = 100
HIDDEN_DIM = 256
NUM_LAYERS = 2
DROPOUT = 0.5


def register_fused(
    name: str,
    cell: str,
    *,
    bidirectional: bool,
    description: str,
    default: bool = False,
    hidden_dim_of: Callable[[Mapping[str, Any]], int] | None = None,
    readout: str = "last",
) -> None:
    """Register ``name``: a :class:`RecurrentClassifier` over the fused ``cell`` kernel.

    Args:
        name: registry name.
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        bidirectional: add a backward direction.
        description: the registry's one-line description.
        default: part of the default comparison set.
        hidden_dim_of: the recurrence's hidden size from the builder's hyperparameters; by
            default ``hidden_dim`` itself.
        readout: ``"last"``, ``"max"`` or ``"mean"`` (:data:`models.recurrent.READOUTS`). Pooling
            adds a few element-wise operations per token and no parameters, so the declared
            parameter count and FLOPs are the last-state model's.
    """
    costs = ClassifierCosts(cell, bidirectional=bidirectional, hidden_dim_of=hidden_dim_of)

    def builder(
        *,
        vocab_size: int,
        pad_index: int,
        embedding_dim: int = EMBEDDING_DIM,
        hidden_dim: int = HIDDEN_DIM,
        num_layers: int = NUM_LAYERS,
        dropout: float = DROPOUT,
        padding_mode: str = "auto",
    ) -> RecurrentClassifier:
        shape = {"embedding_dim": embedding_dim, "hidden_dim": hidden_dim, "num_layers": num_layers}
        return RecurrentClassifier.fused(
            cell, vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
            hidden_dim=hidden_dim if hidden_dim_of is None else hidden_dim_of(shape),
            num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
            padding_mode=padding_mode, readout=readout,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{description}."
    register_model(
        name, description=description, default=default, recurrent=True, family="classic",
        training="gradient", param_count=costs.param_count, flops_per_token=costs.flops_per_token,
        state_size=costs.state_size,
    )(builder)


register_fused("rnn", "rnn", bidirectional=False, default=True,
               description="Simple (tanh) RNN, read at each review's last real token")
register_fused("lstm", "lstm", bidirectional=False, default=True,
               description="LSTM, read at each review's last real token")
register_fused("gru", "gru", bidirectional=False, default=True,
               description="GRU, read at each review's last real token")
register_fused("bilstm", "lstm", bidirectional=True, default=True,
               description="Bidirectional LSTM, both directions' final states at the real tokens")
register_fused("bigru", "gru", bidirectional=True,
               description="Bidirectional GRU, both directions' final states at the real tokens")
