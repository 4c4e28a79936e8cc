"""The residual classifier the modern recurrences run in, and the parts their blocks share.

The classic four are one recurrent layer stack read at the last real token
(:class:`models.recurrent.RecurrentClassifier`). The parallel-trainable recurrences are evaluated
by their papers inside pre-norm residual blocks, and that is how they run here::

    x = embedding(tokens)
    for each layer:   x = x + mixer(norm(x))          # the recurrence, in its paper's block
                      x = x + mlp(norm(x))            # where the paper's block has one
    features = readout(norm(x))                       # the last real step, or max over real steps
    logit = Linear(features)

Every part is causal or per-token (norms, MLPs, causal convolutions, the scan of
:mod:`models.scan`), so right padding never reaches a real step, and the last real step is read
at ``length - 1`` as for the classic models (:func:`models.recurrent.gather_last`).

A mixer is an ``nn.Module`` with ``forward(x [B, T, D], lengths [B]) -> [B, T, D]`` and
``final_state(x, lengths) -> list[Tensor]``: the tensors it carries from one step to the next at
each sequence's last real step, ``[B, ...]`` each (what the declared ``state_size`` counts).

:class:`BlockCosts` declares each registration's parameter count, FLOPs and state size from the
same per-layer figures the mixer class states, so a registration is a few lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.base import TextClassifier
from models.recurrent import gather_last, pool_over_time

__all__ = [
    "MLP_EXPANSION",
    "BlockCosts",
    "CausalConv1d",
    "GatedMLP",
    "LayerCost",
    "lecun_normal_",
    "Mlp",
    "ResidualClassifier",
    "real_steps",
    "register_block",
]

#: Hidden width of a block's MLP as a multiple of the model width (the Transformer's 4).
MLP_EXPANSION = 4


def real_steps(lengths: Tensor, max_time: int, device: torch.device) -> Tensor:
    """Bool ``[B, T, 1]``: True at each sequence's real steps, False at its padding."""
    steps = torch.arange(max_time, device=device).unsqueeze(0)
    return (steps < lengths.to(device, non_blocking=True).unsqueeze(1)).unsqueeze(2)


class CausalConv1d(nn.Module):
    """Depthwise convolution over time that sees only the present and the ``kernel - 1`` steps
    before it (left zero padding): step ``t``'s output never reads a step after ``t``.

    Its carried state is the last ``kernel - 1`` inputs of each sequence's real steps.
    """

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(width, width, kernel, groups=width, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, T, W] -> [B, T, W]``."""
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self.conv(padded).transpose(1, 2)

    def window(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``[B, kernel - 1, W]``: each sequence's last ``kernel - 1`` real inputs (zeros before
        its first), the state a step-by-step run would hold after its last real step."""
        padded = F.pad(x, (0, 0, self.kernel - 1, 0))
        offsets = torch.arange(self.kernel - 1, device=lengths.device)
        index = (lengths.unsqueeze(1) + offsets.unsqueeze(0)).to(x.device)  # shifted by the pad
        return padded.gather(1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))

    @staticmethod
    def param_count(width: int, kernel: int) -> int:
        return width * kernel + width


class Mlp(nn.Module):
    """``Linear(D, E*D) -> GELU -> Linear(E*D, D)``, E = :data:`MLP_EXPANSION`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.up = nn.Linear(dim, MLP_EXPANSION * dim)
        self.down = nn.Linear(MLP_EXPANSION * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.gelu(self.up(x)))

    @staticmethod
    def cost(dim: int) -> LayerCost:
        inner = MLP_EXPANSION * dim
        return LayerCost(params=2 * dim * inner + inner + dim, flops=4.0 * dim * inner)


def lecun_normal_(layer: nn.Linear | nn.Conv1d, variance_scale: float = 1.0) -> None:
    """Weights normal with variance ``variance_scale / fan_in``, bias zero: how Griffin's reference
    (google-deepmind/recurrentgemma) initialises its linear layers and, with scale 0.01 over the
    kernel width, its convolution."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, std=(variance_scale / fan_in) ** 0.5)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class GatedMLP(nn.Module):
    """Griffin's MLP block: ``Linear(D, E*D)`` twice, GeLU of one times the other, back to D
    (a GeGLU; E = 3 in the paper, De et al. 2024, section 2.1)."""

    def __init__(self, dim: int, expansion: int = 3) -> None:
        super().__init__()
        self.expansion = expansion
        self.up = nn.Linear(dim, 2 * expansion * dim)
        self.down = nn.Linear(expansion * dim, dim)
        for layer in (self.up, self.down):
            lecun_normal_(layer)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.up(x).chunk(2, dim=-1)
        return self.down(F.gelu(gate, approximate="tanh") * value)

    @staticmethod
    def cost(dim: int, expansion: int = 3) -> LayerCost:
        inner = expansion * dim
        return LayerCost(params=3 * dim * inner + 2 * inner + dim, flops=6.0 * dim * inner)


@dataclass(frozen=True)
class LayerCost:
    """One layer's trainable parameters, forward FLOPs per token and carried floats per sequence."""

    params: int
    flops: float
    state: int = 0

    def __add__(self, other: LayerCost) -> LayerCost:
        return LayerCost(self.params + other.params, self.flops + other.flops,
                         self.state + other.state)


class ResidualClassifier(TextClassifier):
    """Embedding -> ``num_layers`` pre-norm residual blocks -> norm -> readout -> one logit.

    Args:
        vocab_size, pad_index: as every model's.
        dim: the residual stream's width (the embedding dimension).
        make_mixer: ``fn() -> mixer`` (see the module docstring), one call per layer.
        num_layers: blocks.
        mlp: ``fn(dim) -> module`` for the block's MLP, or None where the paper's block has none.
        dropout: on the embeddings, each residual branch and the features.
        readout: ``"last"`` (the last real step) or ``"max"`` (max over the real steps).
    """

    def __init__(self, *, vocab_size: int, pad_index: int, dim: int,
                 make_mixer: Callable[[], nn.Module], num_layers: int,
                 mlp: Callable[[int], nn.Module] | None, dropout: float, readout: str) -> None:  # fmt: skip
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        if readout not in ("last", "max"):
            raise ValueError(f"unknown readout {readout!r}; expected last or max")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.readout = readout
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.mixer_norms = nn.ModuleList(nn.RMSNorm(dim) for _ in range(num_layers))
        self.mixers = nn.ModuleList(make_mixer() for _ in range(num_layers))
        self.mlp_norms = nn.ModuleList(nn.RMSNorm(dim) for _ in range(num_layers) if mlp)
        self.mlps = nn.ModuleList(mlp(dim) for _ in range(num_layers)) if mlp else nn.ModuleList()
        self.final_norm = nn.RMSNorm(dim)
        self.classifier = nn.Linear(dim, 1)

    def blocks(self, x: Tensor, lengths: Tensor,
               on_mixer: Callable[[int, Tensor], None] | None = None) -> Tensor:  # fmt: skip
        """The residual stream after every block and the final norm, ``[B, T, dim]``;
        ``on_mixer(layer, mixer_input)`` sees each mixer's input."""
        for layer, (norm, mixer) in enumerate(zip(self.mixer_norms, self.mixers, strict=True)):
            mixer_input = norm(x)
            if on_mixer is not None:
                on_mixer(layer, mixer_input)
            x = x + self.dropout(mixer(mixer_input, lengths))
            if self.mlps:
                x = x + self.dropout(self.mlps[layer](self.mlp_norms[layer](x)))
        return self.final_norm(x)

    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``[B]`` of a validated batch."""
        x = self.blocks(self.dropout(self.embedding(tokens)), lengths)
        if self.readout == "last":
            features = gather_last(x, (lengths - 1).to(x.device, non_blocking=True))
        else:
            features = pool_over_time(x, lengths, "max")
        return self.classifier(self.dropout(features)).squeeze(1)

    def final_state(self, tokens: Tensor, lengths: Tensor) -> list[Tensor]:
        """The tensors every layer carries past each review's last real token, ``[B, ...]`` each:
        what a step-by-step run would hold there (the declared ``state_size`` counts them).
        Call it in eval mode: in training mode the residual branches' dropout is drawn."""
        states: list[Tensor] = []

        def collect(layer: int, mixer_input: Tensor) -> None:
            states.extend(self.mixers[layer].final_state(mixer_input, lengths))

        self.blocks(self.embedding(tokens), lengths, collect)
        return states


@dataclass(frozen=True)
class BlockCosts:
    """Declared size, cost and state of a :class:`ResidualClassifier`, for ``register_model``.

    Args:
        layer: ``fn(dim, hidden) -> LayerCost`` of one mixer (``dim`` the residual width, read
            from ``embedding_dim``; ``hidden`` the recurrence's width, from ``hidden_dim``).
        mlp: ``fn(dim) -> LayerCost`` of one block's MLP, or None.
    """

    layer: Callable[[int, int], LayerCost]
    mlp: Callable[[int], LayerCost] | None = None

    def _stack(self, hp: Mapping[str, Any]) -> LayerCost:
        dim, layers = hp["embedding_dim"], hp["num_layers"]
        one = self.layer(dim, hp["hidden_dim"])
        norm = LayerCost(params=dim, flops=4.0 * dim)  # RMSNorm: a weight per channel
        block = one + norm + (self.mlp(dim) + norm if self.mlp else LayerCost(0, 0.0))
        return LayerCost(block.params * layers, block.flops * layers, block.state * layers)

    def param_count(self, vocab_size: int, hp: Mapping[str, Any]) -> int:
        """Embedding, the blocks, the final norm and the one-logit head."""
        dim = hp["embedding_dim"]
        return vocab_size * dim + self._stack(hp).params + dim + dim + 1

    def flops_per_token(self, hp: Mapping[str, Any]) -> float:
        """The blocks' matrix products (2 FLOPs a multiply-add) and the scan's few operations per
        channel, plus the head counted at every token (as for the classic models)."""
        return self._stack(hp).flops + 2.0 * hp["embedding_dim"]

    def state_size(self, hp: Mapping[str, Any]) -> int:
        """Floats each sequence carries from one step to the next, over all layers."""
        return self._stack(hp).state


#: The builders' defaults: the classic models' (``models.rnn``), so one configuration sizes both.
EMBEDDING_DIM, HIDDEN_DIM, NUM_LAYERS, DROPOUT = 100, 256, 2, 0.5


#: The readouts every modern architecture is registered with: ``NAME`` reads the last real step,
#: ``NAME_max`` max-pools over the real steps (as the classic ``*_max`` registrations do).
READOUTS = {"": ("last", "last state"), "_max": ("max", "max-pooled")}


def register_block(
    name: str,
    *,
    title: str,
    mixer: Callable[[int, int, str], nn.Module],
    layer_cost: Callable[[int, int], LayerCost],
    mlp: Callable[[int], nn.Module] | None,
    mlp_cost: Callable[[int], LayerCost] | None,
) -> None:
    """Register ``name`` and ``name_max``: a :class:`ResidualClassifier` over ``mixer``, family
    ``modern``, read at the last real step and max-pooled (:data:`READOUTS`).

    Args:
        name: registry name of the last-state model.
        title: what the model is, for the registry's one-line descriptions (the readout is added).
        mixer: ``fn(dim, hidden, scan_method) -> mixer`` for one layer.
        layer_cost: ``fn(dim, hidden) -> LayerCost`` of that mixer (parameters, FLOPs, state).
        mlp: ``fn(dim) -> module``, the block's MLP, or None where the paper's block has none.
        mlp_cost: its ``fn(dim) -> LayerCost``, None with ``mlp``.

    Max pooling adds no parameters and a few element-wise operations per token: both
    registrations declare the last-state model's costs.
    """
    costs = BlockCosts(layer_cost, mlp_cost)
    for suffix, (readout, read) in READOUTS.items():
        _register_one(name + suffix, f"{title}, {read}", mixer, mlp, costs, readout)


def _register_one(name: str, description: str, mixer: Callable[[int, int, str], nn.Module],
                  mlp: Callable[[int], nn.Module] | None, costs: BlockCosts, readout: str) -> None:  # fmt: skip
    from models.registry import register_model  # registry imports nothing from here

    def builder(
        *,
        vocab_size: int,
        pad_index: int,
        embedding_dim: int = EMBEDDING_DIM,
        hidden_dim: int = HIDDEN_DIM,
        num_layers: int = NUM_LAYERS,
        dropout: float = DROPOUT,
        scan_method: str = "auto",
    ) -> ResidualClassifier:
        return ResidualClassifier(
            vocab_size=vocab_size, pad_index=pad_index, dim=embedding_dim,
            make_mixer=lambda: mixer(embedding_dim, hidden_dim, scan_method),
            num_layers=num_layers, mlp=mlp, dropout=dropout, readout=readout,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{description}."
    register_model(
        name, description=description, recurrent=True, family="modern", training="gradient",
        param_count=costs.param_count, flops_per_token=costs.flops_per_token,
        state_size=costs.state_size,
    )(builder)
