"""One trainer for every model: Adam, BCE-with-logits, clipping, selection on validation.

The trainer only relies on the model contract ``forward(tokens, lengths) -> logits[B]``; it never
asks which kind of model it holds. Loss and accuracy accumulate on the device and are read once per
epoch (and by the progress bar at most about once a second), so a GPU is never stalled per step.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.run.config import MeasureConfig, TrainConfig
from bench.run.instruments import gc_disabled, synchronize
from data_pipeline import Batch, EncodedSplit, make_batches

# The progress bar's running loss is read (a host sync on CUDA) at most this often.
_PROGRESS_INTERVAL_S = 1.0

#: Training has diverged when an epoch's mean loss (or its running mean, read with the progress
#: bar) exceeds this many times the loss of the first batch, taken before any update: chance-level
#: binary cross-entropy is ln 2 ~ 0.69, so the bound sits near 7, which no run that learns reaches
#: and a learning rate of 1e6 passes within the first epoch.
DIVERGENCE_FACTOR = 10.0


class DivergedError(RuntimeError):
    """Training diverged: the loss became NaN or infinite (``kind`` ``nan_loss``), or grew past
    the divergence bound (``kind`` ``diverged``)."""

    def __init__(self, message: str, kind: str = "nan_loss") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class EvalResult:
    """One pass over a split in evaluation mode."""

    loss: float
    accuracy: float
    probs: np.ndarray  # P(positive) per review, in split order
    labels: np.ndarray  # int8, split order
    samples_per_s: float | None  # steady state, warm-up batches excluded; None if too few batches
    time_s: float


@dataclass
class FitResult:
    """What training produced: the selected weights and how the loop went."""

    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    best_state: dict[str, torch.Tensor]
    train_time_s: float
    stop_reason: str  # "epochs", "early_stop", "target_reached" or "time_limit"
    steady_samples: int = 0
    steady_tokens: int = 0
    steady_time_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def train_samples_per_s(self) -> float | None:
        return self.steady_samples / self.steady_time_s if self.steady_time_s > 0 else None

    @property
    def train_tokens_per_s(self) -> float | None:
        return self.steady_tokens / self.steady_time_s if self.steady_time_s > 0 else None


def _to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Lengths stay on the CPU: packing wants them there, and models validate them there without a
    # device sync.
    non_blocking = device.type == "cuda"
    return (
        batch.tokens.to(device, non_blocking=non_blocking),
        batch.lengths,
        batch.labels.to(device, non_blocking=non_blocking),
    )


@dataclass
class _SteadyWindow:
    """Samples, tokens and seconds of the timed (post-warm-up) training batches, over all epochs."""

    samples: int = 0
    tokens: int = 0
    time_s: float = 0.0


class Trainer:
    """Fits a model on a training split, selects on validation, evaluates any split."""

    def __init__(
        self,
        model: nn.Module,
        train_config: TrainConfig,
        measure_config: MeasureConfig,
        device: torch.device,
        *,
        pad_index: int,
        progress: bool = True,
        log_epochs: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model = model.to(device)
        self.cfg = train_config
        self.measure = measure_config
        self.device = device
        self.pad_index = pad_index
        self.progress = progress
        self.log_epochs = log_epochs  # one line per epoch even without progress bars
        #: What a user must know about the timings (a split too small to warm up), said once each.
        self.timing_notes: list[str] = []
        self.clock = clock
        self.loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._first_loss: torch.Tensor | None = None  # per-sample loss of fit's first batch
        self.optimizer = torch.optim.Adam(params, lr=train_config.lr, weight_decay=train_config.weight_decay)
        self._params = params

    def _autocast(self) -> torch.autocast:
        enabled = self.cfg.bf16 and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns (summed loss, number correct) as device tensors."""
        with self._autocast():
            logits = self.model(tokens, lengths)
        loss = self.loss_fn(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / labels.shape[0]).backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self._params, self.cfg.grad_clip)
        self.optimizer.step()
        correct = ((logits.detach() > 0) == (labels > 0.5)).sum()
        return loss.detach(), correct

    def fit(self, train: EncodedSplit, val: EncodedSplit, *, seed: int, desc: str = "") -> FitResult:
        """Train for up to ``epochs`` epochs with early stopping on validation loss, or until
        validation accuracy reaches ``target_accuracy`` when that is set."""
        cfg = self.cfg
        history: list[dict[str, float]] = []
        best_loss = math.inf
        best_epoch = 0
        best_state = copy.deepcopy(self.model.state_dict())
        stale = 0
        stop_reason = "epochs"
        steady = _SteadyWindow()
        self._first_loss = None
        self._check_step_size()
        start = self.clock()
        deadline = start + cfg.max_time_s if cfg.max_time_s > 0 else math.inf

        for epoch in range(1, cfg.epochs + 1):
            epoch_start = self.clock()
            train_loss, train_accuracy, timed_out = self._train_epoch(
                train, epoch, seed=seed, desc=desc, deadline=deadline, steady=steady
            )
            self._check_loss(train_loss, epoch)
            val_result = self.evaluate(val, desc=f"{desc}validate")
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_accuracy": train_accuracy,
                    "val_loss": val_result.loss,
                    "val_accuracy": val_result.accuracy,
                    "epoch_time_s": self.clock() - epoch_start,
                }
            )
            self._log_epoch(history[-1], desc)
            if val_result.loss < best_loss:
                best_loss, best_epoch, stale = val_result.loss, epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                stale += 1
            if timed_out:
                stop_reason = "time_limit"
                break
            if 0 < cfg.target_accuracy <= val_result.accuracy:
                stop_reason = "target_reached"
                break
            if stale >= cfg.patience and epoch < cfg.epochs:
                stop_reason = "early_stop"
                break

        return FitResult(
            history=history,
            best_epoch=best_epoch,
            epochs_run=len(history),
            best_state=best_state,
            train_time_s=self.clock() - start,
            stop_reason=stop_reason,
            steady_samples=steady.samples,
            steady_tokens=steady.tokens,
            steady_time_s=steady.time_s,
        )

    def _train_epoch(
        self, train: EncodedSplit, epoch: int, *, seed: int, desc: str, deadline: float,
        steady: _SteadyWindow,
    ) -> tuple[float, float, bool]:
        """One pass over shuffled training batches; (mean loss, accuracy, stopped at the deadline).

        The batches after the warm-up are timed into ``steady`` (throughput excludes warm-up).
        """
        cfg = self.cfg
        epoch_start = self.clock()
        batches = make_batches(
            train, cfg.batch_size, pad_index=self.pad_index, shuffle=True, seed=seed * 100_003 + epoch
        )
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        warmup = min(self.measure.warmup_batches, max(len(batches) - 1, 0))
        self._note_cold("training", train.name, len(batches), self.measure.warmup_batches,
                        cfg.batch_size, "train.batch_size")
        window_start: float | None = None
        window_samples = window_tokens = 0
        bar = tqdm(
            total=len(batches), desc=f"{desc}epoch {epoch}/{cfg.epochs}", unit="batch",
            leave=False, disable=not self.progress, file=sys.stderr, dynamic_ncols=True,
        )
        last_report = self.clock()
        timed_out = False
        with gc_disabled():
            for i, batch in enumerate(batches):
                if i == warmup:
                    synchronize(self.device)
                    window_start = self.clock()
                tokens, lengths, labels = _to_device(batch, self.device)
                loss, correct = self.train_step(tokens, lengths, labels)
                if self._first_loss is None:  # kept on the device: read where the loss is read
                    self._first_loss = loss / len(batch.lengths)
                loss_sum += loss
                correct_sum += correct
                seen += len(batch.lengths)
                if window_start is not None:
                    window_samples += len(batch.lengths)
                    window_tokens += int(batch.lengths.sum())
                now = self.clock()
                bar.update(1)
                if now - last_report >= _PROGRESS_INTERVAL_S:
                    elapsed = now - epoch_start
                    running_loss = loss_sum.item() / seen
                    self._check_loss(running_loss, epoch)  # a long epoch stops when it diverges
                    bar.set_postfix(loss=f"{running_loss:.4f}", samples_s=f"{seen / elapsed:,.0f}")
                    last_report = now
                if now > deadline:
                    timed_out = True
                    break
            synchronize(self.device)
            if window_start is not None and window_samples:
                steady.time_s += self.clock() - window_start
                steady.samples += window_samples
                steady.tokens += window_tokens
        bar.close()
        return loss_sum.item() / max(seen, 1), correct_sum.item() / max(seen, 1), timed_out

    def _check_step_size(self) -> None:
        """Raise :class:`DivergedError` if Adam's first step cannot even be represented: it moves
        each weight by up to lr / (1 - beta1), and past the weights' float range torch raises an
        overflow error from inside the optimizer instead of training."""
        beta1 = self.optimizer.param_groups[0]["betas"][0]
        dtypes = {p.dtype for p in self._params}
        largest = min((torch.finfo(d).max for d in dtypes if d.is_floating_point), default=math.inf)
        if self.cfg.lr / (1 - beta1) > largest:
            raise DivergedError(
                f"train.lr {self.cfg.lr:g} makes Adam's first step ({self.cfg.lr / (1 - beta1):.3g}) "
                f"larger than the weights' largest value ({largest:.3g}); lower train.lr", "diverged",
            )

    def _check_loss(self, mean_loss: float, epoch: int) -> None:
        """Raise :class:`DivergedError` if the mean training loss is NaN/infinite or exceeds
        :data:`DIVERGENCE_FACTOR` times the first batch's loss."""
        if not math.isfinite(mean_loss):
            raise DivergedError(f"training loss became {mean_loss} in epoch {epoch}", "nan_loss")
        first = self._first_loss.item() if self._first_loss is not None else math.nan
        if math.isfinite(first) and mean_loss > DIVERGENCE_FACTOR * first:
            raise DivergedError(
                f"training loss {mean_loss:.4g} in epoch {epoch} exceeds {DIVERGENCE_FACTOR:g}x "
                f"the first batch's {first:.4g}; lower train.lr", "diverged",
            )

    def _log_epoch(self, entry: dict[str, float], desc: str) -> None:
        """One line per epoch when progress is shown or epochs are logged."""
        if self.progress or self.log_epochs:
            tqdm.write(
                f"    {desc}epoch {entry['epoch']}/{self.cfg.epochs}: train loss {entry['train_loss']:.4f} "
                f"acc {entry['train_accuracy']:.2%}, validation loss {entry['val_loss']:.4f} "
                f"acc {entry['val_accuracy']:.2%} ({entry['epoch_time_s']:.0f} s)",
                file=sys.stderr,
            )

    def _note_cold(self, what: str, split: str, n_batches: int, warmup: int, batch_size: int,
                   setting: str) -> None:
        """Say once (stderr and :attr:`timing_notes`) when ``split`` makes too few batches to leave
        the configured ``warmup`` batches out of its timing (one is always timed): its
        throughput then includes the cold first batch, or comes after a shorter warm-up."""
        if n_batches > warmup or not n_batches:
            return
        made = f"the {split} split makes {n_batches} batch(es) of {batch_size} samples"
        if n_batches == 1:
            note = (f"{what} throughput includes the cold first batch: {made}, so none of the "
                    f"{warmup} warm-up batch(es) could be left out of the timing")
        else:
            note = (f"{what} throughput is timed after {n_batches - 1} warm-up batch(es), not "
                    f"the {warmup} configured: {made}")
        note += f"; lower {setting} for a steady-state figure"
        if note not in self.timing_notes:
            self.timing_notes.append(note)
            print(f"    note: {note}", file=sys.stderr)

    @torch.inference_mode()
    def evaluate(self, split: EncodedSplit, *, desc: str = "evaluate", measured: bool = False) -> EvalResult:
        """One evaluation-mode pass in deterministic order; probabilities come back in split order.

        ``measured``: this pass's throughput is the one a record reports (the test pass), so a
        split too small to warm up is noted (:attr:`timing_notes`).
        """
        self.model.eval()
        batches = make_batches(split, self.cfg.eval_batch_size, pad_index=self.pad_index, shuffle=False)
        if measured:
            self._note_cold("inference", split.name, len(batches), self.measure.infer_warmup_batches,
                            self.cfg.eval_batch_size, "train.eval_batch_size")
        loss_sum = torch.zeros((), device=self.device)
        probs_parts: list[torch.Tensor] = []
        warmup = min(self.measure.infer_warmup_batches, max(len(batches) - 1, 0))
        window_start: float | None = None
        window_samples = 0
        start = self.clock()
        with gc_disabled():
            for i, batch in enumerate(
                tqdm(batches, desc=desc, unit="batch", leave=False, disable=not self.progress, file=sys.stderr)
            ):
                if i == warmup:
                    synchronize(self.device)
                    window_start = self.clock()
                tokens, lengths, labels = _to_device(batch, self.device)
                with self._autocast():
                    logits = self.model(tokens, lengths).float()
                loss_sum += self.loss_fn(logits, labels)
                probs_parts.append(torch.sigmoid(logits))
                if window_start is not None:
                    window_samples += len(batch.lengths)
            synchronize(self.device)
            end = self.clock()
        probs_sorted = torch.cat(probs_parts).cpu()
        order = torch.cat([b.index for b in batches])
        probs = torch.empty(len(split), dtype=torch.float32)
        probs[order] = probs_sorted
        labels_np = split.labels.numpy().astype(np.int8)
        probs_np = probs.numpy()
        accuracy = float(((probs_np > 0.5).astype(np.int8) == labels_np).mean()) if len(split) else math.nan
        window_time = end - window_start if window_start is not None else 0.0
        return EvalResult(
            loss=loss_sum.item() / max(len(split), 1),
            accuracy=accuracy,
            probs=probs_np,
            labels=labels_np,
            samples_per_s=window_samples / window_time if window_time > 0 and window_samples else None,
            time_s=end - start,
        )

