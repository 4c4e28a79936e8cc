"""Cost points: the cost suite's record kind, one JSON file per point, beside the run records.

A cost point is what one architecture costs at one input size: a sequence length T and a batch
size (every sequence exactly T long), or the task's own lengths at the grid's batch. It is plain
data like a run record, written atomically, with the same schema version (version 3 added this
kind), so a report is rebuilt from the files alone. :func:`validate_point` is the schema's
executable form; ``docs/record-schema.md`` documents it.

Layout::

    <out>/cost_points/<point_id>.json  one per point (:data:`COST_DIR`)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results.records import (
    READABLE_VERSIONS,
    RecordError,
    Unreadable,
    write_json_atomic,
)

#: The folder of cost points inside a results folder.
COST_DIR = "cost_points"
#: The ``kind`` of a cost point (run records have none: they are the original kind).
POINT_KIND = "cost_point"
#: The earliest schema version that has cost points.
FIRST_VERSION = 3
#: The axes a point lies on: the task's own lengths, a series in T, a series in batch size.
AXES = ("task", "length", "batch")
#: A point's outcome: measured, out of memory (a result: an OOM cell), or failed (crash).
STATUSES = ("ok", "oom", "failed")
#: A point file's name is its point id (:func:`point_file`).
_POINT_ID = re.compile(r"^[A-Za-z0-9_.-]+-(task|length|batch)-T[0-9a-z]+-b[0-9]+-[0-9a-f]{8}$")

#: The fields every cost point has, with their types (the schema page shows them).
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "kind": str, "point_id": str, "arch": str, "task": str, "axis": str,
    "length_T": (int, type(None)), "batch": int, "profile": str, "device": str, "threads": int,
    "status": str, "error": (dict, type(None)), "model": dict, "reps": int, "warmup": int,
    "samples_per_rep": int, "tokens_per_rep": int, "train": (dict, type(None)),
    "infer": (dict, type(None)), "fit": (dict, type(None)), "peak_memory": dict, "efficiency": dict,
    "kernels": (dict, type(None)), "environment": dict,
}  # fmt: skip
#: The fields of one timed figure (:func:`bench.suites.cost.measure.summarize_times`).
STAT_KEYS = ("median", "low", "high", "coverage", "times")
#: The timed figures a measured phase may hold (those a phase could not split are null).
PHASE_STATS = ("step_ms", "forward_ms", "backward_ms", "optimizer_ms")


def _typed(value: Any, typ: type | tuple[type, ...]) -> bool:
    types = typ if isinstance(typ, tuple) else (typ,)
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _check_stat(where: str, stat: Any) -> None:
    if stat is None:
        return
    if not isinstance(stat, dict) or any(key not in stat for key in STAT_KEYS):
        raise RecordError(f"{where} needs {', '.join(STAT_KEYS)}")
    if not isinstance(stat["times"], list) or not all(_typed(t, (int, float)) for t in stat["times"]):
        raise RecordError(f"{where}: 'times' must be a list of numbers")
    if stat["low"] < 0 or not stat["low"] <= stat["median"] <= stat["high"]:
        raise RecordError(f"{where}: needs 0 <= low <= median <= high")


def _check_phase(where: str, phase: Any) -> None:
    if phase is None:
        return
    if phase.get("status") not in ("ok", "oom"):
        raise RecordError(f"{where}: status must be 'ok' or 'oom'")
    for key in PHASE_STATS:
        _check_stat(f"{where}.{key}", phase.get(key))
    if phase["status"] == "ok" and phase.get("step_ms") is None:
        raise RecordError(f"{where}: a measured phase needs step_ms")


def validate_point(point: Any) -> dict[str, Any]:
    """Check a cost point against its schema and return it; :class:`RecordError` if it breaks it."""
    if not isinstance(point, dict):
        raise RecordError("a cost point must be a JSON object")
    for key, typ in REQUIRED_FIELDS.items():
        if key not in point:
            raise RecordError(f"cost point is missing {key!r}")
        if not _typed(point[key], typ):
            raise RecordError(f"cost point field {key!r} has the wrong type")
    version = point["schema_version"]
    if version not in READABLE_VERSIONS or version < FIRST_VERSION:
        raise RecordError(f"cost point schema_version {version} is not one of "
                          f"{FIRST_VERSION}..{max(READABLE_VERSIONS)}; measure it again")
    if point["kind"] != POINT_KIND or point["axis"] not in AXES:
        raise RecordError(f"cost point needs kind {POINT_KIND!r} and axis in {AXES}")
    if point["status"] not in STATUSES:
        raise RecordError(f"cost point status must be one of {', '.join(STATUSES)}")
    if (point["status"] == "failed") != (point["error"] is not None):
        raise RecordError("a failed cost point needs an error, and only a failed one has one")
    if (point["axis"] == "task") != (point["length_T"] is None):
        raise RecordError("length_T is null exactly on the task's own point (axis 'task')")
    _check_phase("train", point["train"])
    _check_phase("infer", point["infer"])
    return point


def point_file(results_dir: Path, point_id: str) -> Path:
    """Where the point ``point_id`` of ``results_dir`` is written."""
    return Path(results_dir) / COST_DIR / f"{point_id}.json"


def write_point(results_dir: Path, point: dict[str, Any]) -> Path:
    """Validate and atomically write ``point`` as ``cost_points/<point_id>.json``."""
    validate_point(point)
    path = point_file(results_dir, point["point_id"])
    write_json_atomic(path, point)
    return path


def is_point_file(relative: str) -> bool:
    """Whether ``relative`` (a path inside a results folder, with ``/``) is a cost point file,
    which ``--overwrite`` removes."""
    parts = relative.split("/")
    return (len(parts) == 2 and parts[0] == COST_DIR and parts[1].endswith(".json")
            and bool(_POINT_ID.match(parts[1].removesuffix(".json"))))


@dataclass(frozen=True)
class CostFolder:
    """The cost points of a results folder, the unreadable ones set apart."""

    points: list[dict[str, Any]]
    unreadable: list[Unreadable]


def read_point(path: Path) -> dict[str, Any]:
    """One cost point; :class:`RecordError` (without the path) when it cannot be read."""
    try:
        return validate_point(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"cannot read cost point: {exc}") from None


def load_points(results_dir: Path) -> CostFolder:
    """Every cost point of ``results_dir`` (none when it has no ``cost/`` folder), sorted by id."""
    good, bad = [], []
    for path in sorted((Path(results_dir) / COST_DIR).glob("*.json")):
        try:
            good.append(read_point(path))
        except RecordError as exc:
            bad.append(Unreadable(path.stem, path, str(exc)))
    return CostFolder(good, bad)


def read_points_payload(results_dir: Path) -> CostFolder | None:
    """The report's payload: the folder's cost points, or None when it holds none."""
    folder = load_points(results_dir)
    return folder if folder.points or folder.unreadable else None


def finished(point: Mapping[str, Any]) -> bool:
    """Whether ``--resume`` skips this point: measured, or out of memory (a result)."""
    return point["status"] in ("ok", "oom")
