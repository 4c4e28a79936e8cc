"""Run the cost suite's points, one measurement at a time, into the results folder.

Every architecture is built once, untrained (cost does not depend on what was learned; the task
gives the vocabulary and its own lengths), in this process, with its threads pinned; its points
run one after another, nothing else of the harness running beside them. A point already measured
(or out of memory: a result) is skipped, so ``--resume`` continues a series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
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


def run_points(specs: Sequence[RunSpec], points: Sequence[CostPoint], data: TaskData,
               series: CostSeries, out: Path, *,
               log: Callable[[str], None]) -> tuple[GridOutcome, dict[str, Any]]:  # fmt: skip
    """Measure every pending point into ``out``; the outcome and the manifest's summary.

    The points are measured in ``series.reps`` rounds: each round visits every pending point
    once (one timed repetition of each phase, the first visit after its warm-up), in the plan's
    order and the next round in reverse, and times the calibration matmul once. The machine's slow spells
    (seen lasting several seconds on a shared 2-core machine) then spread over all points
    instead of doubling a few. A point's record is written after its last round.
    """
    spec0 = specs[0]
    device = torch.device(spec0.device)
    torch.set_num_threads(spec0.threads)
    if device.type == "cpu":
        torch.set_flush_denormal(spec0.config.train.flush_denormal)
    allocator = retain_freed_memory()  # before the first tensor of a point
    todo, done = _pending(specs, points, out, len(data.vocab))
    outcome = GridOutcome(skipped=done)
    if done:
        log(f"cost: {len(done)} point(s) already measured, {len(todo)} to go")
    size = spec0.config.measure.matmul_size
    matmul = matmul_flops_per_s(device, size=size) if todo else None
    environment = {**capture(device), "allocator": allocator}
    by_arch = {spec.arch: spec for spec in specs}
    calibration: list[float] = []
    started = time.perf_counter()
    with live.register() as registration:
        benches = {arch: build_bench(by_arch[arch], data, series, matmul, device)
                   for arch in dict.fromkeys(point.arch for point, _ in todo)}  # fmt: skip
        runs = [(PointRun(benches[p.arch][0], p, point_inputs(benches[p.arch][0], p),
                          latency_visit=math.ceil(LATENCY_REPS / series.reps)), i)
                for p, i in todo]  # fmt: skip
        for round_index in range(series.reps if runs else 0):
            round_start = time.perf_counter()
            calibration.append(matmul_flops_per_s(device, size=size))
            for run, _ in round_order(runs, round_index):
                run.visit()
            log(f"cost: round {round_index + 1}/{series.reps}: {len(runs)} point(s) in "
                f"{time.perf_counter() - round_start:.1f} s (matmul "
                f"{calibration[-1] / 1e9:.1f} GFLOP/s)")
        for run, point_id in runs:
            spec = by_arch[run.point.arch]
            record = _point_record(spec, run.point, point_id, run.bench, run.measured(),
                                   benches[run.point.arch][1], environment)
            cost.write_point(out, record)
            outcome.ran.append(point_id)
            if record["status"] == "failed":
                outcome.failed[point_id] = record["error"]["type"]
        others = registration.finish()
    outcome.wall_time_s = time.perf_counter() - started
    summary = {"series": asdict(series), "task_batch": spec0.config.train.batch_size,
               "matmul_flops_per_s": matmul, "round_matmul_flops_per_s": calibration,
               "measured_alone": True, "threads": spec0.threads, **allocator,
               "concurrent_runs": others}  # fmt: skip
    log(f"cost: {len(runs)} point(s) measured in {outcome.wall_time_s:.0f} s")
    return outcome, summary
