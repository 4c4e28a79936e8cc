"""Run a grid as Ray tasks (``run_all.py --executor ray [--ray-address ADDRESS]``).

Each run spec becomes one Ray task asking for the CPUs (``spec.threads``) or the GPU it needs; Ray
places the tasks on the cluster's machines as their resources allow, so the grid scales with the
cluster while one run stays on one device. A task runs :func:`bench.run.execute.execute_run`, the
same function a local child runs, in a fresh worker process (``max_calls=1``: a clean peak-memory
baseline per run, as locally). It writes into a folder of its own on its node and returns the
record and the files beside it; this process (the driver) writes them into the results folder. So
the results folder need not be shared with the workers, and records are written by one process,
under the folder's lock, exactly as the local executor lays them out.

The data reaches the workers through Ray's object store: the driver puts the archive's bytes there
once; Ray copies the object to each node that runs a task, once per node, and the tasks there get
it from the node's shared memory as an argument (resolved before the task starts). The first task
on a node writes it to a node-local file named by its SHA-256 (atomically) for the data pipeline to
read, and builds the encoded cache the others on that node reuse (under its file lock). Nothing is
downloaded per worker, and no disk other than the results folder is assumed shared: on a cluster,
workers on other machines do not see the driver's disk, and the object store is how Ray moves
bytes between machines anyway (the results folder could hold a copy only if every node mounted it).

Concurrency is counted per node by a small actor (:class:`_Occupancy`): a record's
``concurrent_runs`` is the most runs in progress at once on the node it ran on while it ran, itself
included, or the count of the node's own registry of live runs (:mod:`bench.grid.live`, which
``execute_run`` keeps and which also sees other grids' runs there) where that is larger. The actor
is bookkeeping only: if it dies, the driver says so once and writes each result with the node's
own count; no finished run is lost.

Ray is an optional dependency (``pip install 'rnnbench[ray]'``); this module imports it lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.grid.runner import (
    RUNS_DIR,
    GridOutcome,
    account,
    pending_specs,
    start_line,
    write_failure_record,
)
from bench.results import records
from bench.run.config import RunSpec
from bench.run.execute import execute_run
from data_pipeline import ensure_task, resolve_source

#: The occupancy actor's name starts with this (then a random part: one actor per grid).
OCCUPANCY_ACTOR_PREFIX = "rnnbench-occupancy-"

#: Object-store memory of a Ray started here, in bytes: the archive (tens of MB) and the returned
#: files fit many times over, and Ray's default (30% of memory) would reserve gigabytes.
LOCAL_OBJECT_STORE_BYTES = 300 * 1024 * 1024


class _Occupancy:
    """Counts the runs in progress on each node, and the most that were at once during each run.

    Runs as a Ray actor that needs no CPU, so it never takes a run's place. A task registers
    itself when it starts without waiting for the answer, and the driver unregisters it once its
    result is back: a task never blocks in ``ray.get``, since Ray lends a blocked task's CPU to
    another task, which would put more runs on a node than it has cores.
    """

    def __init__(self) -> None:
        self.node_of: dict[str, str] = {}
        self.peak: dict[str, int] = {}

    def start(self, node: str, run_id: str) -> None:
        self.node_of[run_id] = node
        here = [other for other, where in self.node_of.items() if where == node]
        for other in here:
            self.peak[other] = max(self.peak.get(other, 0), len(here))

    def finish(self, run_id: str) -> int:
        self.node_of.pop(run_id, None)
        return self.peak.pop(run_id, 1)


def _node_copy(archive: bytes, sha256: str) -> Path:
    """This node's copy of the archive (written once per node, atomically)."""
    target = Path(tempfile.gettempdir()) / "rnnbench-data" / f"{sha256}.tar.gz"
    if not target.is_file():
        records.write_bytes_atomic(target, archive)  # tasks racing here write the same bytes
    return target


def _run_task(
    spec: RunSpec, archive: bytes | None, sha256: str, occupancy: Any
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The body of one Ray task: the run's record and its files (name -> bytes).

    ``archive`` arrives resolved from the object store (Ray fetches it to the node before the
    task starts, once per node, and reads it from shared memory there); None for a task that
    generates its data.
    """
    import ray
    from ray import exceptions as ray_errors

    # If the actor is gone, the node's registry (bench.grid.live) still counts this run.
    with contextlib.suppress(ray_errors.RayActorError):
        occupancy.start.remote(ray.get_runtime_context().get_node_id(), spec.run_id)
    local = (spec if archive is None
             else dataclasses.replace(spec, data_path=str(_node_copy(archive, sha256))))
    with tempfile.TemporaryDirectory(prefix="rnnbench-run-") as tmp:
        run_dir = Path(tmp) / spec.run_id
        record = execute_run(local, run_dir, progress=False)
        files = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())
                 if p.is_file() and p.name != records.RECORD_NAME}
    return record, files


def _resources(spec: RunSpec) -> dict[str, Any]:
    """What one run asks Ray for: its threads as CPUs, and a whole GPU on CUDA."""
    return {"num_cpus": spec.threads, "num_gpus": 1 if spec.device == "cuda" else 0}


def _init_ray(address: str | None, num_cpus: int | None) -> bool:
    """Start Ray (a local one, or connect to ``address``) unless it runs; whether this did."""
    import ray

    if ray.is_initialized():
        return False
    # ray.init replaces the SIGTERM handler with one that exits at once; the caller's (which
    # stops the grid like Ctrl-C, keeping finished records) is put back.
    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address is None:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=True)
    else:
        ray.init(address=address, log_to_driver=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _write_result(ref: Any, spec: RunSpec, out_dir: Path, occupancy: Any) -> Any:
    """Write the record of the finished task ``ref`` (a failure record when its worker died or
    its task failed), counting the runs that shared its node; the occupancy actor, or None once
    it is gone for good."""
    import ray
    from ray import exceptions as ray_errors

    run_dir = out_dir / RUNS_DIR / spec.run_id
    error = None
    try:
        record, files = ray.get(ref)
    except (ray_errors.WorkerCrashedError, ray_errors.OutOfMemoryError,
            ray_errors.NodeDiedError) as exc:
        error = {"type": "killed", "message": f"the run's Ray worker died: {exc}"[:500]}
    except ray_errors.RayTaskError as exc:
        error = {"type": "crash", "message": f"the run's Ray task failed: {exc}"[:500]}
    # The task's record counts what its node's registry saw; a failed task has none.
    concurrent_runs = record.get("concurrent_runs", 1) if error is None else 1
    if occupancy is not None:
        try:
            concurrent_runs = max(concurrent_runs, ray.get(occupancy.finish.remote(spec.run_id)))
        except ray_errors.RayActorError as exc:
            occupancy = None  # dead for good: later runs do not ask it
            _say_occupancy_gone(exc)
    if error is None:
        _write_run(run_dir, {**record, "concurrent_runs": concurrent_runs}, files)
    else:
        write_failure_record(spec, run_dir, error, concurrent_runs)
    return occupancy


def run_grid_ray(
    specs: Sequence[RunSpec],
    out_dir: Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> GridOutcome:
    """Execute ``specs`` as Ray tasks and write their records under ``out_dir/runs``.

    ``address`` names a running cluster's head (``host:port`` or ``auto``); without it a local Ray
    is started with ``num_cpus`` CPUs (default: all), no dashboard, and stopped at the end.
    Resume, failure records and Ctrl-C (pending tasks cancelled, finished records kept) behave
    as with the local executor. A worker that dies (the node's out-of-memory killer, a segfault)
    gives a ``killed`` record; any other task error a ``crash`` record.
    """
    import ray

    out_dir = Path(out_dir)
    outcome = GridOutcome()
    started = time.perf_counter()
    todo = pending_specs(specs, out_dir, resume=resume, log=log, outcome=outcome)
    if not todo:
        return outcome
    # Only a task that reads a dataset needs it shipped (a generated one makes its own).
    reading = [s for s in todo if ensure_task(s.task, s.task_module).reads_data]
    source = resolve_source(reading[0].data_path, progress=False) if reading else None
    sha256 = hashlib.sha256(source.path.read_bytes()).hexdigest() if source else ""
    owns_ray = _init_ray(address, num_cpus)
    log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPU(s), "
        f"{ray.cluster_resources().get('GPU', 0):g} GPU(s) in the cluster")
    try:
        archive = ray.put(source.path.read_bytes()) if source else None
        occupancy = ray.remote(num_cpus=0)(_Occupancy).options(
            name=f"{OCCUPANCY_ACTOR_PREFIX}{uuid.uuid4().hex[:12]}").remote()
        task = ray.remote(max_calls=1, max_retries=0)(_run_task)
        pending: dict[Any, tuple[RunSpec, float]] = {}
        for i, spec in enumerate(todo, start=1):
            log(start_line(i, len(todo), spec, [], 1))
            ref = task.options(**_resources(spec)).remote(spec, archive, sha256, occupancy)
            pending[ref] = (spec, time.perf_counter())
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                spec, submitted = pending.pop(ready[0])
                occupancy = _write_result(ready[0], spec, out_dir, occupancy)
                record = records.read_record(out_dir / RUNS_DIR / spec.run_id / records.RECORD_NAME)
                account(outcome, record, time.perf_counter() - submitted, named=True, log=log)
        except KeyboardInterrupt:
            outcome.interrupted = True
            for ref, (spec, _) in pending.items():
                ray.cancel(ref, force=True)
                log(f"interrupted: {spec.run_id} left unfinished; finished records are kept")
    finally:
        if owns_ray:
            ray.shutdown()
    outcome.wall_time_s = time.perf_counter() - started
    return outcome


def _say_occupancy_gone(exc: BaseException) -> None:
    """Tell the user, once per grid, that the occupancy actor died and what that changes."""
    print(f"ray: the actor that counts this grid's runs per node is gone ({type(exc).__name__}); "
          "the grid goes on, and from here on a record's concurrent_runs is what its node's "
          "registry of live rnnbench runs saw (bench.grid.live: the runs there that share its cache "
          "folder), and a run that failed without a record counts as alone", file=sys.stderr)


def _write_run(run_dir: Path, record: dict[str, Any], files: dict[str, bytes]) -> None:
    """Write a run's files, then its record (last, so a record always has its files)."""
    for name, payload in files.items():
        records.write_bytes_atomic(run_dir / name, payload)
    records.write_record(run_dir, record)
