"""The selective state-space block of Mamba-1 (Gu & Dao 2023, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces", arXiv 2312.00752), its S6 layer on the shared scan.

The block (section 3.4, figure 3), from the normed input ``x`` of width ``D`` to width ``E``::

    u, z   = Linear(x) split in two                       (no bias; E channels each)
    u      = SiLU(Conv1D(u))                              (causal, depthwise, width 4)
    Delta  = softplus(Linear_dt(Linear_r(u)))             (rank R = ceil(D / 16), then E)
    B, C   = Linear_B(u), Linear_C(u)                     (N = 16 each: the selection)
    h_t    = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t   (per channel, N states; A = -exp(A_log))
    y_t    = C_t . h_t + D_skip * u_t
    out    = Linear(y * SiLU(z))                          (no bias)

``A_log`` starts at ``log(1..N)`` (S4D-real), ``D_skip`` at 1, and ``Delta``'s bias so that
``softplus`` of it is log-uniform in ``[0.001, 0.1]``: the reference implementation's
initialisation (state-spaces/mamba, ``mamba_simple.py`` and ``selective_scan_ref``; read, no code
copied). The recurrence is :func:`models.scan.linear_scan` over ``[B, T, E, N]``.

Padding: at a padded step ``Delta`` is 0 (the state is carried unchanged: ``exp(0) = 1`` and no
input) and the convolution's inputs are zeroed, so the state at the last step of a padded batch is
each sequence's state at its own last real step. The block has no MLP; the carried state per
layer is ``h`` (``E * N``) and the convolution's last 3 inputs (``3 * E``). ``E`` is the
configured ``hidden_dim`` (the paper's expansion 2 is ``hidden_dim = 2 * embedding_dim``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.blocks import CausalConv1d, LayerCost, real_steps, register_block
from models.scan import linear_scan

__all__ = ["CONV_WIDTH", "STATE_DIM", "SelectiveSSM"]

STATE_DIM = 16  # N
CONV_WIDTH = 4
DT_MIN, DT_MAX = 1e-3, 1e-1


def dt_rank(dim: int) -> int:
    """The rank of ``Delta``'s projection: ``ceil(D / 16)``, the paper's."""
    return math.ceil(dim / 16)


class SelectiveSSM(nn.Module):
    """Mamba's block as a residual branch, ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, dim: int, inner: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.scan_method = scan_method
        rank = dt_rank(dim)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv = CausalConv1d(inner, CONV_WIDTH)
        self.x_proj = nn.Linear(inner, rank + 2 * STATE_DIM, bias=False)
        self.dt_proj = nn.Linear(rank, inner)
        dt = torch.exp(torch.rand(inner) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, STATE_DIM + 1.0)).repeat(inner, 1))
        self.d_skip = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def _states(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        """``h [B, T, E, N]``, ``C [B, T, N]``, ``u`` and ``z [B, T, E]``, the conv's input."""
        real = real_steps(lengths, x.shape[1], x.device)
        u, z = self.in_proj(x).chunk(2, dim=-1)
        conv_input = u * real
        u = F.silu(self.conv(conv_input))
        low_rank, b, c = self.x_proj(u).split([self.dt_proj.in_features, STATE_DIM, STATE_DIM], -1)
        delta = F.softplus(self.dt_proj(low_rank)) * real  # [B, T, E]; 0 at padding
        a = torch.exp(delta.unsqueeze(-1) * -torch.exp(self.a_log))  # [B, T, E, N]
        drive = (delta * u).unsqueeze(-1) * b.unsqueeze(2)
        return linear_scan(a, drive, method=self.scan_method), c, u, z, conv_input

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h, c, u, z, _ = self._states(x, lengths)
        y = torch.einsum("bten,btn->bte", h, c) + self.d_skip * u
        return self.out_proj(y * F.silu(z))

    def final_state(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """``h`` after the last step ``[B, E, N]`` (at padding it is carried unchanged, so this is
        the state at each sequence's last real step), and the convolution's window there."""
        h, _, _, _, conv_input = self._states(x, lengths)
        return [h[:, -1], self.conv.window(conv_input, lengths)]

    @staticmethod
    def cost(dim: int, inner: int) -> LayerCost:
        """The projections (in, x, dt, out), the convolution, ``A_log`` and ``D``; FLOPs of the
        projections and convolution, and per state the discretisation (``Delta A``, ``Delta B u``),
        the scan's multiply-add and the read-out ``C . h``: 6 per state."""
        rank, n = dt_rank(dim), STATE_DIM
        matmuls = 2 * dim * inner + inner * (rank + 2 * n) + rank * inner + inner * dim
        params = (matmuls + inner + CausalConv1d.param_count(inner, CONV_WIDTH)
                  + inner * n + inner)  # fmt: skip
        flops = 2.0 * matmuls + 2.0 * CONV_WIDTH * inner + 6.0 * inner * n
        return LayerCost(params=params, flops=flops, state=inner * n + (CONV_WIDTH - 1) * inner)


register_block(
    "mamba", title="Mamba-1 selective SSM (Gu & Dao 2023) in its residual blocks",
    mixer=SelectiveSSM, layer_cost=SelectiveSSM.cost, mlp=None, mlp_cost=None,
)
