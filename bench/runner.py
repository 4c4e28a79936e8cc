"""Plan a grid of runs and execute each in its own child process.

A child process per run gives each run a clean peak-memory baseline and contains a crash (a
segfault or the kernel's OOM killer takes the child, not the grid). The parent only plans, starts
children, and writes a failure record when a child dies without writing its own.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import records
from bench.config import RunConfig, RunSpec
from bench.environment import capture
from bench.executor import base_record, execute_run, resolve_device

RUNS_DIR = records.RUNS_DIR


def plan_grid(
    archs: Sequence[str],
    seeds: int,
    *,
    profile: str,
    config: RunConfig,
    device: str,
    threads: int,
    data_path: str | None = None,
    keep_artifacts: bool = True,
) -> list[RunSpec]:
    """One spec per (architecture, seed), architectures in the given order, seeds 0..seeds-1."""
    return [
        RunSpec(
            arch=arch, seed=seed, profile=profile, device=device, threads=threads, config=config,
            data_path=data_path, keep_artifacts=keep_artifacts,
        )
        for arch in archs
        for seed in range(seeds)
    ]


def _child(spec: RunSpec, run_dir: Path, progress: bool) -> None:
    try:
        execute_run(spec, run_dir, progress=progress)
    except KeyboardInterrupt:
        sys.exit(130)


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class GridOutcome:
    """What a grid execution did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    interrupted: bool = False
    wall_time_s: float = 0.0


def write_manifest(out_dir: Path, payload: dict[str, Any]) -> None:
    """Write the results folder's manifest atomically."""
    records.write_json_atomic(
        Path(out_dir) / records.MANIFEST_NAME, {"schema_version": records.SCHEMA_VERSION, **payload}
    )


def run_grid(
    specs: Sequence[RunSpec],
    out_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    in_process: bool = False,
    log=print,
) -> GridOutcome:
    """Execute ``specs`` in order, one child process each, writing records under ``out_dir/runs``.

    With ``resume``, a spec whose record already exists is skipped. Ctrl-C stops the grid after
    the child stops; every finished record stays. ``in_process`` runs the specs in this process
    (tests use it; it gives up the crash containment and the per-run memory baseline).
    """
    out_dir = Path(out_dir)
    outcome = GridOutcome()
    started = time.perf_counter()
    durations: list[float] = []
    todo = []
    for spec in specs:
        if resume and (out_dir / RUNS_DIR / spec.run_id / records.RECORD_NAME).is_file():
            outcome.skipped.append(spec.run_id)
        else:
            todo.append(spec)
    if outcome.skipped:
        log(f"resuming: {len(outcome.skipped)} run(s) already have records, {len(todo)} to go")
    ctx = mp.get_context("spawn")
    for i, spec in enumerate(todo, start=1):
        run_dir = out_dir / RUNS_DIR / spec.run_id
        eta = ""
        if durations:
            left = sum(durations) / len(durations) * (len(todo) - i + 1)
            eta = f", about {_format_duration(left)} left for the grid"
        log(f"[{i}/{len(todo)}] {spec.arch} seed {spec.seed} ({spec.run_id}){eta}")
        run_start = time.perf_counter()
        try:
            if in_process:
                execute_run(spec, run_dir, progress=progress)
                exitcode = 0
            else:
                proc = ctx.Process(target=_child, args=(spec, run_dir, progress), name=spec.run_id)
                proc.start()
                try:
                    proc.join()
                except KeyboardInterrupt:
                    # The terminal sent SIGINT to the child too; give it a moment to stop cleanly.
                    proc.join(timeout=10)
                    if proc.is_alive():
                        proc.terminate()
                        proc.join()
                    raise
                exitcode = proc.exitcode
        except KeyboardInterrupt:
            outcome.interrupted = True
            log(f"interrupted: {spec.run_id} left unfinished; finished records are kept")
            break
        durations.append(time.perf_counter() - run_start)
        record_path = run_dir / records.RECORD_NAME
        if exitcode == 130 and not record_path.is_file():
            outcome.interrupted = True
            break
        if not record_path.is_file():
            _write_crash_record(spec, run_dir, exitcode)
        record = records.read_record(record_path)
        outcome.ran.append(spec.run_id)
        if record["status"] != "ok":
            outcome.failed.append(spec.run_id)
            if record["error"]["type"] == "crash":
                outcome.crashed.append(spec.run_id)
            log(f"    failed: {record['error']['type']}: {record['error']['message']}")
        else:
            m = record["metrics"]
            log(
                f"    test accuracy {m['test_accuracy']:.2%}, "
                f"{m['train_samples_per_s']:,.0f} train samples/s, "
                f"{_format_duration(durations[-1])}"
            )
    outcome.wall_time_s = time.perf_counter() - started
    return outcome


def _write_crash_record(spec: RunSpec, run_dir: Path, exitcode: int | None) -> None:
    # The child died without writing (killed by a signal, most often the kernel's OOM killer).
    record = base_record(spec, resolve_device(spec.device))
    if exitcode is not None and exitcode < 0:
        signal_no = -exitcode
        kind = "oom" if signal_no == 9 else "crash"
        message = f"the run's process was killed by signal {signal_no}"
        if signal_no == 9:
            message += " (on Linux usually the out-of-memory killer)"
    else:
        kind, message = "crash", f"the run's process exited with code {exitcode} without a record"
    record.update(status="failed", error={"type": kind, "message": message})
    records.write_record(run_dir, record)


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def environment_summary(device: str) -> dict[str, Any]:
    """The environment block for a manifest (the grid's machine)."""
    return capture(resolve_device(device))
