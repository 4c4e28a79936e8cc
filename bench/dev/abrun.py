"""The baseline commit and the candidate tree, each running its own benchmark suite, interleaved.

The baseline commit is named in ``tests/benchmarks/baseline-commit``. It is checked out as a git
worktree under ``.benchmarks/ab/`` and removed afterwards; the candidate is the working tree
itself, uncommitted changes included. Both run with the candidate's Python environment, each with
its own code first on ``sys.path`` (cwd and ``PYTHONPATH`` set to its tree; the venv's editable
install is a meta-path finder, consulted after ``sys.path``). A small pytest plugin, written next
to the passes and loaded into both, applies the selection and records which files ``bench``,
``models``, ``data_pipeline`` and ``tests`` were imported from; a pass that imported the other
tree's code is an error, not a measurement.

Only the fastest round of each benchmark is read from the passes (:mod:`bench.dev.gate`), so the
baseline commit's suite may be any earlier version of the suite.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASELINE_COMMIT_FILE = Path("tests/benchmarks/baseline-commit")
SUITE = "tests/benchmarks"
CHECKED_PACKAGES = ("bench", "models", "data_pipeline", "tests")
SELECTIONS = ("ci", "all")
# Beside the default set, always in the CI selection: the hand-written lstm, whose step is the
# slowest of the suite's model steps and the one the fused-vs-scratch check needs.
CI_EXTRA_MODELS = ("lstm_scratch",)
# Benchmarks of the CI selection that are not per-model steps (node-id globs).
CI_OTHER = (
    glob.escape("::test_trainer_epoch[") + "*",
    glob.escape("::test_trainer_vs_notebook_loop[") + "*",
    "*/test_bench_data.py::*",
    "*/test_bench_scan.py::*",
)

_PLUGIN_NAME = "rnnbench_ab_probe"
# Written to a folder on PYTHONPATH for both trees: it must not live in either tree's packages,
# or each tree would import it from its own (possibly older) code.
_PLUGIN_SOURCE = '''\
"""Written by bench.dev.abrun: applies the A/B selection and records where the project was imported from."""
import fnmatch
import json
import os
import sys


def pytest_collection_modifyitems(session, config, items):
    patterns = json.loads(os.environ["RNNBENCH_AB_SELECT"])
    if not patterns:
        return
    keep = [i for i in items if any(fnmatch.fnmatchcase(i.nodeid, p) for p in patterns)]
    drop = [i for i in items if i not in keep]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    modules = {name: getattr(sys.modules.get(name), "__file__", None)
               for name in json.loads(os.environ["RNNBENCH_AB_PACKAGES"])}
    with open(os.environ["RNNBENCH_AB_PROBE"], "w", encoding="utf-8") as handle:
        json.dump(modules, handle)
'''


class AbRunError(RuntimeError):
    """Something that stops the A/B run, said in one line."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise AbRunError("git is not installed; the gate checks out the baseline commit with it") from exc


def read_baseline_commit(root: Path) -> str:
    """The revision named in ``tests/benchmarks/baseline-commit``: its first word that is not a comment."""
    path = root / BASELINE_COMMIT_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AbRunError(f"cannot read {BASELINE_COMMIT_FILE}: {exc.strerror}") from exc
    words = [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not words:
        raise AbRunError(f"{BASELINE_COMMIT_FILE} names no commit")
    return words[0]


def resolve_commit(root: Path, revision: str) -> str:
    """The full hash of ``revision``; one clear line when this checkout cannot provide it."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise AbRunError(f"{root} is not a git checkout: the gate needs the repository's history "
                         "to check out the baseline commit (clone it with git)")
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode == 0:
        return found.stdout.strip()
    shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    hint = ("this clone is shallow: run `git fetch --unshallow`" if shallow else
            "fetch it (`git fetch origin`), or correct " + str(BASELINE_COMMIT_FILE))
    raise AbRunError(f"baseline commit {revision} is not in this clone; {hint}")


@contextmanager
def baseline_worktree(root: Path, commit: str, path: Path) -> Iterator[Path]:
    """``commit`` checked out (detached) at ``path``; removed on exit, whatever happened."""
    _remove_worktree(root, path)  # left over from an interrupted run
    added = _git(root, "worktree", "add", "--detach", "--force", str(path), commit)
    if added.returncode != 0:
        raise AbRunError(f"git worktree add {commit[:12]} failed: {added.stderr.strip()}")
    try:
        yield path
    finally:
        _remove_worktree(root, path)


def _remove_worktree(root: Path, path: Path) -> None:
    if path.exists():
        _git(root, "worktree", "remove", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
    _git(root, "worktree", "prune")


def selection_patterns(selection: str, models: Sequence[str]) -> list[str]:
    """Node-id globs of a named selection: ``all`` is the whole suite (no globs).

    ``ci``: the training and inference step of each of ``models``, their alternative padding
    path, the trainer-overhead epoch, the notebook comparison and the data pipeline's stages.
    """
    if selection == "all":
        return []
    if selection != "ci":
        raise AbRunError(f"unknown selection {selection!r}; expected one of {SELECTIONS}")
    # fnmatch reads "[" as a character class: escape it in the literal parts.
    patterns = [
        "*" + glob.escape(f"::{test}[") + "*" + glob.escape(f"-{model}]")
        for model in models
        for test in ("test_train_step", "test_infer_step", "test_train_step_alternative_padding")
    ]
    return patterns + ["*" + p if not p.startswith("*") else p for p in CI_OTHER]


def ci_models() -> list[str]:
    """The default set of the registry plus :data:`CI_EXTRA_MODELS` (the candidate's registry)."""
    from models import list_models

    defaults = list_models(default_only=True)
    return defaults + [m for m in CI_EXTRA_MODELS if m not in defaults]


def _write_plugin(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{_PLUGIN_NAME}.py").write_text(_PLUGIN_SOURCE, encoding="utf-8")


def run_pass(
    tree: Path,
    json_path: Path,
    *,
    patterns: Sequence[str],
    plugin_dir: Path,
    extra_plugins: Sequence[str] = (),
) -> float:
    """One whole-suite pass of ``tree``'s own suite, writing ``json_path``; returns its seconds.

    Raises:
        AbRunError: pytest failed, or the pass imported project code from outside ``tree``.
    """
    probe = json_path.with_suffix(".imports.json")
    log = json_path.with_suffix(".log")
    # A pass is a pytest of its own: nothing of a pytest that started it (pytest-xdist's worker
    # variables make pytest-benchmark skip every benchmark) reaches it.
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONSAFEPATH" and not key.startswith("PYTEST_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tree), str(plugin_dir)]),
        RNNBENCH_AB_SELECT=json.dumps(list(patterns)),
        RNNBENCH_AB_PROBE=str(probe),
        RNNBENCH_AB_PACKAGES=json.dumps(CHECKED_PACKAGES),
    )
    command = [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider",
               "-p", _PLUGIN_NAME, f"--benchmark-json={json_path}"]
    for plugin in extra_plugins:
        command += ["-p", plugin]
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise AbRunError(f"the suite failed in {tree} (exit {done.returncode}; log {log}): "
                         f"{tail[0] if tail else ''}")
    check_imports(tree, json.loads(probe.read_text(encoding="utf-8")))
    return seconds


def check_imports(tree: Path, modules: dict[str, str | None]) -> None:
    """Raise when a checked package was imported from outside ``tree`` (or not at all)."""
    root = tree.resolve()
    for name, file in sorted(modules.items()):
        if name in ("bench", "models") and file is None:
            raise AbRunError(f"the pass in {tree} never imported {name}")
        if file is not None and not Path(file).resolve().is_relative_to(root):
            raise AbRunError(f"the pass in {tree} imported {name} from {file}, not from its own "
                             "tree: its timings would measure the wrong code")


def run_interleaved(
    root: Path,
    commit: str,
    *,
    passes: int,
    patterns: Sequence[str],
    out: Path,
    candidate_plugins: Sequence[str] = (),
    log: Any = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``passes`` baseline passes and as many candidate passes, A, B, A, B, ...; their JSON runs."""
    from bench.dev.gate import load_run

    if passes < 1:
        raise AbRunError(f"--passes must be at least 1, got {passes}")
    if out.exists():
        shutil.rmtree(out)
    plugin_dir = out / "plugin"
    _write_plugin(plugin_dir)
    baseline_runs: list[dict[str, Any]] = []
    candidate_runs: list[dict[str, Any]] = []
    with baseline_worktree(root, commit, out / "baseline-tree") as tree:
        for i in range(1, passes + 1):
            for label, where, runs, plugins in (("A", tree, baseline_runs, ()),
                                                ("B", root, candidate_runs, candidate_plugins)):
                path = out / f"{label}-{i}.json"
                seconds = run_pass(where, path, patterns=patterns, plugin_dir=plugin_dir,
                                   extra_plugins=plugins)
                runs.append(load_run(path))
                log(f"bench gate: pass {label}{i} ({'baseline ' + commit[:9] if label == 'A' else 'candidate'})"
                    f": {len(runs[-1]['benchmarks'])} benchmarks in {seconds:.0f} s")
    return baseline_runs, candidate_runs


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` subcommand's options."""
    parser.add_argument("--baseline-commit", default=None,
                        help=f"a revision to compare with (default: the one named in {BASELINE_COMMIT_FILE})")
    parser.add_argument("--passes", type=int, default=3,
                        help="passes per side, interleaved A, B, A, B, ... (default 3)")
    parser.add_argument("--select", choices=SELECTIONS, default="ci",
                        help="ci: the default set + lstm_scratch, trainer and notebook "
                             "benchmarks (default); all: the whole suite")
    parser.add_argument("--candidate-plugin", action="append", default=[], metavar="MODULE",
                        help="a pytest plugin loaded into the candidate's passes only "
                             "(e.g. tests.benchmarks.slowdown_plugin, to prove the gate)")
    parser.add_argument("--out", type=Path, default=Path(".benchmarks/ab"),
                        help="where passes, logs and the baseline worktree go (emptied first)")


def run_from_args(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the interleaved passes the parsed ``run`` options ask for, from the current directory."""
    # A CI job cancelled with SIGTERM: unwind, so the running pass is killed and the worktree removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    root = Path.cwd()
    revision = args.baseline_commit or read_baseline_commit(root)
    commit = resolve_commit(root, revision)
    models = ci_models() if args.select == "ci" else []
    patterns = selection_patterns(args.select, models)
    start = time.perf_counter()
    print(f"bench gate: baseline {revision} ({commit[:12]}) against this tree, {args.passes} "
          f"pass(es) each, selection {args.select}" + (f" (models {', '.join(models)})" if models else ""),
          flush=True)
    runs = run_interleaved(root, commit, passes=args.passes, patterns=patterns,
                           out=args.out.resolve(), candidate_plugins=args.candidate_plugin,
                           log=lambda line: print(line, flush=True))
    print(f"bench gate: {2 * args.passes} passes in {time.perf_counter() - start:.0f} s", flush=True)
    return runs
