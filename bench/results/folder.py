"""A results folder's guarantees: one writer at a time, one set of settings, one commit.

- **Lock.** The process that writes a folder holds ``<out>/.lock`` (portalocker, as the dataset
  cache does) for as long as it runs; a second writer is refused with one line naming the holder.
  The kernel drops the lock when the holder dies, however it dies. Reading needs no lock: every
  file is replaced atomically.
- **Settings.** Every run of one task in a folder shares every setting except the architecture,
  the seed and what ``--tune`` chooses per architecture. The manifest records them per task
  (``task_settings``; ``settings`` is the last command's, and a folder written before tasks
  existed has only that one, IMDb's); a command that would add runs with other settings is
  refused, naming what differs. Several tasks may share a folder, each with its own settings.
- **Code.** The manifest records the commit that created the folder and every commit that wrote
  to it, each with a hash of the code it ran (every tracked file outside ``docs/`` and the results
  folder). Continuing it from other code, or from a checkout with uncommitted changes to the code,
  is refused unless the user says so; a later commit that changed only ``docs/`` or the results
  (committing finished records, say) runs the same code and may continue it.
- **Machine.** Timings of two CPU models (or two GPU models) do not mix: continuing a folder on
  another one is refused unless the user says so.
- **Ownership.** A folder is a results folder when its ``manifest.json`` is an rnnbench manifest
  (its content, never its name alone) or it holds rnnbench run records. ``--overwrite`` removes
  only what rnnbench writes (:func:`clear`), and refuses a folder whose files git tracks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import portalocker

from bench.results import cost, records
from bench.run import environment
from bench.run.config import RunSpec
from data_pipeline import DEFAULT_TASK

LOCK_NAME = ".lock"

#: Spec keys that identify a run within a folder rather than describe its settings.
_RUN_KEYS = ("task", "arch", "seed")

#: What records add to a spec's model section that is not a setting (a fact about the model).
_RECORD_ONLY_KEYS = ("model.recurrent",)


class FolderError(Exception):
    """The results folder cannot be written by this command (held, other settings, other code)."""


#: A run folder's name is its run id (:attr:`bench.run.config.RunSpec.run_id`).
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]+-s[0-9]+-[0-9a-f]{8}$")


def _written_name(name: str) -> str:
    """The file that ``name`` stands for: itself, or for the temporary file an interrupted atomic
    write left (``.<name>.<random>.tmp``, ``.<name>.tmp-<pid>``), the file it was writing."""
    match = re.match(r"^\.(.+?)\.(?:[^.]+\.tmp|tmp-[0-9]+)$", name)
    return match.group(1) if match else name


def _has_records(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds at least one record that follows rnnbench's record schema."""
    for path in records.record_paths(out_dir):
        try:
            records.read_record(path)
            return True
        except records.RecordError:
            continue
    return False


def manifest_if_ours(out_dir: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none; :class:`FolderError` when its
    ``manifest.json`` is not rnnbench's, and :class:`bench.results.records.RecordError` when it is
    damaged (rnnbench's, by the fields it has, or by the run records beside it)."""
    path = Path(out_dir) / records.MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return records.read_manifest(out_dir)
    except records.NotAManifestError as exc:
        raise FolderError(str(exc)) from None
    except records.RecordError as exc:
        if not _has_records(out_dir) and "cannot read manifest" in str(exc):
            raise FolderError(
                f"{path} cannot be read as an rnnbench manifest and {out_dir} holds no rnnbench "
                "run record, so it is not known to be an rnnbench results folder; choose another "
                "--out") from None
        raise


def check_target(out_dir: Path, *, resume: bool, overwrite: bool, continuing: bool) -> None:
    """Refuse an ``--out`` this command may not write (:class:`FolderError`, or
    :class:`bench.results.records.RecordError` for a damaged manifest); reads only, so a refused folder is
    untouched. ``continuing``: ``--resume`` or ``--run-id``, which add to a results folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FolderError(f"--out {out_dir} is a file; give a folder path")
    if not out_dir.is_dir() or not any(p.name != LOCK_NAME for p in out_dir.iterdir()):
        return  # nothing there yet
    if continuing:
        if manifest_if_ours(out_dir) is None:
            raise FolderError(f"{out_dir} is not an rnnbench results folder (no manifest.json); "
                              "choose another --out")
        return
    if not overwrite:
        raise FolderError(f"results folder {out_dir} already exists; pass --resume to continue "
                          "it, --overwrite to replace it, or choose another --out")
    try:
        ours = manifest_if_ours(out_dir) is not None
    except records.RecordError:
        ours = True  # damaged, but its records say whose it is
    if not ours and not _has_records(out_dir):
        raise FolderError(f"{out_dir} is not an rnnbench results folder (no manifest.json, no "
                          "run records); refusing to overwrite it: choose another --out")
    tracked = tracked_files(out_dir)
    if tracked:
        raise FolderError(
            f"{out_dir} holds {len(tracked)} file(s) tracked by git (such as {tracked[0]}): "
            "--overwrite would replace committed results; run into another --out and copy the "
            "new folder over the committed one, or continue it with --resume")


def tracked_files(folder: Path) -> list[str]:
    """The files under ``folder`` that the git work tree around it tracks (none outside one)."""
    try:
        listed = subprocess.run(["git", "-C", str(folder), "ls-files", "-z", "--", "."],
                                capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return []  # no git, or not inside a work tree
    return [name for name in listed.stdout.decode("utf-8", "replace").split("\0") if name]


def clear(out_dir: Path, is_report_output: Callable[[str], bool],
          own_files: Sequence[str] = ()) -> list[str]:
    """Remove what rnnbench wrote into ``out_dir`` (``--overwrite``; under the lock) and return
    the files it left in place, as paths relative to ``out_dir``.

    Removed: in each run folder (named by a run id, or holding a record) the files a run writes;
    the cost points (``cost_points/<point_id>.json``); every file ``is_report_output(relative path)`` says a render writes; ``own_files`` and the
    manifest at the top; the temporary files of interrupted atomic writes of any of these; then
    the folders this left empty. Everything else stays: a user's notebook in ``runs/``, their
    figure in ``plots/``, a folder of their own.
    """
    out_dir = Path(out_dir)
    top = {*own_files, records.MANIFEST_NAME}

    def written(relative: Path) -> bool:
        name = _written_name(relative.name)
        if len(relative.parts) == 1 and name in top:
            return True
        run_dir = out_dir / relative.parent
        if len(relative.parts) == 3 and relative.parts[0] == records.RUNS_DIR and (
                _RUN_ID.match(run_dir.name) or (run_dir / records.RECORD_NAME).is_file()):
            return name in records.RUN_FILES
        if cost.is_point_file((relative.parent / name).as_posix()):
            return True
        return is_report_output((relative.parent / name).as_posix())

    emptied: set[Path] = set()
    with records.writing(out_dir):
        for path in sorted(out_dir.rglob("*")):
            if (path.is_symlink() or not path.is_dir()) and written(path.relative_to(out_dir)):
                path.unlink()
                emptied.add(path.parent)
        # The folders left empty, deepest first, up to (not including) out_dir.
        for folder in sorted({p for d in emptied for p in (d, *d.parents)
                              if out_dir in p.parents}, key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
    return sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*")
                  if (p.is_symlink() or not p.is_dir()) and p.name != LOCK_NAME)


@contextlib.contextmanager
def locked(out_dir: Path, argv: Sequence[str]) -> Iterator[None]:
    """Hold the write lock of ``out_dir`` (which must exist) for the ``with`` block.

    Raises :class:`FolderError` naming the holder when another process holds it, and
    :class:`bench.results.records.OutputError` when the lock file cannot be created.
    """
    path = Path(out_dir) / LOCK_NAME
    with records.writing(path):
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until the block ends
    try:
        try:
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.LockException:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderError(
                f"results folder {out_dir} is being written by {holder}; wait for it to finish "
                "or choose another --out"
            ) from None
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with records.writing(path):
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started} "
                         f"({' '.join(argv)})\n")
            handle.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # it names no holder once released
                handle.truncate(0)
    finally:
        handle.close()  # closing the file releases the lock


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def settings_of(spec_dict: Mapping[str, Any], per_arch: Iterable[str] = ()) -> dict[str, Any]:
    """The settings of a run (a spec as :meth:`RunSpec.to_dict` or a record writes it), flat
    (``"train.epochs": 2``), without what identifies the run in its folder and without the
    ``per_arch`` keys (those ``--tune`` chooses per architecture). A budget extension has the
    settings of the run it extends (:func:`bench.results.records.base_spec`): its folder holds
    both, and its ``train.extends_epochs`` must still match that run's epochs."""
    flat = _flatten({k: v for k, v in records.base_spec(spec_dict).items() if k not in _RUN_KEYS})
    for key in (*per_arch, *_RECORD_ONLY_KEYS):
        flat.pop(key, None)
    return flat


def grid_settings(specs: Sequence[RunSpec], per_arch: Iterable[str] = ()) -> dict[str, Any]:
    """The settings every spec of a planned grid shares (they share all, by construction)."""
    return settings_of(specs[0].to_dict(), per_arch) if specs else {}


def _differences(held: Mapping[str, Any], asked: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    return [f"{key} is {held.get(key, 'unset')} there, {asked.get(key, 'unset')} here"
            for key in sorted(keys) if held.get(key) != asked.get(key)]


def task_settings(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's settings per task (a folder written before tasks: its ``settings``, IMDb's)."""
    if isinstance(manifest.get("task_settings"), Mapping):
        return {task: dict(values) for task, values in manifest["task_settings"].items()}
    if isinstance(manifest.get("settings"), Mapping):
        return {DEFAULT_TASK: dict(manifest["settings"])}
    return {}


def check_settings(
    out_dir: Path, manifest: Mapping[str, Any], held: Iterable[dict[str, Any]],
    asked: Mapping[str, Any], per_arch: Iterable[str] = (), task: str = DEFAULT_TASK,
) -> None:
    """Refuse (:class:`FolderError`) to add runs of ``task`` with settings ``asked`` to a folder
    whose manifest or records ``held`` say its runs of that task have other settings (runs of
    other tasks have settings of their own)."""
    per_arch = tuple(per_arch)
    differences: list[str] = []
    recorded = task_settings(manifest).get(task)
    if recorded is not None:
        differences = _differences(recorded, asked, set(recorded) | set(asked))
    for record in (r for r in held if r.get("task", DEFAULT_TASK) == task):
        if differences:
            break
        # A record's spec holds only the model hyperparameters its architecture accepts, and an
        # older record may lack newer keys: compare what both sides have.
        recorded = settings_of(record["spec"], per_arch)
        differences = _differences(recorded, asked, set(recorded) & set(asked))
    if differences:
        raise FolderError(
            f"{out_dir} holds runs with other settings ({'; '.join(differences[:4])}"
            f"{'; ...' if len(differences) > 4 else ''}); a report must compare like with like: "
            "use --out elsewhere, or --overwrite to replace those runs"
        )


def commit_entry() -> dict[str, Any]:
    """This checkout's commit, whether it has uncommitted changes to the code, the hash of its code
    (:func:`bench.run.environment.code_hash`) and the time (UTC)."""
    commit, dirty = environment.git_state()
    return {"commit": commit, "dirty": dirty,
            "code": environment.code_hash(commit) if commit else None,
            "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def creating_commit(manifest: Mapping[str, Any], held: Sequence[dict[str, Any]]) -> str | None:
    """The commit that created the folder: the manifest's first entry of ``commits``, or, for a
    folder written before manifests recorded it, the commit of its first record."""
    commits = manifest.get("commits")
    if isinstance(commits, list) and commits and isinstance(commits[0], Mapping):
        return commits[0].get("commit")
    for record in held:
        commit = (record.get("environment") or {}).get("git_commit")
        if commit:
            return str(commit)
    return None


def _creating_code(manifest: Mapping[str, Any], created: str | None) -> str | None:
    """The code hash of the commit that created the folder: as the manifest recorded it, else
    computed from that commit when this checkout has it."""
    commits = manifest.get("commits")
    if isinstance(commits, list) and commits and isinstance(commits[0], Mapping):
        recorded = commits[0].get("code")
        if isinstance(recorded, str):
            return recorded
    return environment.code_hash(created) if created else None


def check_commit(out_dir: Path, manifest: Mapping[str, Any], held: Sequence[dict[str, Any]]) -> None:
    """Refuse (:class:`FolderError`) to continue a folder with other code than the code that
    created it, or from a checkout with uncommitted changes to the code: its runs would come from
    other code. A later commit whose code is the same (it changed only ``docs/`` or the results
    folder: committed records, say) may continue it."""
    created = creating_commit(manifest, held)
    commit, dirty = environment.git_state()
    if created is None and not dirty:
        return
    code = _creating_code(manifest, created) if commit is not None else None
    same_code = created == commit or (code is not None and code == environment.code_hash(commit))
    if same_code and not dirty:
        return
    here = f"{commit[:12]}" if commit else "an unknown commit"
    if dirty:
        here += " with uncommitted changes to the code"
    elif created is not None and commit is not None:
        here += ", whose code differs (outside docs/ and the results folder)"
    there = created[:12] if created else "an unknown commit"
    raise FolderError(
        f"{out_dir} was created by commit {there} and this checkout is {here}, so new runs may not "
        "be comparable with its runs: pass --allow-other-commit to continue it anyway, or use "
        "--out elsewhere or --overwrite"
    )


def with_commit(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest's ``commits`` with this checkout's appended unless it is already the last."""
    commits = [c for c in manifest.get("commits") or [] if isinstance(c, Mapping)]
    entry = commit_entry()
    if commits and (commits[-1].get("commit"), commits[-1].get("dirty")) == (
        entry["commit"], entry["dirty"]
    ):
        return [dict(c) for c in commits]
    return [*map(dict, commits), entry]


def with_invocation(manifest: Mapping[str, Any], argv: Sequence[str] | None) -> list[dict[str, Any]]:
    """The manifest's ``invocations`` (every command that wrote to the folder, in order) with
    this one appended: its ``argv``, commit, start, and (set when it ends, by
    :func:`invocation_ended`) its ``wall_time_s``. A folder written before manifests kept them
    has none: its earlier commands are not known, and the report says so."""
    earlier = [dict(i) for i in manifest.get("invocations") or [] if isinstance(i, Mapping)]
    entry = commit_entry()
    return [*earlier, {"argv": list(argv or []), "commit": entry["commit"], "dirty": entry["dirty"],
                       "started_utc": records.utc_now(), "wall_time_s": None}]


def invocation_ended(manifest: dict[str, Any], wall_time_s: float) -> None:
    """Record the wall time of the manifest's last invocation (this command's)."""
    invocations = manifest.get("invocations")
    if isinstance(invocations, list) and invocations and isinstance(invocations[-1], dict):
        invocations[-1]["wall_time_s"] = wall_time_s


def machine_of(record: Mapping[str, Any]) -> str | None:
    """The processor a record's timings were measured on: its GPU on CUDA, else its CPU."""
    env = record.get("environment") or {}
    name = env.get("device_name") if env.get("device") == "cuda" else env.get("cpu_model")
    return str(name) if name else None


def check_machine(out_dir: Path, held: Sequence[dict[str, Any]], here: str) -> None:
    """Refuse (:class:`FolderError`) to add runs measured on the processor ``here`` to a folder
    whose records were measured on another: their speed and memory figures would mix."""
    there = sorted({name for name in map(machine_of, held) if name})
    if there and here not in there:
        raise FolderError(
            f"{out_dir} was measured on {', '.join(there)} and this machine is {here}: their "
            "timings would mix in one report; use --out elsewhere, or pass --allow-other-machine "
            "to continue it anyway (the report then names both)")


# --- a command's life in its folder -------------------------------------------------------------


def clear_for_overwrite(out_dir: Path, is_report_output: Callable[[str, Iterable[str]], bool]) -> None:
    """``--overwrite`` (under the lock): delete what rnnbench wrote into ``out_dir`` (its runs'
    files, the report ``is_report_output`` recognises, tuning, the gradient probe and the manifest)
    and say what it kept."""
    from data_pipeline import list_tasks

    tasks = list_tasks()
    kept = clear(out_dir, lambda relative: is_report_output(relative, tasks),
                 own_files=(records.TUNING_NAME, records.GRADIENT_FLOW_NAME))
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        print(f"--overwrite: kept {len(kept)} file(s) rnnbench did not write in {out_dir}: {shown}",
              file=sys.stderr)


@contextlib.contextmanager
def opened(out_dir: Path, argv: Sequence[str]) -> Iterator[None]:
    """Create ``out_dir`` if needed and hold its write lock (:func:`locked`); a folder this
    command created and left empty (it was refused, say) is removed again."""
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    with records.writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with locked(out_dir, argv):
            yield
    finally:
        if created and [p.name for p in out_dir.iterdir()] == [LOCK_NAME]:
            (out_dir / LOCK_NAME).unlink()
            out_dir.rmdir()


def check_held(
    out_dir: Path, manifest: Mapping[str, Any], held: records.Folder, *, settings: Mapping[str, Any],
    per_arch: Sequence[str], protocol: str | None, task: str, machine: str | None,
    allow_other_commit: bool, allow_other_machine: bool,
) -> None:
    """Refuse to add this command's runs (``settings``, ``protocol``, this code, this machine) to
    a folder holding ``manifest`` and ``held`` that differ; ``protocol`` None: the command has
    none of its own to check; ``machine`` None: there is no run to measure."""
    if protocol is not None and manifest.get("protocol", protocol) != protocol:
        raise FolderError(f"{out_dir} holds runs of the {manifest['protocol']} protocol; "
                          f"{'drop' if manifest['protocol'] == 'fixed' else 'add'} --tune or "
                          "choose another --out")
    check_settings(out_dir, manifest, held.records, settings, per_arch, task=task)
    if not allow_other_commit:
        check_commit(out_dir, manifest, held.records)
    if not allow_other_machine and machine is not None:
        check_machine(out_dir, held.records, machine)


def read_held(out_dir: Path) -> tuple[dict[str, Any], records.Folder]:
    """The folder's manifest and records ({} and none for a new folder); a damaged manifest or
    record folder raises :class:`FolderError` (one line)."""
    try:
        if not (Path(out_dir) / records.MANIFEST_NAME).is_file():
            return {}, records.Folder([], [])
        return records.read_manifest(out_dir), records.load_folder(out_dir)
    except records.RecordError as exc:
        raise FolderError(f"{exc}") from None


def say_unreadable(held: records.Folder, planned: Iterable[str], *, replanned_by: str | None) -> None:
    """Say of each unreadable record whether this command runs it again; ``replanned_by``: what
    plans runs as it goes ("tuning", "the sweep"), which runs one again if it plans it."""
    planned = set(planned)
    for item in held.unreadable:
        fate = ("it is run again" if item.run_id in planned else
                "it is run again if tuning plans that run" if replanned_by == "tuning" else
                f"{replanned_by} runs it again if it plans that run" if replanned_by else
                "it is not a run of this command's grid, so it stays as it is")
        print(f"unreadable record {item.message}; {fate}", file=sys.stderr)


def next_manifest(
    previous: Mapping[str, Any], *, run: Mapping[str, Any], archs: Sequence[str], task: str,
    seeds: int, protocol: str | None, settings: Mapping[str, Any],
    tuning: Mapping[str, Any] | None = None, suite_entries: Sequence[str] = (),
) -> dict[str, Any]:
    """The folder's manifest after this command: what it ran (``run``: profile, device, threads,
    jobs, executor, argv), merged with what the folder held (``previous``): ``suite_entries``
    are the keys suites keep their own summaries under, carried over. ``protocol`` None keeps
    the folder's (a suite may have none of its own)."""
    return {
        **run,
        # A resumed folder may have been started with other architectures: the report covers all.
        "archs": _merge_archs(previous.get("archs", []), archs),
        "tasks": list(dict.fromkeys([*previous.get("tasks", [DEFAULT_TASK] if previous else []),
                                     task])),
        "seeds": max(seeds, previous.get("seeds", 0)),
        "protocol": protocol or previous.get("protocol", "fixed"),
        **({"tuning": tuning} if tuning is not None else
           {"tuning": previous["tuning"]} if previous.get("tuning") else {}),
        **{key: previous[key] for key in suite_entries if previous.get(key)},
        "settings": settings,
        "task_settings": {**task_settings(previous), task: settings},
        "commits": with_commit(previous),
        "invocations": with_invocation(previous, run.get("argv")),
        "started_utc": previous.get("started_utc", records.utc_now()),
        "finished_utc": None,
        "wall_time_s": previous.get("wall_time_s", 0.0),
    }


def _merge_archs(previous: Sequence[str], new: Sequence[str]) -> list[str]:
    """The architectures of both, in registry order (unregistered ones after, by name)."""
    from models import list_models

    order = {name: i for i, name in enumerate(list_models())}
    merged = set(previous) | set(new)
    return sorted(merged, key=lambda name: (order.get(name, len(order)), name))
