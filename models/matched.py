"""Parameter-matched variants: rnn, gru, bilstm and bigru sized to an lstm's recurrent budget.

"LSTM beats GRU" at equal ``hidden_dim`` partly says "more parameters beat fewer": an LSTM layer
has four gate blocks, a GRU three, a tanh RNN one. Each ``*_matched`` model takes the same
``embedding_dim``, ``hidden_dim`` and ``num_layers`` as ``lstm`` but solves its own hidden size so
that its recurrent layers hold as many trainable parameters as the lstm's would (the integer
hidden size whose count is nearest). The embedding and the one-logit head are not part of the
budget: the embedding is the same for every model, and the head differs by a few hundred weights.
"""

from __future__ import annotations

from models.recurrent import RecurrentClassifier
from models.registry import register_model
from models.rnn import DROPOUT, EMBEDDING_DIM, HIDDEN_DIM, NUM_LAYERS

__all__ = ["GATES", "matched_hidden_dim", "recurrent_param_count"]

#: H-wide affine maps per step of each cell: LSTM i, f, g, o; GRU r, z, n; tanh RNN one.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def recurrent_param_count(
    cell: str, *, input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool
) -> int:
    """Trainable parameters of PyTorch's stacked ``nn.RNN``/``nn.LSTM``/``nn.GRU``.

    Per layer and direction: ``W_ih`` (G*H x I), ``W_hh`` (G*H x H) and both biases (2 x G*H); a
    layer above the first reads the directions of the one below (I = H * directions).
    """
    gates = GATES[cell]
    directions = 2 if bidirectional else 1
    total = 0
    layer_input = input_dim
    for _ in range(num_layers):
        total += directions * gates * hidden_dim * (layer_input + hidden_dim + 2)
        layer_input = hidden_dim * directions
    return total


def matched_hidden_dim(
    cell: str, *, bidirectional: bool, embedding_dim: int, lstm_hidden_dim: int, num_layers: int
) -> int:
    """The hidden size whose recurrent parameter count is nearest an lstm's with ``lstm_hidden_dim``.

    The count grows strictly with the hidden size, so a bisection finds the largest size not over
    the budget; the answer is that size or the next, whichever is nearer.
    """
    shape = {"input_dim": embedding_dim, "num_layers": num_layers}
    budget = recurrent_param_count(
        "lstm", hidden_dim=lstm_hidden_dim, bidirectional=False, **shape
    )

    def count(hidden: int) -> int:
        return recurrent_param_count(cell, hidden_dim=hidden, bidirectional=bidirectional, **shape)

    # One gate block per direction is the smallest cell; its hidden size bounds every answer.
    low, high = 1, 4 * lstm_hidden_dim + embedding_dim + 2
    while low < high:  # largest hidden with count <= budget (or 1)
        middle = (low + high + 1) // 2
        if count(middle) <= budget:
            low = middle
        else:
            high = middle - 1
    return min((low, low + 1), key=lambda hidden: abs(count(hidden) - budget))


def _register_matched(name: str, cell: str, *, bidirectional: bool, label: str) -> None:
    """Register ``name``: ``cell`` classifier whose hidden size is matched to lstm's budget."""

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
        matched = matched_hidden_dim(
            cell, bidirectional=bidirectional, embedding_dim=embedding_dim,
            lstm_hidden_dim=hidden_dim, num_layers=num_layers,
        )
        return RecurrentClassifier.fused(
            cell, vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
            hidden_dim=matched, num_layers=num_layers, bidirectional=bidirectional,
            dropout=dropout, padding_mode=padding_mode,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{label}, parameter-matched to lstm: ``hidden_dim`` is the lstm's; the model's own hidden "
        "size is solved so its recurrent layers hold the same number of parameters."
    )
    register_model(name, description=f"{label}, parameter-matched to lstm")(builder)


_register_matched("rnn_matched", "rnn", bidirectional=False, label="Simple (tanh) RNN")
_register_matched("gru_matched", "gru", bidirectional=False, label="GRU")
_register_matched("bilstm_matched", "lstm", bidirectional=True, label="Bidirectional LSTM")
_register_matched("bigru_matched", "gru", bidirectional=True, label="Bidirectional GRU")
