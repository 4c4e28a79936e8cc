"""Measure one architecture at one point: training step and inference, memory, kernels.

Timing discipline as in :mod:`bench.run.instruments`: warm-up repetitions are not counted, CUDA
work is synchronised at the edges of each timed phase, the garbage collector is off while timing.
A training repetition is timed in three phases (forward with the loss, backward, the optimizer
step with clipping) whose sum is the step; the model, loss, optimizer and clipping are the shared
trainer's. A point's repetitions are spread over the suite's rounds, one visit a round, a
process's first after the point's warm-up (:class:`PointRun`), so that a slow spell of the
machine falls on every point a little rather than on a few entirely. Each figure is the median
of the repetitions with a distribution-free interval (:func:`summarize_times`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.run.execute import error_of
from bench.run.instruments import gc_disabled, synchronize
from bench.run.trainer import Trainer
from bench.suites.cost.peak import held_tensors, phase_peak
from bench.suites.cost.plan import CostPoint, CostSeries

#: Timed repetitions of inference at batch 1, where the p95 latency is read: 72 is the fewest
#: whose slowest bounds a 95th percentile at 95% (0.95**72 <= 0.025); a report shows no p95 from
#: fewer (:func:`reports.stats.reps_to_bound_quantile`). Points measured before 2026-12-03 took 30.
LATENCY_REPS = 72
#: Operators whose name says they are a recurrence kernel (oneDNN's, ATen's, cuDNN's).
RECURRENCE_OP = re.compile(r"rnn|lstm|gru", re.IGNORECASE)
#: The coverage every timing interval reaches (:func:`summarize_times`).
INTERVAL_LEVEL = 0.95
#: Operators listed per phase, by self time.
TOP_OPS = 6

Inputs = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (tokens, lengths, labels)


def _coverage(n: int, k: int) -> float:
    """P(x_(k) <= median <= x_(n+1-k)) for n draws of a continuous distribution."""
    return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2.0**n


def summarize_times(times_ms: Sequence[float], level: float = INTERVAL_LEVEL) -> dict[str, Any]:
    """The median of ``times_ms`` and the narrowest order-statistic interval around it that
    covers the median with probability >= ``level`` (the widest, [min, max], when there are too
    few repetitions; ``coverage`` says what it reaches). Its ends are measured times, so it
    never goes below zero."""
    ordered = sorted(float(t) for t in times_ms)
    n = len(ordered)
    k = 1
    while k + 1 <= n // 2 and _coverage(n, k + 1) >= level:
        k += 1
    return {"median": statistics.median(ordered), "low": max(0.0, ordered[k - 1]),
            "high": ordered[n - k], "coverage": _coverage(n, k), "times": list(map(float, times_ms))}


@dataclass
class ArchBench:
    """One architecture ready to be measured: its (untrained) model in the shared trainer."""

    arch: str
    trainer: Trainer
    device: torch.device
    vocab_size: int
    pad_index: int
    flops_per_token: float | None
    self_fit: bool
    series: CostSeries
    matmul_flops_per_s: float | None
    task_inputs: Inputs = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        return self.trainer.model


def random_inputs(bench: ArchBench, batch: int, length: int, seed: int = 0) -> Inputs:
    """One batch of ``batch`` sequences of exactly ``length`` tokens (never the padding id)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, bench.vocab_size - 1, (batch, length), generator=gen)
    tokens = tokens + (tokens >= bench.pad_index).long()  # skip the padding id
    labels = torch.randint(0, 2, (batch,), generator=gen).float()
    lengths = torch.full((batch,), length, dtype=torch.long)
    return [(tokens.to(bench.device), lengths, labels.to(bench.device))]


def _train_rep(bench: ArchBench, inputs: Inputs) -> tuple[float, float, float]:
    """One training repetition over ``inputs``: (forward, backward, optimizer) seconds."""
    trainer, device, clock = bench.trainer, bench.device, time.perf_counter
    phases = [0.0, 0.0, 0.0]
    for tokens, lengths, labels in inputs:
        start = clock()
        with trainer._autocast():
            logits = trainer.model(tokens, lengths)
        loss = trainer.loss_fn(logits.float(), labels) / labels.shape[0]
        synchronize(device)
        forward_end = clock()
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        synchronize(device)
        backward_end = clock()
        if trainer.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(trainer._params, trainer.cfg.grad_clip)
        trainer.optimizer.step()
        synchronize(device)
        phases[0] += forward_end - start
        phases[1] += backward_end - forward_end
        phases[2] += clock() - backward_end
    return phases[0], phases[1], phases[2]


def _infer_rep(bench: ArchBench, inputs: Inputs) -> None:
    with torch.inference_mode():
        for tokens, lengths, _ in inputs:
            bench.model(tokens, lengths)
    synchronize(bench.device)


def _rates(step_ms: dict[str, Any], inputs: Inputs) -> dict[str, float]:
    samples = sum(int(lengths.shape[0]) for _, lengths, _ in inputs)
    tokens = sum(int(lengths.sum()) for _, lengths, _ in inputs)
    rep_s = step_ms["median"] * len(inputs) / 1e3
    return {"samples_per_s": samples / rep_s, "tokens_per_s": tokens / rep_s}


def _oom(phase: dict[str, Any] | None) -> bool:
    return (phase or {}).get("status") == "oom"


@dataclass
class PointRun:
    """One point measured over the suite's rounds (:func:`bench.suites.cost.series.run_points`).

    Each :meth:`visit` times one training repetition and one inference repetition
    (``latency_visit`` of them at batch 1); a process's first visit runs the warm-up, and the
    very first also counts the peak memory of each phase and, at the task's point, reads the
    kernels. The rounds may be split over several processes (sittings): :meth:`state` and
    :meth:`absorb` carry a point from one to the next. A point out of memory or failed is
    visited no more: its outcome is a result. :meth:`measured` summarises the visits.
    """

    bench: ArchBench
    point: CostPoint
    inputs: Inputs
    latency_visit: int = 1
    train_ms: list[tuple[float, float, float]] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    train: dict[str, Any] | None = None
    infer: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    found: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None
    #: Visits made in this process (the first warms up; a later sitting starts again at 0).
    visits: int = 0

    #: What a sitting hands the next (:meth:`state`, :meth:`absorb`).
    CARRIED = ("train_ms", "infer_ms", "train", "infer", "error", "found", "fit")

    def state(self) -> dict[str, Any]:
        """Everything measured so far, to continue in another process (:meth:`absorb`)."""
        return {key: getattr(self, key) for key in self.CARRIED}

    def absorb(self, state: dict[str, Any]) -> None:
        """Continue from an earlier sitting's :meth:`state`: its times, its peaks and kernels
        (counted once, in the first sitting), its outcome."""
        for key in self.CARRIED:
            setattr(self, key, state[key])

    @property
    def ended(self) -> bool:
        return self.error is not None or _oom(self.train) or _oom(self.infer)

    @property
    def batch_one(self) -> bool:
        return all(int(lengths.shape[0]) == 1 for _, lengths, _ in self.inputs)

    def visit(self) -> None:
        """One round's repetitions of this point (nothing once it has ended): the first visit
        of a process warms up, the first of all also counts the peaks and reads the kernels."""
        if self.ended:
            return
        warm, count = self.visits == 0, self.infer is None
        self.visits += 1
        if not self.bench.self_fit:
            phase, self.error = guarded(lambda: self._visit_train(warm, count))
            if count or phase is None or _oom(phase):  # later visits add times only
                self.train = phase
            if self.ended:
                return
        phase, self.error = guarded(lambda: self._visit_infer(warm, count))
        if count or phase is None or _oom(phase):
            self.infer = phase
        if count and not self.ended and self.point.axis == "task":
            self.found = self._kernels()

    def _warm(self, warm: bool, count: bool, rep: Callable[[], Any],
              optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:  # fmt: skip
        """A phase's entry before its timed repetition: the warm-up repetitions on a process's
        first visit, then, the first time the point is measured at all, its peak memory (one
        counted repetition of ``rep``); nothing later. Warmed up first, the counted step is a
        steady one whatever ran before: the optimizer's state exists (a point measured alone, on
        ``--resume``, would otherwise count Adam creating it and read more than in a full run)."""
        bench = self.bench
        phase: dict[str, Any] = {"status": "ok"}
        if warm:
            for _ in range(bench.series.warmup):
                rep()
        if count:
            held = held_tensors(bench.model, optimizer, [t for batch in self.inputs for t in batch])
            phase.update(phase_peak(rep, bench.device, held))
        return phase

    def _visit_train(self, warm: bool, count: bool) -> dict[str, Any]:
        bench, inputs = self.bench, self.inputs
        bench.model.train()
        phase = self._warm(warm, count, lambda: _train_rep(bench, inputs), bench.trainer.optimizer)
        with gc_disabled():
            rep = _train_rep(bench, inputs)
        self.train_ms.append(tuple(t * 1e3 / len(inputs) for t in rep))  # type: ignore[arg-type]
        return phase

    def _visit_infer(self, warm: bool, count: bool) -> dict[str, Any]:
        bench, inputs = self.bench, self.inputs
        bench.model.eval()
        phase = self._warm(warm, count, lambda: _infer_rep(bench, inputs), None)
        with gc_disabled():
            for _ in range(self.latency_visit if self.batch_one else 1):
                start = time.perf_counter()
                _infer_rep(bench, inputs)
                self.infer_ms.append((time.perf_counter() - start) * 1e3 / len(inputs))
        return phase

    def _kernels(self) -> dict[str, Any]:
        bench, one = self.bench, self.inputs[:1]
        found = {"infer": kernels(lambda: _infer_rep(bench, one), bench.device)}
        if not bench.self_fit:
            bench.model.train()
            found["train"] = kernels(lambda: _train_rep(bench, one), bench.device)
        return found

    def _train_phase(self) -> dict[str, Any] | None:
        if self.train is None or self.train.get("status") != "ok" or not self.train_ms:
            return self.train
        step = summarize_times([sum(rep) for rep in self.train_ms])
        return {**self.train, "step_ms": step,
                "forward_ms": summarize_times([rep[0] for rep in self.train_ms]),
                "backward_ms": summarize_times([rep[1] for rep in self.train_ms]),
                "optimizer_ms": summarize_times([rep[2] for rep in self.train_ms]),
                **_rates(step, self.inputs)}  # fmt: skip

    def _infer_phase(self) -> dict[str, Any] | None:
        if self.infer is None or self.infer.get("status") != "ok" or not self.infer_ms:
            return self.infer
        step = summarize_times(self.infer_ms)
        return {**self.infer, "step_ms": step, "forward_ms": None, "backward_ms": None,
                "optimizer_ms": None, **_rates(step, self.inputs),
                "latency_p95_ms": _percentile(self.infer_ms, 95) if self.batch_one else None}

    def measured(self) -> dict[str, Any]:
        """Everything the point's record measures: status, error, train, infer, memory,
        efficiency, kernels (at the task's point), and what one repetition held."""
        bench, inputs = self.bench, self.inputs
        train, infer, error = self._train_phase(), self._infer_phase(), self.error
        status = "failed" if error else ("oom" if _oom(train) or _oom(infer) else "ok")
        memory = {"method": "counted live tensors" if bench.device.type == "cpu"
                  else "torch.cuda.max_memory_allocated",
                  **{f"{name}_{key}": (phase or {}).get(key) for name, phase in
                     (("train", train), ("infer", infer)) for key in ("peak_mb", "rss_growth_mb")}}
        return {
            "status": status, "error": error, "train": train, "infer": infer,
            "peak_memory": memory,
            "efficiency": {"train": efficiency(bench, train, True),
                           "infer": efficiency(bench, infer, False),
                           "matmul_flops_per_s": bench.matmul_flops_per_s},
            "kernels": self.found if status == "ok" else None,
            "samples_per_rep": sum(int(lengths.shape[0]) for _, lengths, _ in inputs),
            "tokens_per_rep": sum(int(lengths.sum()) for _, lengths, _ in inputs),
            "steps_per_rep": len(inputs),
        }


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: the profiler's native library prints
    two lines (``USDT: ... profiler_start``) per use that no setting turns off. An exception
    still propagates, and is printed after the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def kernels(fn: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """The operators one call of ``fn`` ran, read from torch.profiler: the ``top`` by self time
    and every ``recurrence`` operator (by name), each with its calls and share of the time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with _native_stderr_silenced(), profile(activities=activities) as prof:
        fn()
    events = list(prof.key_averages())
    on_device = device.type == "cuda"

    def self_time(event: Any) -> float:
        return float(event.self_device_time_total if on_device else event.self_cpu_time_total)

    total = sum(self_time(e) for e in events) or 1.0

    def entry(event: Any) -> dict[str, Any]:
        return {"op": event.key, "calls": int(event.count), "self_share": self_time(event) / total}

    ranked = sorted(events, key=self_time, reverse=True)
    return {"top": [entry(e) for e in ranked[:TOP_OPS]],
            "recurrence": [entry(e) for e in ranked if RECURRENCE_OP.search(e.key)]}


def guarded(fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """``fn()``, or an out-of-memory phase (a result, the series goes on), or for any other
    failure None and the error (its traceback printed: a programming error must be seen)."""
    try:
        return fn(), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - failures are data
        error = error_of(exc)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if error["type"] == "oom":
            return {"status": "oom", "step_ms": None, "error": error["message"]}, None
        traceback.print_exc(file=sys.stderr)
        return None, error


def efficiency(bench: ArchBench, phase: dict[str, Any] | None, training: bool) -> float | None:
    """Achieved FLOP/s over the matmul's of this process, where the model declares FLOPs
    (a training step costs 3x the forward FLOPs: :func:`bench.run.instruments.training_flops`)."""
    if (phase is None or phase.get("status") != "ok" or bench.flops_per_token is None
            or not bench.matmul_flops_per_s):
        return None
    achieved = (3.0 if training else 1.0) * bench.flops_per_token * phase["tokens_per_s"]
    return achieved / bench.matmul_flops_per_s


def point_inputs(bench: ArchBench, point: CostPoint) -> Inputs:
    """The batches one repetition of ``point`` runs."""
    if point.axis == "task":
        return bench.task_inputs
    return random_inputs(bench, point.batch, int(point.length_T or 1))
