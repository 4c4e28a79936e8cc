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
- **Commit.** The manifest records the commit that created the folder and every commit that wrote
  to it; continuing it from another commit, or from a checkout with uncommitted changes, is
  refused unless the user says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import portalocker

from bench import environment, records
from bench.config import RunSpec
from data_pipeline import DEFAULT_TASK

LOCK_NAME = ".lock"

#: Spec keys that identify a run within a folder rather than describe its settings.
_RUN_KEYS = ("task", "arch", "seed")

#: What records add to a spec's model section that is not a setting (a fact about the model).
_RECORD_ONLY_KEYS = ("model.recurrent",)


class FolderError(Exception):
    """The results folder cannot be written by this command (held, other settings, other code)."""


@contextlib.contextmanager
def locked(out_dir: Path, argv: Sequence[str]) -> Iterator[None]:
    """Hold the write lock of ``out_dir`` (which must exist) for the ``with`` block.

    Raises :class:`FolderError` naming the holder when another process holds it, and
    :class:`bench.records.OutputError` when the lock file cannot be created.
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
    ``per_arch`` keys (those ``--tune`` chooses per architecture)."""
    flat = _flatten({k: v for k, v in spec_dict.items() if k not in _RUN_KEYS})
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
    """This checkout's commit, whether it has uncommitted changes, and the time (UTC)."""
    commit, dirty = environment.git_state()
    return {"commit": commit, "dirty": dirty,
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


def check_commit(out_dir: Path, manifest: Mapping[str, Any], held: Sequence[dict[str, Any]]) -> None:
    """Refuse (:class:`FolderError`) to continue a folder from another commit than the one that
    created it, or from a checkout with uncommitted changes: its runs would come from other code."""
    created = creating_commit(manifest, held)
    commit, dirty = environment.git_state()
    if created is None and not dirty:
        return
    if created == commit and not dirty:
        return
    here = f"{commit[:12]}" if commit else "an unknown commit"
    if dirty:
        here += " with uncommitted changes"
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
