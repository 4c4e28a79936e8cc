"""LRU, the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences", arXiv 2303.06349).

A complex diagonal linear recurrence with the paper's three ingredients (section 3)::

    lambda = exp(-exp(nu) + i exp(theta))                    (exponential parameterisation)
    h_t    = lambda * h_{t-1} + gamma * (B x_t)              (gamma = sqrt(1 - |lambda|^2))
    y_t    = Re(C h_t) + D * x_t

``nu`` and ``theta`` initialised so that ``lambda`` is uniform by area on the ring
``[r_min, r_max]`` (``|lambda|^2`` uniform) with its phase uniform in ``[0, max_phase]``: r_min
0.9 and r_max 0.999, the paper's ring for its long-range tasks, and max phase 2 pi, its reference
code's default (the narrower phase the paper gives its hardest task is not used); ``gamma`` is a
parameter initialised at its normalising value;
``B`` and ``C`` complex Glorot-like. The block is the paper's (figure 1): the LRU, a GELU, then a
gated linear unit, ``Linear(y) * sigmoid(Linear(y))``, as the residual branch; no separate MLP.
The recurrence runs on :func:`models.scan.linear_scan` in complex64. The state is ``N`` complex
numbers per layer, ``2 N`` floats, ``N`` the configured ``hidden_dim``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.blocks import LayerCost, register_block
from models.recurrent import gather_last
from models.scan import linear_scan

__all__ = ["LRU", "LRUMixer"]

R_MIN, R_MAX, MAX_PHASE = 0.9, 0.999, 2 * math.pi


class LRU(nn.Module):
    """The recurrence ``[B, T, dim] -> [B, T, dim]`` and its complex states ``[B, T, N]``."""

    def __init__(self, dim: int, state: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.scan_method = scan_method
        u1, u2 = torch.rand(state), torch.rand(state)
        radius_squared = u1 * (R_MAX**2 - R_MIN**2) + R_MIN**2
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(radius_squared)))
        self.theta_log = nn.Parameter(torch.log(MAX_PHASE * u2))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - radius_squared)))
        scale_b, scale_c = 1 / math.sqrt(2 * dim), 1 / math.sqrt(state)
        self.b_re = nn.Parameter(torch.randn(state, dim) * scale_b)
        self.b_im = nn.Parameter(torch.randn(state, dim) * scale_b)
        self.c_re = nn.Parameter(torch.randn(dim, state) * scale_c)
        self.c_im = nn.Parameter(torch.randn(dim, state) * scale_c)
        self.d = nn.Parameter(torch.randn(dim))

    def gate(self) -> Tensor:
        """``lambda``, complex ``[N]``, every magnitude in (0, 1)."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def states(self, x: Tensor) -> Tensor:
        """``h [B, T, N]``, complex64."""
        gamma = torch.exp(self.gamma_log)
        # float32 parts: a complex tensor has no bf16 form (and autocast may give bf16 products)
        drive = torch.complex(F.linear(x, self.b_re * gamma[:, None]).float(),
                              F.linear(x, self.b_im * gamma[:, None]).float())  # fmt: skip
        gates = self.gate().expand_as(drive)
        return linear_scan(gates, drive, method=self.scan_method)

    def forward(self, x: Tensor) -> Tensor:
        h = self.states(x)
        return F.linear(h.real, self.c_re) - F.linear(h.imag, self.c_im) + self.d * x

    @staticmethod
    def cost(dim: int, state: int) -> LayerCost:
        """``nu``, ``theta``, ``gamma`` (N each), complex B and C, D; the products with B and C
        (real and imaginary parts), the complex multiply-add of the scan (8 FLOPs) and ``D x``."""
        return LayerCost(params=3 * state + 4 * state * dim + dim,
                         flops=8.0 * state * dim + 8.0 * state + 2.0 * dim, state=2 * state)


class LRUMixer(nn.Module):
    """The paper's residual branch: LRU -> GELU -> gated linear unit."""

    def __init__(self, dim: int, state: int, scan_method: str = "auto") -> None:
        super().__init__()
        self.lru = LRU(dim, state, scan_method)
        self.glu_value = nn.Linear(dim, dim)
        self.glu_gate = nn.Linear(dim, dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        y = F.gelu(self.lru(x))
        return self.glu_value(y) * torch.sigmoid(self.glu_gate(y))

    def final_state(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """``h`` at each sequence's last real step, complex ``[B, N]``."""
        return [gather_last(self.lru.states(x), (lengths - 1).to(x.device))]

    @staticmethod
    def cost(dim: int, state: int) -> LayerCost:
        glu = LayerCost(params=2 * (dim * dim + dim), flops=4.0 * dim * dim)
        return LRU.cost(dim, state) + glu


register_block(
    "lru", title="LRU (Orvieto et al. 2023), complex diagonal, in its residual blocks",
    mixer=LRUMixer, layer_cost=LRUMixer.cost, mlp=None, mlp_cost=None,
)
