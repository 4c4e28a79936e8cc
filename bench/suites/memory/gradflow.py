"""Gradient flow: how strongly does the loss reach back to a token ``d`` steps before the readout?

For one batch and one model, :func:`embedding_gradient_norms` measures the norm of the gradient of
the loss (binary cross-entropy on the logits, the batch mean, as the trainer computes it) with
respect to the embedding vector of each real time step, and averages it, per distance from the
readout (``d = length - 1 - t``), over the sequences that reach that distance. A vanishing
gradient shows as a straight line falling on a log scale; :func:`decay_per` fits that line and
says by what factor the gradient shrinks per 50 steps. :func:`probe_run` does both for a finished
run, at its own starting point (the weights its seed gave it) and with its selected checkpoint.

The probe runs on the CPU in float32, in evaluation mode (no dropout), and leaves the model as it
found it: its weights, their ``.grad``, its training mode, and no hook behind. It differentiates
with respect to the embedding's *output* only (``torch.autograd.grad``), so no parameter gradient
is computed or accumulated, and no optimizer is involved.

The results of a folder's probes are one JSON file, ``gradient_flow.json`` (schema and reader in
:mod:`bench.results.records`, so the report reads it without torch)::

    payload = gradient_flow_payload([probe_run(run_dir, record, batch), ...])
    write_gradient_flow(results_dir, payload)
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench.predict import PredictError, load_trained_run
from bench.results.records import (
    GRADIENT_FLOW_NAME,
    GRADIENT_FLOW_SCHEMA,
    read_gradient_flow,
    task_facts,
    task_of,
    validate_gradient_flow,
    write_gradient_flow,
)
from bench.run.execute import initial_model
from data_pipeline import EncodedSplit, Vocab
from data_pipeline.memory import load_label

__all__ = [
    "FLOOR",
    "GRADIENT_FLOW_NAME",
    "SPAN",
    "GradientProfile",
    "ProbeBatch",
    "ProbeError",
    "decay_per",
    "embedding_gradient_norms",
    "find_embedding",
    "gradient_flow_payload",
    "imdb_probe_batch",
    "probe_run",
    "read_gradient_flow",
    "sequence_probe_batch",
    "write_gradient_flow",
]

#: Distance over which :func:`decay_per` states the decay, in time steps.
SPAN = 50

#: The smallest gradient norm the probe reports: float32's smallest normal number (about
#: 1.2e-38). Below it float32 arithmetic keeps only a few bits (denormals) or none (a process that
#: flushes denormals, as runs do, ``train.flush_denormal``, computes zero), so a norm there says
#: only "at most this much"; it is stored as the floor, whatever the process's setting, and left
#: out of the decay fit.
FLOOR = float(np.finfo(np.float32).tiny)


class ProbeError(ValueError):
    """A probe that cannot be made: a batch that cannot be drawn, a model without an embedding, a
    run that cannot be loaded. The message says what is wrong and what to do."""


@dataclass(frozen=True)
class GradientProfile:
    """The gradient norm per distance from the readout.

    Attributes:
        distance: int64 ``[D]``, ``0 .. L``, L the longest distance in the batch (its longest
            sequence's length minus one).
        grad_norm: float64 ``[D]``, the mean over the sequences that reach each distance of the
            Euclidean norm of the loss gradient with respect to that step's embedding vector;
            never below :data:`FLOOR`.
        count: int64 ``[D]``, how many sequences reach each distance (a sequence of length n
            reaches ``0 .. n - 1``).
    """

    distance: np.ndarray
    grad_norm: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict[str, list[Any]]:
        """The profile as ``gradient_flow.json`` keeps it (plain lists)."""
        return {"distance": [int(d) for d in self.distance],
                "grad_norm": [float(g) for g in self.grad_norm],
                "count": [int(c) for c in self.count]}  # fmt: skip


@dataclass(frozen=True)
class ProbeBatch:
    """The fixed batch a probe runs on.

    Attributes:
        tokens: int64 ``[n, T]``, right-padded to the longest sequence.
        lengths: int64 ``[n]``, on the CPU, each in ``[1, T]``.
        labels: float32 ``[n]``, 0 or 1.
        index: int64 ``[n]``, each sequence's position in its split.
    """

    tokens: Tensor
    lengths: Tensor
    labels: Tensor
    index: Tensor

    def __len__(self) -> int:
        return len(self.index)


def find_embedding(model: nn.Module) -> nn.Embedding:
    """The model's one :class:`torch.nn.Embedding`, where its inputs become vectors.

    Every gradient-trained model of the registry has exactly one; a model with none (a
    self-fitting one) or several has no single "input embedding" to probe, and raises
    :class:`ProbeError`.
    """
    found = [module for module in model.modules() if isinstance(module, nn.Embedding)]
    if len(found) != 1:
        raise ProbeError(
            f"the gradient-flow probe needs a model with exactly one nn.Embedding; "
            f"{type(model).__name__} has {len(found)}: probe gradient-trained models only"
        )
    return found[0]


def embedding_gradient_norms(
    model: nn.Module, tokens: Tensor, lengths: Tensor, labels: Tensor
) -> GradientProfile:
    """The norm of the loss gradient with respect to each real step's embedding, per distance.

    The loss is the batch mean of binary cross-entropy on the logits (the trainer's loss). A
    forward hook on the model's embedding (:func:`find_embedding`) replaces its output by a leaf
    tensor, the one thing differentiated; padding positions are ignored (the models keep padding
    out of the recurrence, so their gradient is zero anyway). The model runs in evaluation mode
    (no dropout) and is handed back in the mode, with the weights and ``.grad``, it came with.

    Because the loss is the batch mean, each sequence's gradient carries a factor 1/n: norms
    compare within a batch size, and the decay (a ratio) does not depend on it.

    Args:
        model: a classifier with the contract ``forward(tokens, lengths) -> logits [B]``.
        tokens: int ``[B, T]``, right-padded; moved to the model's device.
        lengths: int ``[B]`` on the CPU, each in ``[1, T]``.
        labels: ``[B]``, 0 or 1.

    Raises:
        ProbeError: the model has no single embedding, or its forward pass uses it more than once.
    """
    embedding = find_embedding(model)
    device = embedding.weight.device
    captured: list[Tensor] = []

    def capture(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        # A leaf cut from the embedding's weight: the gradient stops here, so the probe computes
        # nothing for the parameters and touches no .grad.
        leaf = output.detach().float().requires_grad_(True)
        captured.append(leaf)
        return leaf

    # Each module's own mode, restored one by one: a caller may have put parts in eval mode.
    modes = [(module, module.training) for module in model.modules()]
    handle = embedding.register_forward_hook(capture)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(tokens.to(device), lengths.cpu())
            loss = F.binary_cross_entropy_with_logits(
                logits.float(), labels.to(device, torch.float32), reduction="mean"
            )
            if len(captured) != 1:
                raise ProbeError(f"the model's embedding ran {len(captured)} times in one forward "
                                 "pass; the probe needs it to embed the batch once")
            (grads,) = torch.autograd.grad(loss, captured)
    finally:
        handle.remove()
        for module, training in modes:
            module.training = training
    # Norms in float64: squaring float32 gradients below ~1e-19 would underflow to zero.
    norms = grads.detach().double().norm(dim=2).cpu().numpy()  # [B, T'] (T' = longest length)
    lengths_np = lengths.cpu().numpy().astype(np.int64)
    distances = lengths_np[:, None] - 1 - np.arange(norms.shape[1])[None, :]
    real = distances >= 0
    longest = int(lengths_np.max()) - 1
    count = np.bincount(distances[real], minlength=longest + 1)
    total = np.bincount(distances[real], weights=norms[real], minlength=longest + 1)
    return GradientProfile(
        distance=np.arange(longest + 1, dtype=np.int64),
        grad_norm=np.maximum(total / count, FLOOR),
        count=count.astype(np.int64),
    )


def decay_per(profile: GradientProfile, span: int = SPAN, *, fit_until: int | None = None) -> float:
    """The factor by which the gradient norm shrinks per ``span`` steps of distance.

    A least-squares line through ``ln(grad_norm)`` against distance, over distances 0 to
    ``fit_until`` (by default half the longest distance, L // 2), gives the slope s; the result
    is ``exp(s * span)``. Below 1 the gradient decays (0.5: it halves every ``span`` steps), above
    1 it grows.

    Why only the near half: a bidirectional model's backward direction reads the sequence from its
    other end, so for tokens near the start its path to the readout is short and its gradient
    large; past the middle that path, not the forward direction's, dominates, and a fit over the
    whole range would mix the two. The near half measures the forward direction, for every model.

    Norms at :data:`FLOOR` are censored (the true value is at most the floor) and left out of the
    fit. If only distance 0 is above it, the gradient vanished within one step: 0.0. If none is
    (no gradient reaches even the last token), the decay is undefined: NaN.

    Raises:
        ProbeError: the fitted range holds fewer than two distances.
    """
    until = int(profile.distance.max()) // 2 if fit_until is None else fit_until
    in_range = profile.distance <= until
    if int(in_range.sum()) < 2:
        raise ProbeError(f"fitting a decay needs at least two distances up to {until}; the profile "
                         f"has {int(in_range.sum())}: probe longer sequences")
    usable = in_range & (profile.grad_norm > FLOOR)
    if not usable.any():
        return math.nan
    if int(usable.sum()) == 1:
        return 0.0
    slope = np.polyfit(profile.distance[usable].astype(np.float64),
                       np.log(profile.grad_norm[usable]), 1)[0]  # fmt: skip
    return float(np.exp(slope * span))


def _checked_labels(split: EncodedSplit, index: Tensor) -> Tensor:
    labels = split.labels[index]
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ProbeError(f"the {split.name} split's labels are not all 0 or 1: the probe needs a "
                         "labelled split (the loss needs the label)")
    return labels.to(torch.float32)


def imdb_probe_batch(split: EncodedSplit, length: int = 250, n: int = 64) -> ProbeBatch:
    """The first ``n`` sequences of ``split`` (in split order) with at least ``length`` tokens,
    each cut to exactly ``length``: no padding, and every distance 0 .. length-1 reached by all.

    Meant for IMDb's test split (reviews of varied length, several thousand over 250 tokens);
    deterministic, so two runs with the same data probe the same reviews.

    Raises:
        ProbeError: ``length`` < 2 or ``n`` < 1, or fewer than ``n`` sequences are long enough
            (the message says how many are, and the longest).
    """
    if length < 2 or n < 1:
        raise ProbeError(f"the probe needs length >= 2 and n >= 1, got length {length}, n {n}")
    lengths = split.lengths
    long_enough = torch.nonzero(lengths >= length).flatten()
    if len(long_enough) < n:
        longest = int(lengths.max()) if len(lengths) else 0
        raise ProbeError(
            f"the {split.name} split has {len(long_enough)} sequences of at least {length} tokens "
            f"(its longest has {longest}), fewer than the {n} the probe needs: probe shorter "
            f"sequences or fewer of them, or encode the data with max_len >= {length}"
        )
    index = long_enough[:n]
    tokens, _ = split.pad(index, Vocab.pad_index)
    return ProbeBatch(tokens[:, :length].contiguous(), torch.full((n,), length, dtype=torch.long),
                      _checked_labels(split, index), index)  # fmt: skip


def sequence_probe_batch(split: EncodedSplit, n: int = 64, *, pad_index: int = Vocab.pad_index) -> ProbeBatch:
    """The first ``n`` sequences of ``split`` as they are, right-padded with ``pad_index`` (a
    generated task's sequences differ in length; the profile averages each distance over the
    sequences that reach it).

    Raises:
        ProbeError: ``n`` < 1, or the split has fewer than ``n`` sequences (it says how many).
    """
    if n < 1:
        raise ProbeError(f"the probe needs n >= 1 sequences, got {n}")
    if len(split) < n:
        raise ProbeError(f"the {split.name} split has {len(split)} sequences, fewer than the {n} "
                         "the probe needs: probe fewer")
    index = torch.arange(n)
    tokens, lengths = split.pad(index, pad_index)
    return ProbeBatch(tokens, lengths, _checked_labels(split, index), index)


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Hand back Python's, NumPy's and torch's generators as they were: loading a run and
    rebuilding its starting point draw from them and reseed them, which must not change what the
    caller draws next."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng():
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _setting(record: dict[str, Any], batch: ProbeBatch) -> str:
    """Short prose for the batch, for tables: a memory task's distance and load, else the
    sequences' length."""
    data = (record.get("spec") or {}).get("data") or {}
    if data.get("distance") is not None:
        return f"T = {data['distance']}, load {load_label(data['alphabet'], data['n_signals'])}"
    example = str(task_facts(record).get("example") or "sequence")
    low, high = int(batch.lengths.min()), int(batch.lengths.max())
    return f"{high}-token {example}s" if low == high else f"{example}s of {low}-{high} tokens"


def _profile_block(profile: GradientProfile, span: int) -> dict[str, Any]:
    return {**profile.to_dict(), "decay_per_span": decay_per(profile, span)}


def probe_run(run_dir: Path, record: dict[str, Any], batch: ProbeBatch, *, span: int = SPAN) -> dict[str, Any]:
    """The gradient-flow probe of one finished run, as one entry of ``gradient_flow.json``.

    Two profiles on ``batch``: ``init``, the model the run started from (its architecture and
    hyperparameters, built with its seed exactly as the executor built it,
    :func:`bench.run.execute.initial_model`), and ``trained``, the run's selected checkpoint. Both
    on the CPU, in float32.

    Args:
        run_dir: the run's folder (``<out>/runs/<run_id>``), with its checkpoint, vocabulary and
            config (a run made with ``--records-only`` kept none and cannot be probed).
        record: the run's parsed ``record.json``.
        batch: drawn from the run's own data (its vocabulary): :func:`imdb_probe_batch` or
            :func:`sequence_probe_batch` of its test split.
        span: the distance :func:`decay_per` states the decay over.

    Returns:
        ``{"task", "arch", "run_id", "seed", "setting", "distance_T", "alphabet", "n_signals",
        "sequences", "init": {...}, "trained": {...}}``; each profile holds ``distance``,
        ``grad_norm``, ``count`` and ``decay_per_span``; ``trained`` also ``epochs`` (the
        selected epoch, the training its weights had) and ``test_accuracy``. ``distance_T``,
        ``alphabet`` and ``n_signals`` are the task's settings of those names (a memory task's),
        null for a task without them.

    Raises:
        ProbeError: the run failed, ``run_dir`` is not the record's folder or cannot be loaded,
            the batch's tokens are outside the run's vocabulary, or the model cannot be probed.
    """
    run_dir = Path(run_dir)
    if record.get("status") != "ok":
        raise ProbeError(f"run {record.get('run_id')} did not succeed; only finished runs are probed")
    if run_dir.name != record["run_id"]:
        raise ProbeError(f"{run_dir} is not the folder of run {record['run_id']}: give "
                         f"<out>/runs/{record['run_id']}")
    # Building a model draws from the generators (the checkpoint's skeleton, the start's seed).
    with _random_state_kept():
        try:
            trained = load_trained_run(run_dir)
        except PredictError as exc:
            raise ProbeError(str(exc)) from None
        vocab_size = len(trained.vocab)
        if int(batch.tokens.max()) >= vocab_size or int(batch.tokens.min()) < 0:
            raise ProbeError(f"the batch's token ids reach {int(batch.tokens.max())}, outside run "
                             f"{record['run_id']}'s vocabulary of {vocab_size}: draw the batch "
                             "from the run's own data (its task settings)")
        start = initial_model(trained.spec, vocab_size, trained.vocab.pad_index)
    data = (record.get("spec") or {}).get("data") or {}
    metrics = record.get("metrics") or {}
    probe_args = (batch.tokens, batch.lengths, batch.labels)
    return {
        "task": task_of(record),
        "arch": record["arch"],
        "run_id": record["run_id"],
        "seed": record["seed"],
        "setting": _setting(record, batch),
        "distance_T": data.get("distance"),
        "alphabet": data.get("alphabet"),
        "n_signals": data.get("n_signals"),
        "sequences": len(batch),
        "init": _profile_block(embedding_gradient_norms(start, *probe_args), span),
        "trained": {
            **_profile_block(embedding_gradient_norms(trained.model, *probe_args), span),
            "epochs": metrics.get("best_epoch"),
            "test_accuracy": metrics.get("test_accuracy"),
        },
    }


def gradient_flow_payload(
    probes: Sequence[dict[str, Any]], *, span: int = SPAN,
    left_out: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The ``gradient_flow.json`` payload of ``probes`` (each from :func:`probe_run` with the
    same ``span``) and of the runs ``left_out`` (run id, why), checked against the schema."""
    payload: dict[str, Any] = {"schema": GRADIENT_FLOW_SCHEMA, "span": span, "probes": list(probes)}
    if left_out:
        payload["left_out"] = [{"run_id": run_id, "reason": reason} for run_id, reason in left_out]
    return validate_gradient_flow(payload)
