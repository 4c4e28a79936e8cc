"""A machine-wide registry of the rnnbench runs in progress, so that a record's ``concurrent_runs``
sees the runs of other grids too.

A grid counts its own runs (:class:`bench.grid.runner.Slots`, the Ray occupancy actor), but two grids
started at once into two results folders each see only themselves: both recorded
``concurrent_runs: 1`` while each trained at a quarter to a half of its speed alone. So every run
(:func:`bench.run.execute.execute_run`: grid runs, memory-suite runs, Ray tasks on their node) and
every tuning trial registers here while it runs: one small JSON file per run under
``<cache>/live/`` (the dataset cache folder, :func:`data_pipeline.default_cache_dir`) with the
process id, the process's start time (against pid reuse), the run's start and, once it finishes,
its end. When a run finishes it reads every entry and counts the most runs that were in progress
at once during its own lifetime, itself included, counting runs that started and ended inside it:
that is why entries outlive their run (they are pruned a day after they end).

What it sees: rnnbench runs and trials on this machine that share this user's cache folder,
whichever grid or results folder started them. What it cannot see: other programs, and runs of
other users or with another cache folder (``$XDG_CACHE_HOME``). An entry without an end whose
process is gone (a run killed by the out-of-memory killer) is stale and ignored.

The registry never makes a run fail: where the folder cannot be written or read, a run counts
only the runs of its own grid, and the first process to find that out says so once on stderr.
Times are wall-clock seconds (``time.time()``), the one clock all processes of a machine share.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.results import records
from data_pipeline import default_cache_dir

LIVE_DIR_NAME = "live"
#: Entries that ended longer ago than this are removed (no run that could still overlap them
#: reads them: a run that long finds its overlaps among entries written since).
PRUNE_AFTER_S = 24 * 3600.0
#: Set, to the folder, once a process has said that folder cannot be written; children inherit
#: it, so a grid says it once rather than once per run.
_SAID_ENV = "RNNBENCH_LIVE_UNWRITABLE"


def live_dir() -> Path:
    """The registry's folder: ``<cache>/live`` (honours ``$XDG_CACHE_HOME``)."""
    return default_cache_dir() / LIVE_DIR_NAME


@dataclass(frozen=True)
class Entry:
    """One run's registration.

    Attributes:
        pid: the process that runs it.
        start: when the run started (wall-clock seconds).
        end: when it finished; None while it runs (or if its process died first).
        proc_start: the process's start time as the kernel counts it (``/proc/<pid>/stat``), so a
            later process that reuses the pid is not taken for it; None where unknown.
        boot_id: the kernel's boot id; an entry from an earlier boot belongs to no live process.
    """

    pid: int
    start: float
    end: float | None = None
    proc_start: str | None = None
    boot_id: str | None = None

    @classmethod
    def from_json(cls, payload: Any) -> Entry | None:
        """The entry a parsed file holds, or None when it is not one."""
        try:
            entry = cls(int(payload["pid"]), float(payload["start"]),
                        None if payload.get("end") is None else float(payload["end"]),
                        payload.get("proc_start"), payload.get("boot_id"))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
        return entry


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (field 22 of
    ``/proc/<pid>/stat``), or None where the kernel does not say."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def boot_id() -> str | None:
    """This boot's id (Linux), or None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None


def is_running(entry: Entry) -> bool:
    """Whether ``entry``'s run is still in progress: no end yet, and its very process alive
    (same boot, same process start time, not a zombie)."""
    if entry.end is not None or entry.pid <= 0:
        return False
    if entry.boot_id and boot_id() not in (None, entry.boot_id):
        return False
    try:
        os.kill(entry.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process holds the pid: alive, but only a pid reuse could match
    except OSError:
        return False
    fields = _proc_stat(entry.pid)
    if fields is None:
        return True  # no /proc: the pid's liveness is all there is to go on
    if fields[0] in ("Z", "X"):
        return False
    return entry.proc_start is None or len(fields) <= 19 or fields[19] == entry.proc_start


def peak_overlap(start: float, end: float, others: Iterable[tuple[float, float]]) -> int:
    """The most runs in progress at once during ``[start, end)``, the run itself included,
    given the other runs' ``(start, end)`` intervals (``end`` may be ``inf``: still running).

    Intervals are half-open: a run that ended as another started did not share the machine
    with it. The count can rise only where a run starts, so it is taken at ``start`` and at each
    other run's start inside the interval.
    """
    intervals = [(a, b) for a, b in others if b > a]
    moments = [start, *(a for a, _ in intervals if start < a < end)]
    return 1 + max(sum(1 for a, b in intervals if a <= t < b) for t in moments)


def read_entries(folder: Path | None = None) -> dict[Path, Entry]:
    """Every readable entry in the registry (a file being replaced or not an entry is skipped)."""
    folder = live_dir() if folder is None else Path(folder)
    entries = {}
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return {}
    for path in paths:
        try:
            entry = Entry.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if entry is not None:
            entries[path] = entry
    return entries


def prune(folder: Path | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the entries that ended more than :data:`PRUNE_AFTER_S` ago and the stale ones (no
    end, process gone); the paths removed."""
    now = time.time() if now is None else now
    removed = []
    for path, entry in read_entries(folder).items():
        old = entry.end is not None and entry.end < now - PRUNE_AFTER_S
        stale = entry.end is None and not is_running(entry)
        if old or stale:
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def _say_unwritable(folder: Path, exc: BaseException) -> None:
    """Say once (per folder, across this process and the children it starts later) that the
    registry cannot be used."""
    if os.environ.get(_SAID_ENV) == str(folder):
        return
    os.environ[_SAID_ENV] = str(folder)
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
    print(f"rnnbench: cannot write the registry of live runs in {folder} ({reason}); each run's "
          "concurrent_runs counts only the runs of its own grid, not those of other grids on "
          "this machine", file=sys.stderr)


def check_writable(folder: Path | None = None) -> bool:
    """Whether the registry's folder can be written; says so once on stderr when it cannot.

    A grid calls it before starting its children, so that they, inheriting the note, stay quiet.
    """
    folder = live_dir() if folder is None else Path(folder)
    probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        _say_unwritable(folder, exc)
        return False
    return True


class Registration:
    """One run's place in the registry, from :func:`register` until :meth:`finish`.

    Use it as a context manager (leaving it finishes the run, however it is left), or call
    :meth:`finish` for the count; finishing twice returns the first count.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = live_dir() if folder is None else Path(folder)
        self.entry = Entry(os.getpid(), time.time(), None, process_start(os.getpid()), boot_id())
        self.path: Path | None = self.folder / f"{self.entry.pid}-{uuid.uuid4().hex}.json"
        self._peak: int | None = None
        try:
            records.write_json_atomic(self.path, asdict(self.entry))
        except (records.OutputError, OSError) as exc:
            _say_unwritable(self.folder, exc)
            self.path = None

    def finish(self) -> int:
        """Write this run's end and return the most rnnbench runs in progress at once on this
        machine during its lifetime, itself included (1 where the registry cannot be used)."""
        if self._peak is not None:
            return self._peak
        end = time.time()
        self._peak = 1
        if self.path is None:
            return self._peak
        try:
            records.write_json_atomic(self.path, {**asdict(self.entry), "end": end})
        except (records.OutputError, OSError) as exc:
            _say_unwritable(self.folder, exc)
            return self._peak
        others = []
        for path, entry in read_entries(self.folder).items():
            if path == self.path:
                continue
            if entry.end is not None:
                others.append((entry.start, entry.end))
            elif is_running(entry):
                others.append((entry.start, float("inf")))
        self._peak = peak_overlap(self.entry.start, end, others)
        prune(self.folder, now=end)
        return self._peak

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()


def register(folder: Path | None = None) -> Registration:
    """Register a run starting now in the registry (``folder``: :func:`live_dir`)."""
    return Registration(folder)
