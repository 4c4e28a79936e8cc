"""RG-LRU in Hawk's blocks (De et al. 2024, "Griffin: Mixing Gated Linear Recurrences with Local
Attention for Efficient Language Models", arXiv 2402.19427; Hawk is its all-recurrent model).

The Real-Gated Linear Recurrent Unit (section 2.4), per channel::

    r_t = sigmoid(W_a x_t + b_a)               (recurrence gate)
    i_t = sigmoid(W_x x_t + b_x)               (input gate)
    a_t = a^(c r_t),  a = sigmoid(Lambda) in log space: log a_t = -c * softplus(-Lambda) * r_t
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)          (c = 8)

with ``W_a`` and ``W_x`` block-diagonal (heads of at most :data:`HEAD_WIDTH` channels) and ``a``
drawn with its square uniform in ``[0.9^2, 0.999^2]``, as the reference implementation
(google-deepmind/recurrentgemma's torch layers; read, no code copied) initialises it. As there,
the normalisation is 1 at the first step (the state before it is zero), and the derivative of its
square root is bounded (by :data:`MAX_SQRT_GRADIENT`), which keeps a gate near 1 from sending an
unbounded gradient.

Sized by the configuration: the residual stream is ``embedding_dim`` wide and the RG-LRU
(``width`` here) ``hidden_dim``; Griffin makes the latter about 4/3 of the former.

The recurrent block (figure 2): two branches from the normed input, ``GeLU(Linear(x))`` and
``RG-LRU(Conv1D(Linear(x)))`` (a causal depthwise convolution of width 4), multiplied, then
``Linear`` back to the residual width; each residual block also has the gated MLP (GeGLU,
expansion 3). The carried state per layer: ``h`` and the convolution's last 3 inputs,
``4 * hidden_dim`` floats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.blocks import CausalConv1d, GatedMLP, LayerCost, lecun_normal_, register_block
from models.recurrent import gather_last
from models.scan import linear_scan

__all__ = ["HEAD_WIDTH", "BlockDiagonalLinear", "HawkMixer", "RGLRU"]

GATE_POWER = 8.0  # the paper's c
CONV_WIDTH = 4
HEAD_WIDTH = 64  # the widest block of the gates' block-diagonal weights
A_MIN, A_MAX = 0.9, 0.999
MAX_SQRT_GRADIENT = 1000.0


class _BoundedSqrt(torch.autograd.Function):
    """``sqrt(x)``, its derivative ``1 / (2 sqrt(x))`` capped at :data:`MAX_SQRT_GRADIENT`."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad / torch.sqrt(torch.clamp(4.0 * x, min=1.0 / MAX_SQRT_GRADIENT**2))


def heads_for(width: int) -> int:
    """The fewest heads, each dividing ``width`` evenly, no wider than :data:`HEAD_WIDTH`."""
    return next(h for h in range(1, width + 1) if width % h == 0 and width // h <= HEAD_WIDTH)


class BlockDiagonalLinear(nn.Module):
    """``width -> width`` with ``heads`` independent square blocks, and a bias."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        block = width // heads
        self.weight = nn.Parameter(torch.randn(heads, block, block) / math.sqrt(block))
        self.bias = nn.Parameter(torch.zeros(heads, block))

    def forward(self, x: Tensor) -> Tensor:
        blocks = x.unflatten(-1, (self.heads, -1))
        return (torch.einsum("...hi,hij->...hj", blocks, self.weight) + self.bias).flatten(-2)

    @staticmethod
    def param_count(width: int, heads: int) -> int:
        return width * width // heads + width


class RGLRU(nn.Module):
    """The RG-LRU over ``[B, T, width]``: states ``[B, T, width]``."""

    def __init__(self, width: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.scan_method = scan_method
        heads = heads_for(width)
        self.input_gate = BlockDiagonalLinear(width, heads)
        self.recurrence_gate = BlockDiagonalLinear(width, heads)
        # softplus(-Lambda) = -log a for a uniform on the ring [A_MIN, A_MAX] (squared radius uniform).
        log_a = 0.5 * torch.log(torch.empty(width).uniform_(A_MIN**2, A_MAX**2))
        self.a_param = nn.Parameter(-torch.log(torch.expm1(-log_a)))

    def forward(self, x: Tensor) -> Tensor:
        log_a = -GATE_POWER * torch.sigmoid(self.recurrence_gate(x)) * F.softplus(-self.a_param)
        a = torch.exp(log_a)
        # sqrt(1 - a^2) from log a: -expm1(2 log a) keeps it exact near a = 1.
        multiplier = _BoundedSqrt.apply(-torch.expm1(2 * log_a))
        multiplier = torch.cat([torch.ones_like(multiplier[:, :1]), multiplier[:, 1:]], dim=1)
        return linear_scan(a, multiplier * torch.sigmoid(self.input_gate(x)) * x,
                           method=self.scan_method)  # fmt: skip

    @staticmethod
    def cost(width: int) -> LayerCost:
        """Both gates (block-diagonal), ``Lambda``; their FLOPs and the scan's multiply-add."""
        heads = heads_for(width)
        return LayerCost(params=2 * BlockDiagonalLinear.param_count(width, heads) + width,
                         flops=4.0 * width * width / heads + 2.0 * width, state=width)


class HawkMixer(nn.Module):
    """Hawk's recurrent block: ``Linear(GeLU branch * RG-LRU(Conv1D branch))``."""

    def __init__(self, dim: int, width: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.gate_branch = nn.Linear(dim, width)
        self.recurrent_branch = nn.Linear(dim, width)
        self.conv = CausalConv1d(width, CONV_WIDTH)
        self.rg_lru = RGLRU(width, scan_method)
        self.out = nn.Linear(width, dim)
        # The reference's initialisation: linears normal with variance 1 / fan-in (the output's
        # scale is 2 / layers there; 1 here, its value at two layers), the convolution 0.01 / width.
        for layer in (self.gate_branch, self.recurrent_branch, self.out):
            lecun_normal_(layer)
        lecun_normal_(self.conv.conv, variance_scale=0.01)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        recurrent = self.rg_lru(self.conv(self.recurrent_branch(x)))
        return self.out(F.gelu(self.gate_branch(x), approximate="tanh") * recurrent)

    def final_state(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """``h`` at each sequence's last real step ``[B, width]``, and the convolution's window
        there ``[B, 3, width]``."""
        conv_input = self.recurrent_branch(x)
        h = self.rg_lru(self.conv(conv_input))
        return [gather_last(h, (lengths - 1).to(x.device)), self.conv.window(conv_input, lengths)]

    @staticmethod
    def cost(dim: int, width: int) -> LayerCost:
        linears = LayerCost(params=3 * dim * width + 2 * width + dim, flops=6.0 * dim * width)
        conv = LayerCost(params=CausalConv1d.param_count(width, CONV_WIDTH),
                         flops=2.0 * CONV_WIDTH * width, state=(CONV_WIDTH - 1) * width)
        return linears + conv + RGLRU.cost(width)


register_block(
    "hawk", title="RG-LRU in Hawk's blocks (De et al. 2024), gated MLP",
    mixer=HawkMixer, layer_cost=HawkMixer.cost, mlp=GatedMLP, mlp_cost=GatedMLP.cost,
)
