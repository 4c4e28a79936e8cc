"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201).

Each drops the hidden state from its gates, so every gate depends on the input alone and the
recurrence becomes the linear scan ``h_t = a_t * h_{t-1} + b_t`` (:mod:`models.scan`)::

    minGRU:   z_t = sigmoid(W_z x_t)                    h~_t = g(W_h x_t)
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM:  f_t = sigmoid(W_f x_t)   i_t = sigmoid(W_i x_t)   h~_t = g(W_h x_t)
              f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)     (time-independent scale)
              h_t = f'_t * h_{t-1} + i'_t * h~_t

``g(x) = x + 0.5`` for ``x >= 0`` and ``sigmoid(x)`` below: the paper's positive activation for
its log-space form (section 3 and appendix), kept here so the models are the paper's although
the scan runs in real space. The gates are computed from their pre-activations in the stable
forms ``1 - sigmoid(u) = sigmoid(-u)`` and, for minLSTM, ``f' = sigmoid(-d)``, ``i' = sigmoid(d)``
with ``d = softplus(-u_f) - softplus(-u_i) = log(i / f)``.

A layer maps ``[B, T, D] -> [B, T, H]`` (``D`` the configured ``embedding_dim``, the residual
stream's width; ``H`` the configured ``hidden_dim``); in a block (:mod:`models.blocks`) a linear
projection takes ``H`` back to ``D``, and an MLP follows (``4 D`` wide,
:data:`models.blocks.MLP_EXPANSION`). The paper's reference code
(BorealisAI/minRNNs) was read for the activation and the normalisation; no code copied.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.blocks import LayerCost, Mlp, register_block
from models.recurrent import gather_last
from models.scan import linear_scan

__all__ = ["MinGRULayer", "MinLSTMLayer", "MinRNNMixer", "positive"]


def positive(x: Tensor) -> Tensor:
    """The paper's ``g``: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class MinGRULayer(nn.Module):
    """minGRU over ``[B, T, input_dim]``: states ``[B, T, hidden_dim]`` (``h_{-1} = 0``)."""

    GATES = 2

    def __init__(self, input_dim: int, hidden_dim: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.scan_method = scan_method
        self.to_gates = nn.Linear(input_dim, self.GATES * hidden_dim)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of the scan ``h_t = a_t h_{t-1} + b_t``."""
        update, candidate = self.to_gates(x).chunk(2, dim=-1)
        return torch.sigmoid(-update), torch.sigmoid(update) * positive(candidate)

    def forward(self, x: Tensor) -> Tensor:
        return linear_scan(*self.coefficients(x), method=self.scan_method)

    @classmethod
    def cost(cls, input_dim: int, hidden_dim: int) -> LayerCost:
        """The input projection (weights and biases), its FLOPs plus the scan's multiply-add per
        state, and the one state vector carried."""
        gates = cls.GATES * hidden_dim
        return LayerCost(params=input_dim * gates + gates,
                         flops=2.0 * input_dim * gates + 2.0 * hidden_dim, state=hidden_dim)


class MinLSTMLayer(MinGRULayer):
    """minLSTM over ``[B, T, input_dim]``: states ``[B, T, hidden_dim]`` (``h_{-1} = 0``)."""

    GATES = 3

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        forget, input_, candidate = self.to_gates(x).chunk(3, dim=-1)
        log_ratio = F.softplus(-forget) - F.softplus(-input_)  # log(i / f)
        return torch.sigmoid(-log_ratio), torch.sigmoid(log_ratio) * positive(candidate)


class MinRNNMixer(nn.Module):
    """A min-RNN layer and the projection back to the residual width: a block's mixer."""

    def __init__(self, layer: MinGRULayer, hidden_dim: int, dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.out = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.out(self.layer(x))

    def final_state(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """``h`` at each sequence's last real step, ``[B, H]``."""
        return [gather_last(self.layer(x), (lengths - 1).to(x.device))]

    @staticmethod
    def cost(layer: type[MinGRULayer], dim: int, hidden_dim: int) -> LayerCost:
        out = LayerCost(params=hidden_dim * dim + dim, flops=2.0 * hidden_dim * dim)
        return layer.cost(dim, hidden_dim) + out


register_block(
    "mingru", title="minGRU (Feng et al. 2024) in residual blocks with an MLP",
    mixer=lambda dim, hidden, method: MinRNNMixer(MinGRULayer(dim, hidden, method), hidden, dim),
    layer_cost=lambda dim, hidden: MinRNNMixer.cost(MinGRULayer, dim, hidden),
    mlp=Mlp, mlp_cost=Mlp.cost,
)
register_block(
    "minlstm", title="minLSTM (Feng et al. 2024) in residual blocks with an MLP",
    mixer=lambda dim, hidden, method: MinRNNMixer(MinLSTMLayer(dim, hidden, method), hidden, dim),
    layer_cost=lambda dim, hidden: MinRNNMixer.cost(MinLSTMLayer, dim, hidden),
    mlp=Mlp, mlp_cost=Mlp.cost,
)
