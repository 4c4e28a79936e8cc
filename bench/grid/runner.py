"""Plan a grid of runs and execute each in its own child process.

A child process per run gives each run a clean peak-memory baseline and contains a crash (a
segfault or the kernel's OOM killer takes the child, not the grid). The parent only plans, starts
children, and writes a failure record when a child dies without writing its own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.grid import live
from bench.results import records
from bench.run.config import ModelSettings, RunConfig, RunSpec
from bench.run.execute import base_record, execute_run, model_hyperparams, resolve_device
from data_pipeline import DEFAULT_TASK, task_info
from models import model_info

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
    task: str = DEFAULT_TASK,
) -> list[RunSpec]:
    """One spec per (architecture, seed) of ``task``, architectures in the given order, seeds
    0..seeds-1; ``model_settings`` gives an architecture its own hyperparameters."""
    model_settings = model_settings or {}
    task_module = task_info(task).module
    return [
        RunSpec(
            arch=arch, seed=seed, profile=profile, device=device, threads=threads, config=config,
            data_path=data_path, keep_artifacts=keep_artifacts,
            model_settings=model_settings.get(arch, ()), task=task, task_module=task_module,
        )
        for arch in archs
        for seed in range(seeds)
    ]


def longest_first(specs: Sequence[RunSpec], size: Callable[[RunSpec], float] = lambda _: 1.0
                  ) -> list[RunSpec]:
    """``specs`` with the costliest first (the declared FLOPs per token times ``size(spec)``, a
    measure of the data, stable among equals), so that runs at once end together: started in
    registry order, two cores ran the quick grid's BiLSTM last and alone for three minutes."""
    def cost(spec: RunSpec) -> float:
        flops = model_info(spec.arch).declared_flops_per_token(**model_hyperparams(spec))
        return -(flops or 0.0) * size(spec)
    return sorted(specs, key=cost)


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


def _child(target: Any, args: tuple, parent_pid: int, report: Any, peak: Any, gpu: str | None) -> None:
    # SIGINT arrives blocked (see _start_shielded): ignoring it discards a Ctrl-C that came while
    # this process started, and unblocking it then lets nothing through. A Ctrl-C reaches the
    # whole terminal group, and the parent alone answers it, by sending this child SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # Until this line runs, SIGTERM kills the child silently; from here on it unwinds it cleanly.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if gpu is not None:  # before anything touches CUDA: this child sees its one GPU as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        _die_with_parent(parent_pid)
        result = target(*args, concurrent_runs=lambda: peak.value)
        if result is not None:
            report.send(("result", result))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except records.OutputError as exc:
        report.send(("output_error", (exc.path, exc.reason)))
        sys.exit(EXIT_OUTPUT)


def _execute_run_quietly(spec: RunSpec, run_dir: Path, progress: bool, *,
                         concurrent_runs: Any) -> None:
    """A child's grid run: the record is on disk, nothing is sent back."""
    execute_run(spec, run_dir, progress=progress, concurrent_runs=concurrent_runs)


def _start_shielded(proc: Any) -> None:
    """Start ``proc`` so that neither it nor this process is interrupted half-way, and a Ctrl-C
    that comes meanwhile is not lost but raised here once the start is done.

    SIGINT is blocked in this thread during the start, so the child begins life with it blocked
    (a signal mask survives fork and exec); the child ignores SIGINT and then unblocks it as its
    first step (:func:`_child`), which discards a Ctrl-C that came while it was starting: it
    cannot be interrupted while it imports (which printed multiprocessing's 20-line bootstrap
    traceback), and the parent alone answers Ctrl-C, by stopping the child. Another thread of
    this process (tqdm's monitor, a BLAS pool) may still take the signal, so this process's
    handler only notes it during the start: raised inside ``start`` it cut the hand-over of the
    run to the child (its EOFError traceback), and with SIGINT ignored instead it was lost (a grid
    interrupted as a run started went on and exited 0).
    """
    if threading.current_thread() is not threading.main_thread():
        proc.start()  # signal handlers belong to the main thread
        return
    if os.name == "posix":
        # multiprocessing starts its resource tracker on the first spawn and unblocks SIGINT in
        # this thread once that is done, which undid the block below: the grid's first child
        # began with SIGINT open and a Ctrl-C as it imported torch printed its traceback.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    noted: list[int] = []
    previous_handler = signal.signal(signal.SIGINT, lambda signum, _frame: noted.append(signum))
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        signal.signal(signal.SIGINT, previous_handler)
    if noted:
        raise KeyboardInterrupt


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs runs may use, as ``CUDA_VISIBLE_DEVICES`` entries: those the variable already
    names, else every device torch counts."""
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return [part.strip() for part in named.split(",") if part.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def auto_jobs(device: str, threads: int) -> int:
    """``--jobs auto``: one run per visible GPU on CUDA, else as many as the cores hold at
    ``threads`` threads each (at least one)."""
    if device == "cuda":
        return max(1, len(visible_gpus()))
    return max(1, cpu_cores() // threads)


def check_jobs(jobs: int, threads: int) -> None:
    """Refuse a local grid whose runs would ask for more threads than there are cores.

    Raises:
        ValueError: ``jobs`` x ``threads`` exceeds :func:`cpu_cores`.
    """
    cores = cpu_cores()
    if jobs * threads > cores:
        raise ValueError(
            f"--jobs {jobs} x --threads {threads} = {jobs * threads} threads exceeds the {cores} "
            f"CPU core(s) here; lower --jobs or --threads (--jobs auto picks {max(1, cores // threads)})"
        )


@dataclass
class _Child:
    """One running child: its process, the pipe it reports on, and the most runs that were in
    progress at once (itself included) since it started."""

    key: Any
    proc: Any
    receiver: Any
    peak: Any
    slot: int
    started: float = field(default_factory=time.perf_counter)
    message: Any = None


@dataclass
class Finished:
    """A child that ended: its key, exit code, what it sent back (None if nothing), and how many
    runs were in progress at once while it ran."""

    key: Any
    exitcode: int | None
    result: Any
    concurrent_runs: int
    duration_s: float


class Slots:
    """At most ``jobs`` children at once, each in its own spawned process.

    Every child ignores Ctrl-C (the parent answers it by stopping them all), dies with its parent,
    and on CUDA sees one GPU (slot ``i`` gets the ``i``-th visible GPU, wrapping around). Each
    child can read how many children were in progress at once since it started, so a record says
    whether its speed was measured alone (the runs themselves also count the other grids' runs on
    the machine, :mod:`bench.grid.live`). With ``in_process`` the target runs in this process, one at
    a time (tests use it).
    """

    def __init__(self, jobs: int, *, gpus: Sequence[str] | None = None, in_process: bool = False):
        # Said here, before any child starts, when the registry cannot be written: the children
        # inherit the note and stay quiet, so a grid says it once, not once per run.
        live.check_writable()
        self.jobs = 1 if in_process else jobs
        self.gpus = list(gpus or [])
        self.in_process = in_process
        self.running: list[_Child] = []
        self._ctx = mp.get_context("spawn")
        self._done: list[Finished] = []

    @property
    def free(self) -> bool:
        """Whether another child may start now."""
        return len(self.running) < self.jobs and not self._done

    def start(self, key: Any, target: Any, *args: Any) -> None:
        """Start ``target(*args, concurrent_runs=...)`` in a child; what it returns is sent back."""
        if self.in_process:
            started = time.perf_counter()
            result = target(*args, concurrent_runs=lambda: 1)
            self._done.append(Finished(key, 0, result, 1, time.perf_counter() - started))
            return
        used = {child.slot for child in self.running}
        slot = min(set(range(self.jobs)) - used)
        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
        receiver, sender = self._ctx.Pipe(duplex=False)
        peak = self._ctx.Value("i", 0, lock=False)
        proc = self._ctx.Process(target=_child, args=(target, args, os.getpid(), sender, peak, gpu),
                                 name=str(key))
        child = _Child(key, proc, receiver, peak, slot)
        self.running.append(child)
        # Written before the start, so the child never reads a count that leaves itself out.
        for other in self.running:
            other.peak.value = max(other.peak.value, len(self.running))
        try:
            _start_shielded(proc)
        finally:
            sender.close()

    def wait(self) -> list[Finished]:
        """Block until at least one child ends; the ones that ended.

        Raises:
            bench.results.records.OutputError: a child could not write its output.
        """
        if self._done:
            done, self._done = self._done, []
            return done
        sentinels = {child.proc.sentinel: child for child in self.running}
        pipes = {child.receiver: child for child in self.running if not child.receiver.closed}
        ready = mp.connection.wait([*sentinels, *pipes])
        # A message is read as soon as it comes: a child blocked writing to a full pipe would
        # never end.
        for conn in ready:
            if conn in pipes:
                pipes[conn].message = _receive(conn)
        finished = []
        for sentinel in (conn for conn in ready if conn in sentinels):
            child = sentinels[sentinel]
            child.proc.join()
            self.running.remove(child)
            message = child.message or _receive(child.receiver)
            if child.proc.exitcode == EXIT_OUTPUT and message and message[0] == "output_error":
                raise records.OutputError(*message[1])
            result = message[1] if message and message[0] == "result" else None
            finished.append(Finished(child.key, child.proc.exitcode, result, child.peak.value,
                                     time.perf_counter() - child.started))
        return finished

    def stop_all(self) -> list[Any]:
        """Stop every running child (SIGTERM, then SIGKILL after 10 s); the keys they had."""
        started = [child for child in self.running if child.proc.pid is not None]
        for child in started:
            child.proc.terminate()
        deadline = time.monotonic() + 10
        for child in started:
            child.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.proc.is_alive():
                child.proc.kill()
                child.proc.join()
        for child in self.running:
            child.receiver.close()
        keys = [child.key for child in self.running]
        self.running = []
        return keys


def _receive(receiver: Any) -> Any:
    if receiver.closed:
        return None
    try:
        return receiver.recv() if receiver.poll() else None
    except (EOFError, OSError):  # the child closed its end without sending
        return None
    finally:
        receiver.close()


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


def _previous_outcome(run_dir: Path) -> str | None:
    """``ok``, the error type of a failed record, ``unreadable``, ``test predictions missing``
    or ``test predictions unreadable`` (a successful record whose test probabilities or labels,
    which the report's paired tests read, are gone or damaged), or None when there is none."""
    path = run_dir / records.RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = records.read_record(path)
    except records.RecordError:
        return "unreadable"
    if record["status"] != "ok":
        return record["error"]["type"]
    artifacts = record.get("artifacts") or {}
    named = [artifacts.get(key) for key in ("test_probs", "test_labels")]
    if any(isinstance(name, str) and not (run_dir / name).is_file() for name in named):
        return "test predictions missing"
    try:  # mapped, not read: only the header is parsed, and a truncated file raises here
        shapes = {np.load(run_dir / name, mmap_mode="r", allow_pickle=False).shape
                  for name in named if isinstance(name, str)}
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        return "test predictions unreadable"
    if len(shapes) > 1:
        return "test predictions unreadable"  # probabilities and labels of different lengths
    return "ok"


def pending_specs(specs: Sequence[RunSpec], out_dir: Path, *, resume: bool, log=print,
                  outcome: GridOutcome) -> list[RunSpec]:
    """The specs still to run: all of them, or with ``resume`` those without a successful record
    (a failed or unreadable one is run again); skipped ones are added to ``outcome``."""
    todo, retried = [], []
    for spec in specs:
        previous = _previous_outcome(Path(out_dir) / RUNS_DIR / spec.run_id) if resume else None
        if previous == "ok":
            outcome.skipped.append(spec.run_id)
            continue
        if previous is not None:
            retried.append(f"{spec.run_id} ({previous})")
        todo.append(spec)
    if resume:
        log(f"resuming: {len(outcome.skipped)} run(s) already succeeded, {len(todo)} to go"
            + (f", retrying {', '.join(retried)}" if retried else ""))
    return todo


def start_line(i: int, total: int, spec: RunSpec, durations: Sequence[float], jobs: int) -> str:
    """``[i/total] arch seed s (run id)``, with the time left once a run has finished; a task
    whose settings have a ``run_label()`` (the memory task's T and load) adds it after the seed,
    and a budget extension says so."""
    eta = ""
    if durations:
        left = sum(durations) / len(durations) * (total - i + 1) / jobs
        eta = f", about {_format_duration(left)} left for the grid"
    label = getattr(spec.config.data, "run_label", None)
    at = f" at {label()}" if callable(label) else ""
    train = spec.config.train
    if train.extends_epochs:
        at += f", {train.epochs} epochs extending a budget-bound run of {train.extends_epochs}"
    return f"[{i}/{total}] {spec.arch} seed {spec.seed}{at} ({spec.run_id}){eta}"


def account(outcome: GridOutcome, record: dict[str, Any], duration_s: float, *, named: bool,
            log=print) -> None:
    """Count a finished run's record in ``outcome`` and log its result (``named``: with its run
    id, for results that come in any order)."""
    outcome.ran.append(record["run_id"])
    name = f"{record['run_id']}: " if named else ""
    if record["status"] != "ok":
        outcome.failed[record["run_id"]] = record["error"]["type"]
        log(f"    {name}failed: {record['error']['type']}: {record['error']['message']}")
    else:
        m = record["metrics"]
        log(
            f"    {name}test accuracy {m['test_accuracy']:.2%}, "
            f"{m['train_samples_per_s']:,.0f} train samples/s, "
            f"{_format_duration(duration_s)} for the whole run (data, training, evaluation)"
        )


def run_grid(
    specs: Sequence[RunSpec],
    out_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    in_process: bool = False,
    jobs: int = 1,
    log=print,
) -> GridOutcome:
    """Execute ``specs``, at most ``jobs`` at once, one child process each, writing records under
    ``out_dir/runs``; runs start in the order given.

    With ``resume``, a spec whose run already succeeded is skipped; a failed or unreadable one is
    run again. Ctrl-C (or SIGTERM) stops every child and the grid; every finished record stays.
    Output that cannot be written raises :class:`bench.results.records.OutputError` (after stopping the
    other children). ``in_process`` runs the specs in this process (tests use it; it gives up the
    crash containment and the per-run memory baseline). On CUDA each child sees one GPU.
    """
    out_dir = Path(out_dir)
    outcome = GridOutcome()
    started = time.perf_counter()
    durations: list[float] = []
    todo = pending_specs(specs, out_dir, resume=resume, log=log, outcome=outcome)
    gpus = visible_gpus() if any(spec.device == "cuda" for spec in todo) and not in_process else []
    slots = Slots(jobs, gpus=gpus, in_process=in_process)
    # Several children share the terminal: their progress bars would overwrite each other.
    progress = progress and slots.jobs == 1
    queue = list(enumerate(todo, start=1))
    try:
        while queue or slots.running:
            while queue and slots.free:
                i, spec = queue.pop(0)
                log(start_line(i, len(todo), spec, durations, slots.jobs))
                run_dir = out_dir / RUNS_DIR / spec.run_id
                slots.start(spec, _execute_run_quietly, spec, run_dir, progress)
            for done in slots.wait():
                durations.append(done.duration_s)
                if _finish(done, out_dir, outcome, slots.jobs, log) is None:
                    raise KeyboardInterrupt  # a child stopped from outside stops the grid
    except KeyboardInterrupt:
        outcome.interrupted = True
        for spec in slots.stop_all():
            log(f"interrupted: {spec.run_id} left unfinished; finished records are kept")
    except BaseException:
        slots.stop_all()
        raise
    outcome.wall_time_s = time.perf_counter() - started
    return outcome


def _finish(done: Finished, out_dir: Path, outcome: GridOutcome, jobs: int, log) -> dict | None:
    """Account for a child that ended: its record (a crash record if it left none), or None
    when it was stopped from outside (SIGTERM to the child alone)."""
    spec = done.key
    run_dir = out_dir / RUNS_DIR / spec.run_id
    if done.exitcode == EXIT_INTERRUPTED:
        log(f"interrupted: {spec.run_id} was stopped; finished records are kept")
        return None
    record_path = run_dir / records.RECORD_NAME
    if done.exitcode != 0 or not record_path.is_file():
        # The child died without writing, or its record may be from an earlier attempt.
        write_failure_record(spec, run_dir, crash_error(done.exitcode), done.concurrent_runs)
    record = records.read_record(record_path)
    account(outcome, record, done.duration_s, named=jobs > 1, log=log)
    return record


def crash_error(exitcode: int | None) -> dict[str, str]:
    """The ``error`` of a run whose process ended without a record: ``killed`` by a signal (often
    the kernel's OOM killer), else ``crash``."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else "?"
        message = f"the run's process was killed by signal {-exitcode} ({name})"
        if -exitcode == signal.SIGKILL:
            message += "; on Linux often the out-of-memory killer"
        return {"type": "killed", "message": message}
    return {"type": "crash", "message": f"the run's process exited with code {exitcode} without a record"}


def write_failure_record(spec: RunSpec, run_dir: Path, error: dict[str, str],
                         concurrent_runs: int) -> None:
    """Record ``spec`` as failed with ``error`` when its run left no record of its own. This is a
    failure like any other: --resume runs it again."""
    record = base_record(spec, resolve_device(spec.device))
    record.update(status="failed", error=error, concurrent_runs=concurrent_runs)
    records.write_record(run_dir, record)
