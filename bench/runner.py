"""Plan a grid of runs and execute each in its own child process.

A child process per run gives each run a clean peak-memory baseline and contains a crash (a
segfault or the kernel's OOM killer takes the child, not the grid). The parent only plans, starts
children, and writes a failure record when a child dies without writing its own.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import records
from bench.config import ModelSettings, RunConfig, RunSpec
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
    model_settings: dict[str, ModelSettings] | None = None,
) -> list[RunSpec]:
    """One spec per (architecture, seed), architectures in the given order, seeds 0..seeds-1;
    ``model_settings`` gives an architecture its own hyperparameters."""
    model_settings = model_settings or {}
    return [
        RunSpec(
            arch=arch, seed=seed, profile=profile, device=device, threads=threads, config=config,
            data_path=data_path, keep_artifacts=keep_artifacts,
            model_settings=model_settings.get(arch, ()),
        )
        for arch in archs
        for seed in range(seeds)
    ]


#: A child's exit code for "the run's output could not be written" (path and cause come by pipe).
EXIT_OUTPUT = 3
#: Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _die_with_parent(parent_pid: int) -> None:
    """Make this child stop when its parent dies, however the parent dies: a run nobody will
    record must not keep a core busy and skew the speed of whatever runs next."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    else:  # elsewhere, watch for being re-parented
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        raise KeyboardInterrupt


def _child(spec: RunSpec, run_dir: Path, progress: bool, parent_pid: int, report: Any) -> None:
    # SIGINT is ignored here (inherited, see _start_shielded): a Ctrl-C reaches the whole
    # terminal group, and the parent alone answers it, by sending this child SIGTERM. Until this
    # line runs, SIGTERM kills the child silently; from here on it unwinds it cleanly.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _die_with_parent(parent_pid)
        execute_run(spec, run_dir, progress=progress)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except records.OutputError as exc:
        report.send((exc.path, exc.reason))
        sys.exit(EXIT_OUTPUT)


def _start_shielded(proc: Any) -> None:
    """Start ``proc`` so that it ignores SIGINT from its first instruction, without this process
    losing a Ctrl-C that arrives meanwhile.

    An ignored SIGINT survives exec, so the child cannot be interrupted while it imports (which
    printed multiprocessing's 20-line bootstrap traceback); the parent alone answers Ctrl-C, by
    stopping the child. Blocking SIGINT around the start keeps a Ctrl-C from that moment pending
    (Linux never discards a blocked signal), and it is delivered here once the start is done.
    """
    shield = (threading.current_thread() is threading.main_thread()
              and hasattr(signal, "pthread_sigmask"))
    if not shield:
        proc.start()
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc.start()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stop(proc: Any) -> None:
    """Stop a child cleanly (SIGTERM), or kill it if it does not stop within 10 s."""
    proc.terminate()
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _run_child(ctx: Any, spec: RunSpec, run_dir: Path, progress: bool) -> int | None:
    """Run ``spec`` in a child process and return its exit code; raise
    :class:`bench.records.OutputError` if the child could not write its output."""
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, run_dir, progress, os.getpid(), sender),
                       name=spec.run_id)
    try:
        _start_shielded(proc)
        sender.close()
        proc.join()
    except KeyboardInterrupt:
        if proc.pid is not None:  # started: the Ctrl-C may have come just after the start
            _stop(proc)
        raise
    finally:
        try:
            message = receiver.recv() if receiver.poll() else None
        except (EOFError, OSError):  # the child closed its end without sending
            message = None
        receiver.close()
    if proc.exitcode == EXIT_OUTPUT and message:
        raise records.OutputError(*message)
    return proc.exitcode


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class GridOutcome:
    """What a grid execution did: run ids that ran, were skipped (already succeeded) or failed."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run id -> error type
    interrupted: bool = False
    wall_time_s: float = 0.0


def write_manifest(out_dir: Path, payload: dict[str, Any]) -> None:
    """Write the results folder's manifest atomically."""
    records.write_json_atomic(
        Path(out_dir) / records.MANIFEST_NAME, {"schema_version": records.SCHEMA_VERSION, **payload}
    )


def _previous_outcome(run_dir: Path) -> str | None:
    """``ok``, the error type of a failed record, ``unreadable``, or None when there is none."""
    path = run_dir / records.RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = records.read_record(path)
    except records.RecordError:
        return "unreadable"
    return "ok" if record["status"] == "ok" else record["error"]["type"]


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

    With ``resume``, a spec whose run already succeeded is skipped; a failed or unreadable one is
    run again. Ctrl-C (or SIGTERM) stops the child and the grid; every finished record stays.
    Output that cannot be written raises :class:`bench.records.OutputError`. ``in_process`` runs
    the specs in this process (tests use it; it gives up the crash containment and the per-run
    memory baseline).
    """
    out_dir = Path(out_dir)
    outcome = GridOutcome()
    started = time.perf_counter()
    durations: list[float] = []
    todo = []
    retried: list[str] = []
    for spec in specs:
        previous = _previous_outcome(out_dir / RUNS_DIR / spec.run_id) if resume else None
        if previous == "ok":
            outcome.skipped.append(spec.run_id)
            continue
        if previous is not None:
            retried.append(f"{spec.run_id} ({previous})")
        todo.append(spec)
    if resume:
        log(f"resuming: {len(outcome.skipped)} run(s) already succeeded, {len(todo)} to go"
            + (f", retrying {', '.join(retried)}" if retried else ""))
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
                exitcode = _run_child(ctx, spec, run_dir, progress)
        except KeyboardInterrupt:
            outcome.interrupted = True
            log(f"interrupted: {spec.run_id} left unfinished; finished records are kept")
            break
        durations.append(time.perf_counter() - run_start)
        record_path = run_dir / records.RECORD_NAME
        if exitcode == EXIT_INTERRUPTED:  # stopped from outside (SIGTERM to the child alone)
            outcome.interrupted = True
            log(f"interrupted: {spec.run_id} was stopped; finished records are kept")
            break
        if exitcode != 0 or not record_path.is_file():
            # The child died without writing, or its record may be from an earlier attempt.
            _write_crash_record(spec, run_dir, exitcode)
        record = records.read_record(record_path)
        outcome.ran.append(spec.run_id)
        if record["status"] != "ok":
            outcome.failed[spec.run_id] = record["error"]["type"]
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
    # The child died without writing (killed by a signal, often the kernel's OOM killer). This is
    # a failure like any other: --resume runs it again.
    record = base_record(spec, resolve_device(spec.device))
    if exitcode is not None and exitcode < 0:
        kind = "killed"
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else "?"
        message = f"the run's process was killed by signal {-exitcode} ({name})"
        if -exitcode == signal.SIGKILL:
            message += "; on Linux often the out-of-memory killer"
    else:
        kind, message = "crash", f"the run's process exited with code {exitcode} without a record"
    record.update(status="failed", error={"type": kind, "message": message})
    records.write_record(run_dir, record)


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
