"""Parameter-matched variants: rnn, gru, bilstm and bigru sized to an lstm's recurrent budget.

"LSTM beats GRU" at equal ``hidden_dim`` partly says "more parameters beat fewer": an LSTM layer
has four gate blocks, a GRU three, a tanh RNN one. Each ``*_matched`` model takes the same
``embedding_dim``, ``hidden_dim`` and ``num_layers`` as ``lstm`` but solves its own hidden size so
that its recurrent layers hold as many trainable parameters as the lstm's would (the integer
hidden size whose count is nearest). The embedding and the one-logit head are not part of the
budget: the embedding is the same for every model, and the head differs by a few hundred weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models.recurrent import recurrent_param_count
from models.rnn import register_fused

__all__ = ["matched_hidden_dim"]


def matched_hidden_dim(
    cell: str, *, bidirectional: bool, embedding_dim: int, lstm_hidden_dim: int, num_layers: int
) -> int:
    """The hidden size whose recurrent parameter count is nearest an lstm's with ``lstm_hidden_dim``.

    The count grows strictly with the hidden size, so a bisection finds the largest size not over
    the budget; the answer is that size or the next, whichever is nearer.
    """
    if lstm_hidden_dim < 1:  # the bisection below would answer 1 or 2 for any budget
        raise ValueError(f"hidden_dim (the lstm's, whose size this model matches) must be at "
                         f"least 1, got {lstm_hidden_dim}")
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


def _matched_to_lstm(cell: str, *, bidirectional: bool) -> Callable[[Mapping[str, Any]], int]:
    """``hidden_dim_of`` for :func:`register_fused`: the hidden size matched to lstm's budget."""

    def hidden_dim_of(hp: Mapping[str, Any]) -> int:
        return matched_hidden_dim(
            cell, bidirectional=bidirectional, embedding_dim=hp["embedding_dim"],
            lstm_hidden_dim=hp["hidden_dim"], num_layers=hp["num_layers"],
        )

    return hidden_dim_of


for _name, _cell, _bidirectional, _label in (
    ("rnn_matched", "rnn", False, "Simple (tanh) RNN"),
    ("gru_matched", "gru", False, "GRU"),
    ("bilstm_matched", "lstm", True, "Bidirectional LSTM"),
    ("bigru_matched", "gru", True, "Bidirectional GRU"),
):
    # hidden_dim is the lstm's; the model's own hidden size is solved from it.
    register_fused(
        _name, _cell, bidirectional=_bidirectional, description=f"{_label}, parameter-matched to lstm",
        hidden_dim_of=_matched_to_lstm(_cell, bidirectional=_bidirectional),
    )
