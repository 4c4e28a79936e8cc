"""Registered models over the fused PyTorch recurrences: rnn, lstm, gru, bilstm, bigru.

Defaults are the notebook's (embedding 100, hidden 256, 2 layers, dropout 0.5). With a 10,000-token
vocabulary the trainable parameter counts are rnn 1,223,489; lstm 1,893,185; gru 1,669,953;
bilstm 3,310,657; bigru 2,733,121 (embedding, both bias vectors per recurrent layer, one linear).
"""

from __future__ import annotations

from models.recurrent import RecurrentClassifier
from models.registry import register_model

EMBEDDING_DIM = 100
HIDDEN_DIM = 256
NUM_LAYERS = 2
DROPOUT = 0.5


@register_model(description="Simple (tanh) RNN, read at each review's last real token", default=True)
def rnn(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
    padding_mode: str = "auto",
) -> RecurrentClassifier:
    """Unidirectional stacked tanh RNN classifier."""
    return RecurrentClassifier.fused(
        "rnn", vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=False, dropout=dropout,
        padding_mode=padding_mode,
    )


@register_model(description="LSTM, read at each review's last real token", default=True)
def lstm(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
    padding_mode: str = "auto",
) -> RecurrentClassifier:
    """Unidirectional stacked LSTM classifier."""
    return RecurrentClassifier.fused(
        "lstm", vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=False, dropout=dropout,
        padding_mode=padding_mode,
    )


@register_model(description="GRU, read at each review's last real token", default=True)
def gru(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
    padding_mode: str = "auto",
) -> RecurrentClassifier:
    """Unidirectional stacked GRU classifier."""
    return RecurrentClassifier.fused(
        "gru", vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=False, dropout=dropout,
        padding_mode=padding_mode,
    )


@register_model(
    description="Bidirectional LSTM, both directions' final states at the real tokens", default=True
)
def bilstm(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
    padding_mode: str = "auto",
) -> RecurrentClassifier:
    """Bidirectional stacked LSTM classifier (forward and backward final states concatenated)."""
    return RecurrentClassifier.fused(
        "lstm", vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=True, dropout=dropout,
        padding_mode=padding_mode,
    )


@register_model(description="Bidirectional GRU, both directions' final states at the real tokens")
def bigru(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
    padding_mode: str = "auto",
) -> RecurrentClassifier:
    """Bidirectional stacked GRU classifier (forward and backward final states concatenated)."""
    return RecurrentClassifier.fused(
        "gru", vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, num_layers=num_layers, bidirectional=True, dropout=dropout,
        padding_mode=padding_mode,
    )
