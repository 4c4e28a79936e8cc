"""``lstm_scratch``: the lstm classifier with its LSTM cell written by hand.

The notebook's "from scratch" exercise, kept as a model so the benchmarks show what the fused
kernel buys. A Python loop over time steps; a finished review's state is frozen by a mask, so the
encoder returns each review's top-layer state at its last real token. Parameters use ``nn.LSTM``'s
names and shapes (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, gates
ordered i, f, g, o), so an ``lstm`` model's state dict loads into an ``lstm_scratch`` model and
the two give the same logits and gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.recurrent import ClassifierCosts, RecurrentClassifier
from models.registry import register_model
from models.rnn import DROPOUT, EMBEDDING_DIM, HIDDEN_DIM, NUM_LAYERS

__all__ = ["ScratchLSTM", "ScratchLSTMEncoder"]


class ScratchLSTM(nn.Module):
    """A stacked unidirectional LSTM over right-padded batches, one Python step per time step.

    Args:
        input_dim: size of each input vector.
        hidden_dim: hidden size.
        num_layers: stacked layers.
        dropout: dropout on each layer's outputs except the last (as ``nn.LSTM``).
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        for layer in range(num_layers):
            layer_input = input_dim if layer == 0 else hidden_dim
            self.register_parameter(
                f"weight_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_dim, layer_input))
            )
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_dim, hidden_dim))
            )
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_dim)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_dim)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s initialisation: every weight and bias uniform in +-1/sqrt(hidden_dim)."""
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run the stack over right-padded ``inputs [B, T, input_dim]`` with CPU ``lengths [B]``.

        Returns:
            ``(outputs, finals)``: the top layer's outputs ``[B, T, H]`` (at padding positions they
            repeat the last real state) and every layer's ``h`` and ``c`` at each review's last real
            token, ``[B, H]`` each, in the order ``h_0, c_0, h_1, c_1, ...``.
        """
        batch_size, max_time, _ = inputs.shape
        # active[t, b]: step t is a real token of review b. Built on the host, moved once.
        active = (torch.arange(max_time).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(2)
        active = active.to(inputs.device, non_blocking=True)
        layer_input = inputs
        finals: list[Tensor] = []
        for layer in range(self.num_layers):
            weight_ih = getattr(self, f"weight_ih_l{layer}")
            weight_hh = getattr(self, f"weight_hh_l{layer}")
            bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
            # The input projection does not depend on the recurrence: one matmul for all steps.
            projected = F.linear(layer_input, weight_ih, bias)
            hidden = inputs.new_zeros(batch_size, self.hidden_dim)
            cell = inputs.new_zeros(batch_size, self.hidden_dim)
            steps = []
            for t in range(max_time):
                gates = projected[:, t] + F.linear(hidden, weight_hh)
                in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)
                new_cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(
                    in_gate
                ) * torch.tanh(cell_gate)
                new_hidden = torch.sigmoid(out_gate) * torch.tanh(new_cell)
                # A finished review keeps its state, so the loop's final state is the state at
                # its last real token and padding never enters it.
                hidden = torch.where(active[t], new_hidden, hidden)
                cell = torch.where(active[t], new_cell, cell)
                steps.append(hidden)
            layer_input = torch.stack(steps, dim=1)
            finals += [hidden, cell]
            if layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, p=self.dropout, training=self.training)
        return layer_input, finals


class ScratchLSTMEncoder(nn.Module):
    """Encoder wrapper giving :class:`ScratchLSTM` the recurrent-encoder interface.

    Holds the LSTM as ``self.rnn``, as ``FusedRecurrentEncoder`` does, so the two classifiers'
    state dicts have the same keys.
    """

    def __init__(self, *, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.rnn = ScratchLSTM(
            input_dim, hidden_dim, num_layers, dropout if num_layers > 1 else 0.0
        )

    def forward(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        """Top-layer state at each review's last real token, ``[B, hidden_dim]``."""
        _, finals = self.rnn(embedded, lengths)
        return finals[-2]

    def final_state(self, embedded: Tensor, lengths: Tensor) -> list[Tensor]:
        """Every layer's ``h`` and ``c`` at each review's last real token, ``[B, H]`` each."""
        return self.rnn(embedded, lengths)[1]


# The lstm's layout, so the lstm's declared size and cost.
_COSTS = ClassifierCosts("lstm")


@register_model(
    description="LSTM with a hand-written cell (Python loop over steps), no fused kernel",
    recurrent=True, family="classic", training="gradient", param_count=_COSTS.param_count,
    flops_per_token=_COSTS.flops_per_token, state_size=_COSTS.state_size,
)
def lstm_scratch(
    *,
    vocab_size: int,
    pad_index: int,
    embedding_dim: int = EMBEDDING_DIM,
    hidden_dim: int = HIDDEN_DIM,
    num_layers: int = NUM_LAYERS,
    dropout: float = DROPOUT,
) -> RecurrentClassifier:
    """The lstm classifier over :class:`ScratchLSTM`; same defaults, unidirectional."""
    encoder = ScratchLSTMEncoder(
        input_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout
    )
    return RecurrentClassifier(
        vocab_size=vocab_size, pad_index=pad_index, encoder=encoder, dropout=dropout
    )
