"""Run the cost suite's points, one measurement at a time, into the results folder.

Every architecture is built untrained (cost does not depend on what was learned; the task gives
the vocabulary and its own lengths), once in each sitting (a fresh process for each share of the
rounds, one after another), with its threads pinned; its points run one after another, nothing
else of the harness running beside them. A point already measured
(or out of memory: a result) is skipped, so ``--resume`` continues a series.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.grid import live
from bench.grid.runner import GridOutcome
from bench.results import cost, records
from bench.run.config import RunSpec
from bench.run.environment import capture
from bench.run.execute import initial_model, model_facts, model_hyperparams, trainable_params
from bench.run.instruments import matmul_flops_per_s, retain_freed_memory
from bench.run.trainer import Trainer
from bench.suites.cost.measure import LATENCY_REPS, ArchBench, PointRun, point_inputs
from bench.suites.cost.plan import CostPoint, CostSeries
from data_pipeline import TaskData, make_batches
from models import model_info


def identity(spec: RunSpec, vocab_size: int) -> dict[str, Any]:
    """What sets a point's numbers besides its size (hashed into its id)."""
    return {"task": spec.task, "profile": spec.profile, "device": spec.device,
            "threads": spec.threads, "model": model_hyperparams(spec), "vocab_size": vocab_size,
            "bf16": spec.config.train.bf16 and spec.device == "cuda"}  # fmt: skip


def _task_inputs(data: TaskData, spec: RunSpec, count: int, device: torch.device) -> list:
    """``count`` training batches of the task's own reviews at the grid's batch size (the
    length-bucketed batches its training sees)."""
    batches = make_batches(data.train, spec.config.train.batch_size, pad_index=data.pad_index,
                           shuffle=True, seed=0)[:count]  # fmt: skip
    return [(b.tokens.to(device), b.lengths, b.labels.to(device)) for b in batches]


def build_bench(spec: RunSpec, data: TaskData, series: CostSeries, matmul: float | None,
                device: torch.device) -> tuple[ArchBench, dict[str, Any] | None]:  # fmt: skip
    """The untrained model of ``spec`` in the shared trainer; a model that fits itself is fitted
    here (its inference needs it), and the fit's time is returned."""
    model = initial_model(spec, len(data.vocab), data.pad_index)
    info = model_info(spec.arch)
    trainer = Trainer(model, spec.config.train, spec.config.measure, device,
                      pad_index=data.pad_index, progress=False)  # fmt: skip
    facts = model_facts(info, model_hyperparams(spec))
    fit = None
    if info.training == "self_fit":
        start = time.perf_counter()
        model.fit(data.train, data.val, seed=spec.seed)
        fit_s = time.perf_counter() - start
        fit = {"time_s": fit_s, "samples_per_s": len(data.train) / fit_s, "reps": 1,
               "samples": len(data.train)}  # fmt: skip
    bench = ArchBench(spec.arch, trainer, device, len(data.vocab), data.pad_index,
                      facts["flops_per_token"] if info.training == "gradient" else None,
                      info.training == "self_fit", series, matmul)  # fmt: skip
    bench.task_inputs = _task_inputs(data, spec, series.task_batches, device)
    return bench, fit


def _point_record(spec: RunSpec, point: CostPoint, point_id: str, bench: ArchBench,
                  measured: dict[str, Any], fit: dict[str, Any] | None,
                  environment: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    hyperparams = model_hyperparams(spec)
    facts = model_facts(model_info(spec.arch), hyperparams)
    return {
        "schema_version": records.SCHEMA_VERSION, "kind": cost.POINT_KIND, "point_id": point_id,
        "arch": spec.arch, "task": spec.task, "axis": point.axis, "length_T": point.length_T,
        "batch": point.batch, "profile": spec.profile, "device": spec.device,
        "threads": spec.threads, "model": {**hyperparams, **facts,
                                           "param_count": trainable_params(bench.model)},
        "vocab_size": bench.vocab_size, "reps": bench.series.reps, "warmup": bench.series.warmup,
        **measured, "fit": fit if point.axis == "task" else None,
        "environment": environment,
        "measured_utc": records.utc_now(),
    }  # fmt: skip


def _pending(specs: Sequence[RunSpec], points: Sequence[CostPoint], out: Path,
             vocab_size: int) -> tuple[list[tuple[CostPoint, str]], list[str]]:  # fmt: skip
    """The points still to measure, with their ids, and the ids already measured."""
    by_arch = {spec.arch: spec for spec in specs}
    todo, done = [], []
    for point in points:
        point_id = point.point_id(identity(by_arch[point.arch], vocab_size))
        path = cost.point_file(out, point_id)
        try:
            finished = path.is_file() and cost.finished(cost.read_point(path))
        except records.RecordError:
            finished = False  # unreadable: measured again
        (done.append(point_id) if finished else todo.append((point, point_id)))
    return todo, done


def round_order(items: Sequence[Any], round_index: int) -> list[Any]:
    """The order a round visits the points in: the plan's, every other round reversed (a drift
    within a round then falls on both ends of the plan alike)."""
    return list(items) if round_index % 2 == 0 else list(items)[::-1]


def sitting_rounds(series: CostSeries) -> list[range]:
    """The rounds each sitting (a fresh process) runs: ``series.reps`` rounds in
    ``series.sittings`` consecutive blocks as even as they divide (49 in 4: 12, 12, 12, 13)."""
    count = max(1, min(series.sittings, series.reps))
    edges = [i * series.reps // count for i in range(count + 1)]
    return [range(edges[i], edges[i + 1]) for i in range(count)]


@dataclass
class Sitting:
    """One process's share of the suite: the points still to measure, the rounds to run, what
    earlier sittings measured of each point (``carried``: :meth:`PointRun.state`), and whether
    it is the last (which writes the records)."""

    specs: list[RunSpec]
    todo: list[tuple[CostPoint, str]]
    series: CostSeries
    rounds: range
    matmul: float | None
    out: Path
    carried: dict[str, dict[str, Any]]
    last: bool


def run_points(specs: Sequence[RunSpec], points: Sequence[CostPoint], data: TaskData,
               series: CostSeries, out: Path, *,
               log: Callable[[str], None]) -> tuple[GridOutcome, dict[str, Any]]:  # fmt: skip
    """Measure every pending point into ``out``; the outcome and the manifest's summary.

    The points are measured in ``series.reps`` rounds: each round visits every pending point
    once (one timed repetition of each phase, a process's first visit after its warm-up), in
    the plan's order and the next round in reverse, and times the calibration matmul once. The
    machine's slow spells (seen lasting several seconds on a shared 2-core machine) then spread
    over all points instead of doubling a few. The rounds are split over ``series.sittings``
    fresh processes, one after another: two single-process runs on this machine put single
    architectures' steps 5-15% apart in every round, an offset a process keeps for life (its
    memory placement, most likely: which physical pages its weights and buffers got), so each
    figure pools several processes. A point's record is written after its last round.
    """
    spec0 = specs[0]
    device = torch.device(spec0.device)
    todo, done = _pending(specs, points, out, len(data.vocab))
    outcome = GridOutcome(skipped=done)
    if done:
        log(f"cost: {len(done)} point(s) already measured, {len(todo)} to go")
    torch.set_num_threads(spec0.threads)
    size = spec0.config.measure.matmul_size
    matmul = matmul_flops_per_s(device, size=size) if todo else None
    blocks = sitting_rounds(series) if todo else []
    carried: dict[str, dict[str, Any]] = {}
    calibration: list[float] = []
    allocator: dict[str, Any] = {}
    started = time.perf_counter()
    with live.register() as registration:
        for index, rounds in enumerate(blocks):
            sitting = Sitting(list(specs), todo, series, rounds, matmul, out, carried,
                              last=index == len(blocks) - 1)  # fmt: skip
            if len(blocks) > 1:
                log(f"cost: sitting {index + 1}/{len(blocks)} (a fresh process): rounds "
                    f"{rounds.start + 1}-{rounds.stop} of {series.reps}")
                carried, rates, allocator, ran = _in_fresh_process(sitting, data)
            else:
                carried, rates, allocator, ran = run_sitting(sitting, data, log)
            calibration += rates
        for point_id, status in ran.items() if blocks else ():
            outcome.ran.append(point_id)
            if status is not None:
                outcome.failed[point_id] = status
        others = registration.finish()
    outcome.wall_time_s = time.perf_counter() - started
    summary = {"series": asdict(series), "task_batch": spec0.config.train.batch_size,
               "matmul_flops_per_s": matmul, "round_matmul_flops_per_s": calibration,
               "measured_alone": True, "threads": spec0.threads,
               **(allocator or {"allocator": None, "retains_freed_memory": None}),
               "concurrent_runs": others}  # fmt: skip
    log(f"cost: {len(todo)} point(s) measured in {outcome.wall_time_s:.0f} s")
    return outcome, summary


def _in_fresh_process(sitting: Sitting, data: TaskData) -> SittingResult:
    """:func:`run_sitting` in a spawned process of its own (its log lines on this stderr)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(run_sitting, sitting, data, None).result()


#: What a sitting returns: each point's state so far, the rounds' matmul rates, the allocator
#: setting, and (from the last) each written point's failure type (None: measured).
SittingResult = tuple[dict[str, dict[str, Any]], list[float], dict[str, Any], dict[str, str | None]]


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sitting(sitting: Sitting, data: TaskData,
                log: Callable[[str], None] | None) -> SittingResult:  # fmt: skip
    """Build every architecture, untrained, in this process with its threads pinned, and run
    the sitting's rounds over its points; the last sitting writes their records."""
    log = log or _stderr_log
    spec0, series = sitting.specs[0], sitting.series
    device = torch.device(spec0.device)
    torch.set_num_threads(spec0.threads)
    if device.type == "cpu":
        torch.set_flush_denormal(spec0.config.train.flush_denormal)
    allocator = retain_freed_memory()  # before the first tensor of a point
    environment = {**capture(device), "allocator": allocator}
    by_arch = {spec.arch: spec for spec in sitting.specs}
    benches = {arch: build_bench(by_arch[arch], data, series, sitting.matmul, device)
               for arch in dict.fromkeys(point.arch for point, _ in sitting.todo)}  # fmt: skip
    runs = []
    for point, point_id in sitting.todo:
        bench, fit = benches[point.arch]
        run = PointRun(bench, point, point_inputs(bench, point),
                       latency_visit=math.ceil(LATENCY_REPS / series.reps), fit=fit)  # fmt: skip
        if point_id in sitting.carried:
            run.absorb(sitting.carried[point_id])
        runs.append((run, point_id))
    size = spec0.config.measure.matmul_size
    calibration = []
    for round_index in sitting.rounds:
        round_start = time.perf_counter()
        calibration.append(matmul_flops_per_s(device, size=size))
        for run, _ in round_order(runs, round_index):
            run.visit()
        log(f"cost: round {round_index + 1}/{series.reps}: {len(runs)} point(s) in "
            f"{time.perf_counter() - round_start:.1f} s (matmul "
            f"{calibration[-1] / 1e9:.1f} GFLOP/s)")
    written: dict[str, str | None] = {}
    if sitting.last:
        for run, point_id in runs:
            record = _point_record(by_arch[run.point.arch], run.point, point_id, run.bench,
                                   run.measured(), run.fit, environment)  # fmt: skip
            cost.write_point(sitting.out, record)
            written[point_id] = record["error"]["type"] if record["status"] == "failed" else None
    return {i: run.state() for run, i in runs}, calibration, allocator, written
