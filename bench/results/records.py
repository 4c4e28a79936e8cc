"""Run records: one JSON file per run, written atomically, with a versioned schema.

A record is plain data (a ``dict`` that round-trips through JSON). It carries everything a report
needs, so a report is rebuilt from records alone and never re-trains anything. The schema is
documented in ``docs/record-schema.md``; :func:`validate_record` is its executable form, and
:mod:`bench.results.metrics` declares the metrics.

Layout of a results folder::

    <out>/manifest.json            the grid: profile, device, settings, commits, argv, times
    <out>/.lock                    held (portalocker) by the process writing the folder
    <out>/runs/<run_id>/record.json
    <out>/runs/<run_id>/test_probs.npy   per-review test probabilities (float32, test-split order)
    <out>/runs/<run_id>/model.pt, vocab.txt, config.json   (unless records-only)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results.metrics import required_metrics

#: Version 2 added the error types ``diverged`` and ``killed``, and the manifest's ``settings`` and
#: ``commits``; version 3 added cost points (:mod:`bench.results.cost`, a record kind of their own)
#: and the manifest's ``cost_suite``. Version-1 and -2 records and manifests are still read (they
#: use a subset of version 3).
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
RECORD_NAME = "record.json"
MANIFEST_NAME = "manifest.json"
RUNS_DIR = "runs"
TEST_PROBS_NAME = "test_probs.npy"
TEST_LABELS_NAME = "test_labels.npy"
CHECKPOINT_NAME = "model.pt"
VOCAB_NAME = "vocab.txt"
CONFIG_NAME = "config.json"
#: ``--tune``'s trials (:mod:`bench.grid.tune`), beside the runs.
TUNING_NAME = "tuning.json"
#: Settings of a run's spec that act on one device only (the setting: that device); on another
#: device the report shows them as not applying (``train.bf16`` on a CPU run does nothing).
DEVICE_ONLY_SETTINGS: dict[str, str] = {
    "train.bf16": "cuda",  # bf16 autocast
    "train.flush_denormal": "cpu",  # torch.set_flush_denormal, an x86 CPU flag
    "measure.infer_memory": "cpu",  # on CUDA the inference peak is always measured
}
#: Every file a run writes into its run folder (``--overwrite`` removes these and nothing else).
RUN_FILES = (RECORD_NAME, TEST_PROBS_NAME, TEST_LABELS_NAME, CHECKPOINT_NAME, VOCAB_NAME,
             CONFIG_NAME)

#: Error types a failed run may carry: the loss became NaN/infinite (``nan_loss``) or grew past
#: the divergence bound (``diverged``); an out-of-memory error was raised in the run (``oom``); the
#: run's process was killed by a signal, often the kernel's OOM killer (``killed``); any other
#: exception or exit (``crash``). ``timeout`` and ``interrupted`` are kept for older records.
ERROR_TYPES = ("nan_loss", "diverged", "oom", "killed", "timeout", "crash", "interrupted")

#: Keys of one entry of ``history`` (one per epoch run).
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s")

#: The fields every record has, with their types (the schema page shows them: schema_page.py).
REQUIRED_FIELDS: dict[str, type] = {
    "schema_version": int,
    "run_id": str,
    "arch": str,
    "seed": int,
    "profile": str,
    "status": str,
    "spec": dict,
    "environment": dict,
    "data": dict,
    "metrics": dict,
    "history": list,
}


class RecordError(ValueError):
    """A record (or results folder) that does not follow the schema."""


class OutputError(Exception):
    """Output that cannot be written: the message names the path and the cause."""

    def __init__(self, path: Path | str, cause: OSError | str) -> None:
        reason = cause if isinstance(cause, str) else (cause.strerror or str(cause))
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@contextlib.contextmanager
def writing(path: Path | str, *, name_path: bool = False) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing into ``path`` into an :class:`OutputError`
    (permission denied, read-only file system, disk full ...) naming the file the error names,
    else ``path``; with ``name_path``, always ``path`` (not the temporary file behind it)."""
    try:
        yield
    except OSError as exc:
        raise OutputError(path if name_path else (exc.filename or path), exc) from None


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def validate_record(record: dict[str, Any]) -> dict[str, Any]:
    """Check ``record`` against the schema and return it; raise :class:`RecordError` if not."""
    if not isinstance(record, dict):
        raise RecordError("a record must be a JSON object")
    for key, typ in REQUIRED_FIELDS.items():
        if key not in record:
            raise RecordError(f"record is missing {key!r}")
        if not isinstance(record[key], typ) or (typ is int and isinstance(record[key], bool)):
            raise RecordError(f"record field {key!r} must be {typ.__name__}")
    if record["schema_version"] not in READABLE_VERSIONS:
        raise RecordError(
            f"record schema_version {record['schema_version']} is not one of "
            f"{', '.join(map(str, READABLE_VERSIONS))}; re-run with this version of rnnbench"
        )
    status = record["status"]
    if status not in ("ok", "failed"):
        raise RecordError(f"record status must be 'ok' or 'failed', not {status!r}")
    error = record.get("error")
    if status == "failed":
        if not isinstance(error, dict) or error.get("type") not in ERROR_TYPES:
            raise RecordError(f"a failed record needs error.type in {ERROR_TYPES}")
        if not isinstance(error.get("message"), str):
            raise RecordError("a failed record needs error.message")
    else:
        if error is not None:
            raise RecordError("a successful record must have error null")
        # Only the required ones: a metric registered later is absent from older records, which
        # render with that cell empty (bench.results.metrics).
        missing = [m for m in required_metrics() if m not in record["metrics"]]
        if missing:
            raise RecordError(f"record metrics missing: {', '.join(missing)}")
    concurrent = record.get("concurrent_runs", 1)  # older records lack it: they ran alone
    if isinstance(concurrent, bool) or not isinstance(concurrent, int) or concurrent < 1:
        raise RecordError("record field 'concurrent_runs' must be a whole number >= 1")
    notes = record.get("timing_notes", [])  # optional: absent when there is nothing to say
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise RecordError("record field 'timing_notes' must be a list of strings")
    for name, value in record["metrics"].items():
        if value is not None and not isinstance(value, int | float):
            raise RecordError(f"metric {name!r} must be a number or null")
    for entry in record["history"]:
        if not isinstance(entry, dict) or any(k not in entry for k in HISTORY_KEYS):
            raise RecordError(f"each history entry needs {', '.join(HISTORY_KEYS)}")
    return record


def _json_default(value: Any) -> Any:
    # numpy scalars and paths appear in metrics and specs; JSON has no NaN, so it becomes null.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean_floats(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_floats(v) for v in value]
    return value


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder and a rename, so a
    reader never sees half a file and an interrupted write leaves the old one in place.

    The file gets the permissions the user's umask gives a new file (``mkstemp`` alone would make
    it 0600). Any ``OSError`` becomes an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    with writing(path, name_path=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with writing(path, name_path=True):
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (:func:`write_bytes_atomic`)."""
    text = json.dumps(_clean_floats(payload), indent=2, sort_keys=False, default=_json_default)
    write_bytes_atomic(path, (text + "\n").encode("utf-8"))


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Validate and atomically write ``record`` as ``run_dir/record.json``."""
    validate_record(record)
    path = Path(run_dir) / RECORD_NAME
    write_json_atomic(path, record)
    return path


def _parse_record(path: Path) -> dict[str, Any]:
    # RecordError here says what is wrong, not where: callers add the path their way.
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"cannot read record: {exc}") from None
    return validate_record(record)


def read_record(path: Path) -> dict[str, Any]:
    """Read and validate one record; a corrupt file raises :class:`RecordError` naming it."""
    path = Path(path)
    try:
        return _parse_record(path)
    except RecordError as exc:
        raise RecordError(f"{path}: {exc}") from None


def record_paths(results_dir: Path) -> list[Path]:
    """The record files of a results folder, sorted by run folder name."""
    return sorted((Path(results_dir) / RUNS_DIR).glob(f"*/{RECORD_NAME}"))


@dataclass(frozen=True)
class Unreadable:
    """A record file that exists but cannot be read or does not follow the schema."""

    run_id: str  # the name of its run folder
    path: Path
    problem: str  # what is wrong with it (the path not included)

    @property
    def message(self) -> str:
        """The problem, naming the file."""
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class Folder:
    """What a results folder holds: its readable records and the ones that are not."""

    records: list[dict[str, Any]]
    unreadable: list[Unreadable]


def load_folder(results_dir: Path) -> Folder:
    """Every record of a results folder, the unreadable ones set apart instead of raised, so one
    corrupt file neither hides the rest nor blocks a re-run; raise :class:`RecordError` only if
    ``results_dir`` is not a results folder."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RecordError(f"{results_dir} is not a folder")
    if not (results_dir / MANIFEST_NAME).is_file():
        raise RecordError(f"{results_dir} is not an rnnbench results folder (no {MANIFEST_NAME})")
    good, bad = [], []
    for path in record_paths(results_dir):
        try:
            good.append(_parse_record(path))
        except RecordError as exc:
            bad.append(Unreadable(path.parent.name, path, str(exc)))
    return Folder(good, bad)


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """All records of a results folder; raise :class:`RecordError` if it is not one, or if any
    record is unreadable (:func:`load_folder` sets those apart instead)."""
    folder = load_folder(results_dir)
    if folder.unreadable:
        raise RecordError(folder.unreadable[0].message)
    return folder.records


#: The manifest's fields and their types. The first two are what makes a ``manifest.json`` an
#: rnnbench manifest (every version has written them); the others are optional (older manifests
#: lack some) but must have their type when present, since the report and ``--resume`` read them.
_MANIFEST_REQUIRED = {"schema_version": int, "profile": str}
_MANIFEST_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "device": str, "argv": list, "threads": int, "jobs": (int, str), "executor": str, "archs": list, "tasks": list,
    "seeds": int, "protocol": str, "tuning": dict, "memory_suite": dict, "cost_suite": dict,
    "settings": dict,
    "task_settings": dict, "commits": list, "started_utc": str, "finished_utc": (str, type(None)),
    "wall_time_s": (int, float), "interrupted": bool,
}  # fmt: skip
#: List fields whose items must be strings, and the type of each entry of the others.
_MANIFEST_ITEMS: dict[str, type] = {
    "argv": str, "archs": str, "tasks": str, "commits": dict, "task_settings": dict,
}


class NotAManifestError(RecordError):
    """A ``manifest.json`` that rnnbench did not write (another tool's file of that name)."""


def _has_type(value: Any, typ: type | tuple[type, ...]) -> bool:
    types = typ if isinstance(typ, tuple) else (typ,)
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def validate_manifest(manifest: Any, path: Path | str = MANIFEST_NAME) -> dict[str, Any]:
    """Check a parsed ``manifest.json`` and return it.

    Raises :class:`NotAManifestError` when it is not an rnnbench manifest at all (not an object,
    or without the fields every rnnbench manifest has), and :class:`RecordError` when it is one
    whose fields have the wrong type or version; each message names ``path`` and what to do.
    """
    if not isinstance(manifest, dict) or any(key not in manifest for key in _MANIFEST_REQUIRED):
        raise NotAManifestError(
            f"{path} is not an rnnbench manifest (rnnbench's has "
            f"{', '.join(_MANIFEST_REQUIRED)}), so its folder is not an rnnbench results folder; "
            "choose another --out")
    damaged = f"{path} is damaged"
    fix = ("restore it (git checkout, a backup), or start the folder again with --overwrite "
           "(it removes only what rnnbench wrote)")
    if manifest["schema_version"] not in READABLE_VERSIONS or isinstance(
            manifest["schema_version"], bool):
        raise RecordError(f"{path} has schema_version {manifest['schema_version']!r}, not one of "
                          f"{', '.join(map(str, READABLE_VERSIONS))}; re-run with the rnnbench "
                          "version that wrote it, or " + fix.split(", or ", 1)[1])
    for key, typ in {**_MANIFEST_REQUIRED, **_MANIFEST_OPTIONAL}.items():
        if key in manifest and not _has_type(manifest[key], typ):
            names = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
            raise RecordError(f"{damaged}: field {key!r} must be {names}, not "
                              f"{type(manifest[key]).__name__}; {fix}")
    for key, typ in _MANIFEST_ITEMS.items():
        items = manifest.get(key) or []
        values = items.values() if isinstance(items, dict) else items
        if not all(_has_type(item, typ) for item in values):
            raise RecordError(f"{damaged}: every entry of {key!r} must be {typ.__name__}; {fix}")
    return manifest


def parse_manifest(path: Path) -> dict[str, Any]:
    """Read and validate the manifest file at ``path`` (:func:`validate_manifest`); a file that
    cannot be read or parsed raises :class:`RecordError` naming it."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(
            f"cannot read manifest {path} ({exc}); if rnnbench wrote it, restore it (git "
            "checkout, a backup) or start the folder again with --overwrite (it removes only "
            "what rnnbench wrote)") from None
    return validate_manifest(manifest, path)


def write_manifest(out_dir: Path, payload: dict[str, Any]) -> None:
    """Write the results folder's manifest atomically, with the schema version."""
    write_json_atomic(Path(out_dir) / MANIFEST_NAME, {"schema_version": SCHEMA_VERSION, **payload})


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second (the manifest's and records' timestamps)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(results_dir: Path) -> dict[str, Any]:
    """The manifest of a results folder (grid settings and timing), validated
    (:func:`parse_manifest`)."""
    return parse_manifest(Path(results_dir) / MANIFEST_NAME)



#: The task of a record that names none (written before tasks existed: all were IMDb's).
DEFAULT_TASK = "imdb"


def task_of(record: dict[str, Any]) -> str:
    """The task a record's run belongs to (``task``; IMDb for records written before tasks)."""
    task = record.get("task")
    return task if isinstance(task, str) and task else DEFAULT_TASK


def task_facts(record: dict[str, Any]) -> dict[str, Any]:
    """What the task's registration said when the run was made (``task_info``): name, title,
    description, citation, what one example is called, whether its inputs are text.

    A record written before tasks existed carries none; its task is IMDb, whose facts are read
    from the registry (imported here only then: it loads the data pipeline and torch).
    """
    facts = record.get("task_info")
    if isinstance(facts, dict):
        return facts
    from data_pipeline import task_info

    return task_info(task_of(record)).record_facts()


def ok_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The successful records only."""
    return [r for r in records if r["status"] == "ok"]


# --- budget-bound runs and their extensions -----------------------------------------------------


def budget_bound(record: Mapping[str, Any]) -> bool:
    """Whether the epoch cap ended the run before early stopping or the target accuracy would
    have: ``stop_reason: epochs`` with its best validation loss within the patience of the last
    epoch (still improving, or not for long enough to stop). More epochs might change its
    figures. A run whose last ``patience`` epochs brought no better loss would have stopped there
    anyway: not budget-bound."""
    if record.get("stop_reason") != "epochs":
        return False
    metrics = record.get("metrics") or {}
    train = ((record.get("spec") or {}).get("train") or {})
    epochs, best, patience = metrics.get("epochs_run"), metrics.get("best_epoch"), train.get("patience")
    if not all(isinstance(v, int | float) for v in (epochs, best, patience)):
        return True  # the cap ended it and nothing says it had stopped learning
    return epochs - best < patience


def extended_epochs(spec: Mapping[str, Any]) -> int:
    """The epochs of the run that a record's spec extends (``train.extends_epochs``; 0: the run
    is no budget extension)."""
    value = (spec.get("train") or {}).get("extends_epochs", 0)
    return value if isinstance(value, int) else 0


def base_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec of the run that ``spec`` extends (its ``train.epochs`` those it extends, without
    ``train.extends_epochs``); ``spec`` itself (a copy) when it is no budget extension. A budget
    extension and the run it extends have the same settings in every other respect."""
    out = dict(spec)
    extends = extended_epochs(spec)
    if extends:
        out["train"] = {k: v for k, v in spec["train"].items() if k != "extends_epochs"}
        out["train"]["epochs"] = extends
    return out


def _run_key(spec: Mapping[str, Any]) -> str:
    return json.dumps(base_spec(spec), sort_keys=True, default=str)


def extensions_of(records: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each successful budget extension among ``records`` with the run it extends, as (extended
    run, extension), in the extensions' order; an extension whose run is not among them is left
    out."""
    records = list(records)
    bases = {_run_key(r["spec"]): r for r in records if not extended_epochs(r.get("spec") or {})}
    return [(bases[_run_key(r["spec"])], r) for r in ok_records(records)
            if extended_epochs(r.get("spec") or {}) and _run_key(r["spec"]) in bases]


def current(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` without every run that a successful budget extension among them supersedes:
    the extension's result stands for that run (a failed extension supersedes nothing)."""
    records = list(records)
    superseded = {id(base) for base, _ in extensions_of(records)}
    return [r for r in records if id(r) not in superseded]


# --- gradient flow ------------------------------------------------------------------------------

#: The gradient-flow probes of a results folder (``bench.suites.memory.gradflow`` measures them), beside its
#: manifest. Its schema lives here, beside the records', so a report reads it without torch.
GRADIENT_FLOW_NAME = "gradient_flow.json"
GRADIENT_FLOW_SCHEMA = 1

_PROBE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": str, "arch": str, "run_id": str, "seed": int, "setting": str,
    "distance_T": (int, type(None)), "alphabet": (int, type(None)),
    "n_signals": (int, type(None)), "sequences": int, "init": dict, "trained": dict,
}  # fmt: skip
_PROFILE_LISTS = ("distance", "grad_norm", "count")


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _check_profile(where: str, profile: dict[str, Any], extra: tuple[str, ...]) -> None:
    for key in (*_PROFILE_LISTS, "decay_per_span", *extra):
        if key not in profile:
            raise RecordError(f"{where} is missing {key!r}")
    lists = [profile[key] for key in _PROFILE_LISTS]
    if not all(isinstance(values, list) for values in lists) or len({len(v) for v in lists}) != 1:
        raise RecordError(f"{where}: {', '.join(_PROFILE_LISTS)} must be lists of one length")
    if not all(_number_or_null(v) for values in lists for v in values):
        raise RecordError(f"{where}: {', '.join(_PROFILE_LISTS)} must hold numbers")
    for key in ("decay_per_span", *extra):
        if not _number_or_null(profile[key]):
            raise RecordError(f"{where}: {key!r} must be a number or null")


def validate_gradient_flow(payload: Any) -> dict[str, Any]:
    """Check a ``gradient_flow.json`` payload against its schema and return it; raise
    :class:`RecordError` saying what is wrong if it does not follow it.

    ``{"schema": 1, "span": 50, "probes": [...]}``; each probe names its run (``task``, ``arch``,
    ``run_id``, ``seed``), its batch (``setting``, prose for tables; ``distance_T``,
    ``alphabet``, ``n_signals``, null for a task without them; ``sequences``) and holds two
    profiles, ``init`` and ``trained``: per distance from the readout (``distance``), the mean
    gradient norm (``grad_norm``) over the ``count`` sequences that reach it, and the fitted
    ``decay_per_span`` (null where it could not be fitted); ``trained`` also has ``epochs`` and
    ``test_accuracy``. ``left_out`` (optional) lists the runs the probe meant to read and could
    not, each with its ``run_id`` and ``reason``.
    """
    if not isinstance(payload, dict):
        raise RecordError("gradient flow: the payload must be a JSON object")
    if payload.get("schema") != GRADIENT_FLOW_SCHEMA:
        raise RecordError(f"gradient flow: schema {payload.get('schema')!r} is not "
                          f"{GRADIENT_FLOW_SCHEMA}; re-run the probes with this version")
    span = payload.get("span")
    if isinstance(span, bool) or not isinstance(span, int) or span < 1:
        raise RecordError("gradient flow: 'span' must be a whole number >= 1")
    probes = payload.get("probes")
    if not isinstance(probes, list):
        raise RecordError("gradient flow: 'probes' must be a list")
    for index, probe in enumerate(probes):
        where = f"gradient flow probe {index}"
        if not isinstance(probe, dict):
            raise RecordError(f"{where} must be an object")
        for key, typ in _PROBE_FIELDS.items():
            if key not in probe:
                raise RecordError(f"{where} is missing {key!r}")
            value = probe[key]
            if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
                raise RecordError(f"{where}: {key!r} has the wrong type")
        _check_profile(f"{where} ({probe['run_id']}) init", probe["init"], ())
        _check_profile(f"{where} ({probe['run_id']}) trained", probe["trained"],
                       ("epochs", "test_accuracy"))  # fmt: skip
    left_out = payload.get("left_out", [])  # optional: the runs the probe could not read
    if not isinstance(left_out, list) or not all(
            isinstance(e, dict) and isinstance(e.get("run_id"), str)
            and isinstance(e.get("reason"), str) for e in left_out):  # fmt: skip
        raise RecordError("gradient flow: 'left_out' must be a list of {run_id, reason}")
    return payload


def write_gradient_flow(results_dir: Path, payload: dict[str, Any]) -> Path:
    """Validate ``payload`` and write it atomically as ``results_dir/gradient_flow.json``."""
    validate_gradient_flow(payload)
    path = Path(results_dir) / GRADIENT_FLOW_NAME
    write_json_atomic(path, payload)
    return path


def read_gradient_flow(results_dir: Path) -> dict[str, Any] | None:
    """The gradient-flow probes of a results folder; None when it has none (the file is
    absent); :class:`RecordError` naming the file when it cannot be read or breaks the schema."""
    path = Path(results_dir) / GRADIENT_FLOW_NAME
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return validate_gradient_flow(payload)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecordError) as exc:
        raise RecordError(f"{path}: {exc}; run the gradient-flow probe again (run_all.py --suite "
                          "memory --resume), or remove the file to render without it") from None
