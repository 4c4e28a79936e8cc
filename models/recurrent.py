"""The shared recurrent classifier and its fused (PyTorch-kernel) encoder.

``RecurrentClassifier``: embedding -> dropout -> recurrent encoder -> dropout -> one linear logit.
The encoder reads the top layer's state at each review's last real token; padding never reaches
the recurrence. Two exact ways to keep it out, chosen by measurement (DESIGN.md, and
``tests/benchmarks/test_bench_models.py``):

``padded``
    Run the fused kernel on the right-padded batch. The forward direction is read at position
    ``length - 1``: the padding comes after it, so it cannot influence it. The backward direction
    runs on each review reversed *within its own length* (position ``t < length`` takes token
    ``length - 1 - t``; padding stays at the end), so it too starts at the review's last real token
    and is read at ``length - 1``. Stacked bidirectional layers are composed from unidirectional
    fused calls: layer ``k + 1`` reads the forward outputs next to the backward outputs re-reversed
    into the original order.
``packed``
    ``pack_padded_sequence(enforce_sorted=False)`` through the native (multi-layer, bidirectional)
    module, reading its final hidden state.

Both modes use the same parameters, those of one native ``nn.RNN``/``nn.LSTM``/``nn.GRU``, so the
state dict is PyTorch's own layout and a checkpoint loads into either mode. The padded path's
per-layer, per-direction calls go through ``torch.lstm``/``torch.gru``/``torch.rnn_tanh``: the same
fused ATen kernels that ``nn.LSTM.forward`` dispatches to, applied to that layer's weight slice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.base import TextClassifier

__all__ = [
    "AUTO_PADDING_MODE",
    "CELLS",
    "GATES",
    "PADDING_MODES",
    "READOUTS",
    "ClassifierCosts",
    "FusedRecurrentEncoder",
    "RecurrentClassifier",
    "gather_last",
    "pool_over_time",
    "recurrent_flops_per_token",
    "recurrent_param_count",
    "reverse_index",
    "reverse_within_lengths",
]

CELLS = ("rnn", "lstm", "gru")
#: H-wide affine maps per step of each cell: LSTM i, f, g, o; GRU r, z, n; tanh RNN one. The one
#: table both the parameter count and the FLOPs below read.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
PADDING_MODES = ("auto", "padded", "packed")
#: What ``padding_mode="auto"`` means per device type: the faster exact mode, as measured.
#: CPU: ``padded``. Measured (torch 2.13 CPU, 64 x 250 IMDb-like lengths, forward + backward,
#: denormals flushed): packing is ~10x slower for an LSTM, ~2.8x for a GRU and ~9x for a BiLSTM. On
#: CPU a padded LSTM runs as one oneDNN kernel per layer, while packed input falls back to ATen's
#: step-by-step cell over a batch that shrinks at each step (a GRU runs step by step in both modes,
#: hence its smaller gap).
#: CUDA: ``packed``, reasoned and not yet measured: cuDNN handles variable lengths natively and
#: fuses both directions and all layers in one call, whereas the padded bidirectional path issues
#: per-layer, per-direction kernels plus gathers. ``python -m bench.gpu_check`` measures both modes
#: on a GPU and says whether this entry agrees with the measurement.
AUTO_PADDING_MODE = {"cpu": "padded", "cuda": "packed"}
# How the encoder turns the top layer's outputs into one feature vector per review: the state at
# the last real token (the notebook's readout), or the max / mean over the real time steps
# (Johnson & Zhang 2016 pool over time). Pooling reads every real step and never the padding.
READOUTS = ("last", "max", "mean")

_MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# Signature shared by the three ops: (input, hx, params, has_biases, num_layers, dropout, train,
# bidirectional, batch_first); lstm's hx is an (h, c) pair and it returns (output, h, c).
_FUSED_OPS = {"rnn": torch.rnn_tanh, "lstm": torch.lstm, "gru": torch.gru}


def _layer_shapes(
    input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool
) -> list[tuple[int, int]]:
    """(layer input size, directions) per stacked layer: a layer above the first reads the
    concatenated directions of the one below."""
    directions = 2 if bidirectional else 1
    return [(input_dim if layer == 0 else hidden_dim * directions, directions)
            for layer in range(num_layers)]  # fmt: skip


def recurrent_param_count(
    cell: str, *, input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool
) -> int:
    """Trainable parameters of PyTorch's stacked ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (and of the
    hand-written LSTM, which has the same layout).

    Per layer and direction: ``W_ih`` (G*H x I), ``W_hh`` (G*H x H) and both biases (2 x G*H).
    """
    gates = GATES[cell]
    return sum(
        directions * gates * hidden_dim * (layer_input + hidden_dim + 2)
        for layer_input, directions in _layer_shapes(input_dim, hidden_dim, num_layers, bidirectional)
    )


def recurrent_flops_per_token(
    cell: str, *, input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool
) -> float:
    """Forward FLOPs per token of a stacked recurrent layer.

    Derivation: each step of each layer and direction computes its G gates as
    ``W_ih @ x_t + W_hh @ h_{t-1}`` (shapes G*H x I and G*H x H), i.e. G*H*(I + H) multiply-adds,
    which are 2*G*H*(I + H) FLOPs. The element-wise gate arithmetic (sigmoids, tanh, the cell
    update: about 10*H for an LSTM) is under 1% of that at the sizes benchmarked here and is left
    out, as are the biases.
    """
    gates = GATES[cell]
    return float(sum(
        directions * 2 * gates * hidden_dim * (layer_input + hidden_dim)
        for layer_input, directions in _layer_shapes(input_dim, hidden_dim, num_layers, bidirectional)
    ))  # fmt: skip


@dataclass(frozen=True)
class ClassifierCosts:
    """Declared size and cost of a :class:`RecurrentClassifier`, for ``register_model``.

    ``param_count`` and ``flops_per_token`` read the builder's hyperparameters ``embedding_dim``,
    ``hidden_dim`` and ``num_layers``; ``hidden_dim_of`` maps them to the hidden size the
    recurrence really has (a parameter-matched variant solves its own).

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        bidirectional: whether both directions run.
        hidden_dim_of: the recurrence's hidden size from the hyperparameters.
    """

    cell: str
    bidirectional: bool = False
    hidden_dim_of: Callable[[Mapping[str, Any]], int] | None = None

    def _shape(self, hp: Mapping[str, Any]) -> dict[str, Any]:
        hidden = self.hidden_dim_of(hp) if self.hidden_dim_of is not None else hp["hidden_dim"]
        return {"input_dim": hp["embedding_dim"], "hidden_dim": hidden,
                "num_layers": hp["num_layers"], "bidirectional": self.bidirectional}  # fmt: skip

    def _head_inputs(self, hp: Mapping[str, Any]) -> int:
        shape = self._shape(hp)
        return shape["hidden_dim"] * (2 if self.bidirectional else 1)

    def param_count(self, vocab_size: int, hp: Mapping[str, Any]) -> int:
        """Embedding, recurrence and the one-logit head (weights and bias)."""
        return (vocab_size * hp["embedding_dim"] + recurrent_param_count(self.cell, **self._shape(hp))
                + self._head_inputs(hp) + 1)  # fmt: skip

    def flops_per_token(self, hp: Mapping[str, Any]) -> float:
        """The recurrence, plus the head counted as if applied at every token.

        The head runs once per review, so this overcounts by under 0.1% on reviews of a few
        hundred tokens; an embedding lookup costs no multiply-adds.
        """
        return recurrent_flops_per_token(self.cell, **self._shape(hp)) + 2.0 * self._head_inputs(hp)

    def state_size(self, hp: Mapping[str, Any]) -> int:
        """Floats carried per sequence: ``h`` (and an LSTM's ``c``) of every layer and direction."""
        shape = self._shape(hp)
        per_direction = shape["hidden_dim"] * (2 if self.cell == "lstm" else 1)
        return per_direction * shape["num_layers"] * (2 if self.bidirectional else 1)


def reverse_index(lengths: Tensor, max_time: int, device: torch.device) -> Tensor:
    """Index ``[B, T]`` reversing each row within its own length; padding positions map to themselves.

    Built on the host from CPU ``lengths`` (no device sync), once per batch. The map is its own
    inverse, so the same index re-reverses the backward outputs.
    """
    steps = torch.arange(max_time)
    lengths_col = lengths.unsqueeze(1)
    index = torch.where(steps < lengths_col, lengths_col - 1 - steps, steps)
    return index.to(device, non_blocking=True)


def reverse_within_lengths(sequences: Tensor, index: Tensor) -> Tensor:
    """Reorder ``sequences [B, T, D]`` along time by ``index [B, T]`` (from :func:`reverse_index`)."""
    return sequences.gather(1, index.unsqueeze(2).expand_as(sequences))


def gather_last(outputs: Tensor, last_index: Tensor) -> Tensor:
    """``outputs[b, last_index[b]]`` for ``outputs [B, T, H]``: each review's last real step."""
    index = last_index.view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
    return outputs.gather(1, index).squeeze(1)


def pool_over_time(outputs: Tensor, lengths: Tensor, readout: str) -> Tensor:
    """Max or mean of ``outputs [B, T, H]`` over each review's first ``lengths[b]`` steps.

    The steps a review holds need not be in reading order (a backward direction's outputs are in
    within-length reversed order): pooling does not depend on order, only on which steps are real.
    """
    real = (torch.arange(outputs.shape[1], device=outputs.device).unsqueeze(0)
            < lengths.to(outputs.device, non_blocking=True).unsqueeze(1)).unsqueeze(2)
    if readout == "max":
        return outputs.masked_fill(~real, float("-inf")).amax(dim=1)
    if readout == "mean":
        total = outputs.masked_fill(~real, 0.0).sum(dim=1)
        return total / lengths.to(outputs.device, outputs.dtype).unsqueeze(1)
    raise ValueError(f"unknown readout {readout!r}; expected one of {', '.join(READOUTS)}")


class FusedRecurrentEncoder(nn.Module):
    """RNN (tanh), LSTM or GRU encoder over PyTorch's fused kernels, exact under right padding.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        input_dim: size of each input vector (the embedding dimension).
        hidden_dim: hidden size per direction.
        num_layers: stacked layers.
        bidirectional: add a backward direction and concatenate the two final states.
        dropout: dropout between stacked layers (as ``nn.LSTM``'s ``dropout``).
        padding_mode: ``"padded"``, ``"packed"`` or ``"auto"`` (see :meth:`resolve_padding_mode`).
            A plain attribute: it can be changed on a built model, since both modes share weights.
        readout: ``"last"`` (each direction's state at the review's last real token), ``"max"`` or
            ``"mean"`` (each direction's outputs pooled over the real steps; see :data:`READOUTS`).
    """

    def __init__(
        self,
        cell: str,
        *,
        input_dim: int,
        hidden_dim: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        padding_mode: str = "auto",
        readout: str = "last",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; expected one of {', '.join(READOUTS)}")
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"unknown padding_mode {padding_mode!r}; expected one of {', '.join(PADDING_MODES)}"
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.cell = cell
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.output_dim = hidden_dim * (2 if bidirectional else 1)
        self.padding_mode = padding_mode
        self.readout = readout
        # Inter-layer dropout only exists between layers; nn.RNNBase warns when given it for one.
        self.layer_dropout = dropout if num_layers > 1 else 0.0
        self.rnn = _MODULES[cell](
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=self.layer_dropout,
        )

    def resolve_padding_mode(self, device: torch.device) -> str:
        """The exact mode to use on ``device``: the configured one, or :data:`AUTO_PADDING_MODE`'s."""
        if self.padding_mode != "auto":
            return self.padding_mode
        return AUTO_PADDING_MODE.get(device.type, "padded")

    def forward(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        """Features ``[B, output_dim]`` at each review's last real token.

        Args:
            embedded: right-padded inputs ``[B, T, input_dim]``.
            lengths: CPU int64 real lengths ``[B]``, each in ``[1, T]``.
        """
        if self.resolve_padding_mode(embedded.device) == "packed":
            return self._forward_packed(embedded, lengths)
        return self._forward_padded(embedded, lengths)

    def final_state(self, embedded: Tensor, lengths: Tensor) -> list[Tensor]:
        """What the recurrence carries past each review's last real token: ``h`` (and an LSTM's
        ``c``) of every layer and direction, ``[B, H]`` each (the backward direction's is its
        state after the first token). Read from the packed run, which stops at each length."""
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)
        carried = hidden if self.cell == "lstm" else (hidden,)
        return [state for tensor in carried for state in tensor.unbind(0)]

    def _forward_packed(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        if self.readout != "last":
            # Unpacked in the batch's order; both directions side by side at each real step.
            padded_outputs, _ = pad_packed_sequence(outputs, batch_first=True)
            return pool_over_time(padded_outputs, lengths, self.readout)
        # h_n [num_layers * directions, B, H], already back in the batch's order; with packing it
        # is each direction's state at its last real step (for backward: after the first token).
        final = hidden[0] if self.cell == "lstm" else hidden
        if self.bidirectional:
            return torch.cat([final[-2], final[-1]], dim=1)
        return final[-1]

    def _forward_padded(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        last_index = (lengths - 1).to(embedded.device, non_blocking=True)
        if not self.bidirectional:
            # One multi-layer fused call; the padding trails the position we read.
            outputs, _ = self.rnn(embedded)
            return self._read(outputs, lengths, last_index)

        index = reverse_index(lengths, embedded.shape[1], embedded.device)
        layer_input = embedded
        for layer in range(self.num_layers - 1):
            forward_out, backward_out = self._run_bidirectional_layer(layer_input, layer, index)
            # The next layer sees both directions at each original position.
            layer_input = torch.cat(
                [forward_out, reverse_within_lengths(backward_out, index)], dim=2
            )
            layer_input = F.dropout(layer_input, p=self.layer_dropout, training=self.training)
        forward_out, backward_out = self._run_bidirectional_layer(
            layer_input, self.num_layers - 1, index
        )
        # In reversed coordinates position length-1 is the state after the review's first token.
        return torch.cat(
            [self._read(forward_out, lengths, last_index),
             self._read(backward_out, lengths, last_index)], dim=1
        )

    def _read(self, outputs: Tensor, lengths: Tensor, last_index: Tensor) -> Tensor:
        """One direction's features: its state at ``last_index`` or its pool over real steps."""
        if self.readout == "last":
            return gather_last(outputs, last_index)
        return pool_over_time(outputs, lengths, self.readout)

    def _run_bidirectional_layer(
        self, inputs: Tensor, layer: int, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Forward outputs in original order, backward outputs in within-length reversed order."""
        forward_out = self._run_direction(inputs, layer, reverse=False)
        backward_out = self._run_direction(
            reverse_within_lengths(inputs, index), layer, reverse=True
        )
        return forward_out, backward_out

    def _run_direction(self, inputs: Tensor, layer: int, *, reverse: bool) -> Tensor:
        """One layer, one direction, through the fused kernel with that slice of the weights."""
        suffix = f"_l{layer}_reverse" if reverse else f"_l{layer}"
        params = [
            getattr(self.rnn, f"{kind}{suffix}")
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
        h0 = inputs.new_zeros(1, inputs.shape[0], self.hidden_dim)
        # Flags: has_biases, num_layers=1, dropout=0 (applied between layers by the caller),
        # train, bidirectional=False, batch_first=True.
        if self.cell == "lstm":
            outputs, _, _ = torch.lstm(
                inputs, (h0, h0), params, True, 1, 0.0, self.training, False, True
            )
        else:
            outputs, _ = _FUSED_OPS[self.cell](
                inputs, h0, params, True, 1, 0.0, self.training, False, True
            )
        return outputs


class RecurrentClassifier(TextClassifier):
    """Embedding -> dropout -> recurrent encoder -> dropout -> ``Linear(encoder.output_dim, 1)``.

    The recurrent part is any encoder module with ``input_dim``, ``output_dim`` and
    ``forward(embedded [B, T, input_dim], lengths [B]) -> [B, output_dim]`` reading each review at
    its last real token, and ``final_state(embedded, lengths) -> list[Tensor]`` (the state it
    carries past that token): :class:`FusedRecurrentEncoder` (rnn/lstm/gru, uni- or bidirectional) or
    the hand-written LSTM of ``models.lstm_scratch``. Use :meth:`fused` for the former.

    Args:
        vocab_size: number of token ids; ids lie in ``[0, vocab_size)``.
        pad_index: the padding id; its embedding is fixed at zero.
        encoder: the recurrent encoder.
        dropout: dropout on the embeddings and on the encoder's features.
    """

    def __init__(
        self, *, vocab_size: int, pad_index: int, encoder: nn.Module, dropout: float
    ) -> None:
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        self.embedding = nn.Embedding(vocab_size, encoder.input_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.output_dim, 1)

    @classmethod
    def fused(
        cls,
        cell: str,
        *,
        vocab_size: int,
        pad_index: int,
        embedding_dim: int,
        hidden_dim: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        padding_mode: str = "auto",
        readout: str = "last",
    ) -> RecurrentClassifier:
        """A classifier over a :class:`FusedRecurrentEncoder` of ``cell``."""
        encoder = FusedRecurrentEncoder(
            cell,
            input_dim=embedding_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            padding_mode=padding_mode,
            readout=readout,
        )
        return cls(vocab_size=vocab_size, pad_index=pad_index, encoder=encoder, dropout=dropout)

    def final_state(self, tokens: Tensor, lengths: Tensor) -> list[Tensor]:
        """The encoder's carried state past each review's last real token, ``[B, ...]`` each
        (what the declared ``state_size`` counts)."""
        return self.encoder.final_state(self.embedding(tokens), lengths)

    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``[B]`` of a validated batch."""
        embedded = self.dropout(self.embedding(tokens))
        features = self.encoder(embedded, lengths)
        return self.classifier(self.dropout(features)).squeeze(1)
