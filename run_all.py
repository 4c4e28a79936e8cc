#!/usr/bin/env python3
"""rnnbench: train every chosen architecture on a task (IMDb by default) through one pipeline and
one trainer, then write a report that compares accuracy, speed and memory.

    python run_all.py                          # the default set, profile for this machine
    python run_all.py --profile smoke          # a minute, end to end
    python run_all.py --archs 'lstm,bi*' --seeds 3
    python run_all.py --tune                   # lr and dropout chosen per architecture first
    python run_all.py --list-tasks             # the registered tasks (--task NAME)
    python run_all.py --report-only --out results/quick-cpu
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily at run time, so --help stays instant
    import torch

    from bench.config import ModelSettings, RunConfig, RunSpec
    from bench.runner import GridOutcome

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _jobs(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (the help text says)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Data: --data PATH or the RNNBENCH_IMDB variable name the IMDb archive "
            "(aclImdb_v1.tar.gz, its labeled part, or an extracted aclImdb/ folder); otherwise the "
            "cache ($XDG_CACHE_HOME/rnnbench) or a download is used. Exit codes: 0 every run "
            "succeeded, 1 a run failed (named at the end; --resume retries it) or a record is "
            "unreadable, 2 bad input, a results folder in use, or output that cannot be written, "
            "130 interrupted."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--profile", choices=("smoke", "quick", "long", "full"), default=None,
        help="configuration profile: smoke (a minute, subsampled data), quick (~20 min on 2 CPU "
        "cores), long (whole reviews, vocabulary 30,000, larger models and the pooled readouts: "
        "each architecture at its best; ~45 min per seed on 2 CPU cores), full (the notebook's "
        "configuration, meant for a GPU); default: full on CUDA, quick on CPU",
    )
    parser.add_argument(
        "--suite", choices=("memory",), default=None,
        help="memory: instead of one grid, the memory suite: every recurrent architecture on the "
        "generated memory task at T = 16, 32, 64, ... until it fails (the horizon), more seeds "
        "where its result changes, floors at the first and last T, and the gradient-flow probe; "
        "run it into the folder of an IMDb grid (--resume) and the report adds the notebook's "
        "table, measured",
    )
    parser.add_argument("--loads", default=None, metavar="N/A,...",
                        help="with --suite memory: the memory loads, N symbols of an alphabet of "
                        "A each (default: 2/16,2/4)")
    parser.add_argument("--max-distance", type=_positive_int, default=None, metavar="T",
                        help="with --suite memory: the largest T the sweep may reach (default: "
                        "512; it doubles from 16 while any architecture still solves the last T)")
    parser.add_argument("--task", default=None, metavar="NAME",
                        help="the task to run (see --list-tasks; default: imdb); a results folder "
                        "may hold several tasks, each reported in its own section")
    parser.add_argument(
        "--archs", nargs="+", default=None, metavar="NAME",
        help="architectures: registry names or glob patterns, space- or comma-separated "
        "(see --list-archs); default: the registry's default set",
    )
    parser.add_argument("--seeds", type=_positive_int, default=1, metavar="N",
                        help="run every architecture with model seeds 0..N-1")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="override the profile's number of epochs")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="override any run setting, e.g. train.lr=3e-3 or model.hidden_dim=128, or one "
        "model's own hyperparameter, e.g. lstm.hidden_dim=128 or tfidf_logreg.min_df=3 "
        "(repeatable; bare field names work when unambiguous; see docs/configuration.md)",
    )
    parser.add_argument(
        "--tune", action="store_true",
        help="tuned protocol: before the final runs, choose each architecture's learning rate "
        "(profile lr x 1/3, 1, 3) and dropout (profile dropout x 1, 1/2) by short trials scored "
        "on the validation split (never on test); trials go to <out>/tuning.json and the report "
        "names the chosen values",
    )
    parser.add_argument("--tune-epochs", type=_positive_int, default=None, metavar="N",
                        help="epochs per tuning trial (default: half the profile's epochs)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="CPU threads per run (default: 1 on CPU: the per-step matrices of "
                        "these models are small, and with a second busy process on the machine "
                        "two threads made a step up to 70x slower; torch's default on CUDA)")
    parser.add_argument(
        "--jobs", type=_jobs, default=1, metavar="N",
        help="runs (and tuning trials) at once, each in its own process: a number, or auto (one "
        "per visible GPU on CUDA, cores // --threads on CPU); jobs x threads may not exceed the "
        "cores. Records of runs that shared the machine say so (concurrent_runs) and the report "
        "marks their speed and memory figures",
    )
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="local: child processes on this machine (--jobs); ray: each run a Ray task with the "
        "CPUs (--threads) or GPU it needs, records written here by this process (needs "
        "pip install 'rnnbench[ray]')",
    )
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="with --executor ray: the head of a running Ray cluster (host:port, "
                        "or auto); default: start a local Ray on this machine's cores")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="compute device; auto picks CUDA when present")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="IMDb archive or extracted aclImdb/ folder (else $RNNBENCH_IMDB, the "
                        "cache, or a download)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="results folder (default: results/<profile>-<device>)")
    exists = parser.add_mutually_exclusive_group()
    exists.add_argument("--resume", action="store_true",
                        help="continue in an existing results folder with the same settings: "
                        "runs that succeeded are skipped, failed runs (diverged, killed, crashed, "
                        "out of memory) and runs whose record is unreadable are run again")
    exists.add_argument("--overwrite", action="store_true",
                        help="delete an existing results folder's runs and report first")
    parser.add_argument("--run-id", action="append", default=[], metavar="ID",
                        help="(re-)run only this run of the grid, replacing its record (repeatable)")
    parser.add_argument("--allow-other-commit", action="store_true",
                        help="continue (--resume, --run-id) a results folder created by another "
                        "commit, or from a checkout with uncommitted changes; the report lists "
                        "every commit that wrote to the folder")
    parser.add_argument("--allow-other-machine", action="store_true",
                        help="continue (--resume, --run-id) a results folder measured on another "
                        "CPU model (or GPU model on CUDA); its timings then mix with this "
                        "machine's, and the report names both")
    parser.add_argument("--records-only", action="store_true",
                        help="keep records and test probabilities only, no checkpoints")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render the report from the records in --out; no training")
    parser.add_argument("--list-archs", action="store_true",
                        help="list the registered architectures and exit")
    parser.add_argument("--list-tasks", action="store_true",
                        help="list the registered tasks and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _split_archs(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        # `--archs ""` (an unset shell variable, say) must not quietly mean "the default set".
        raise UsageError("--archs names no architecture; give registry names or patterns "
                         "(see --list-archs), or leave --archs out for the default set")
    return names


def resolve_archs(patterns: list[str] | None, profile: str | None = None) -> list[str]:
    """Registry names from names or globs, in registry order; unknown names fail with hints.
    Without patterns, the profile's own set (:data:`bench.config.PROFILE_ARCHS`), else the
    registry's default set."""
    from bench.config import PROFILE_ARCHS
    from models import list_models, model_info

    if not patterns:
        return list(PROFILE_ARCHS.get(profile, ())) or list_models(default_only=True)
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = list_models(pattern)
            if not matched:
                raise UsageError(
                    f"--archs pattern {pattern!r} matches no architecture; "
                    f"registered: {', '.join(list_models())}"
                )
        else:
            model_info(pattern)  # raises UnknownModelError with "did you mean"
            matched = [pattern]
        chosen.extend(m for m in matched if m not in chosen)
    order = {name: i for i, name in enumerate(list_models())}
    return sorted(chosen, key=order.__getitem__)


def _merge_archs(previous: list[str], new: list[str]) -> list[str]:
    from models import list_models

    order = {name: i for i, name in enumerate(list_models())}
    merged = set(previous) | set(new)
    return sorted(merged, key=lambda name: (order.get(name, len(order)), name))


def list_archs() -> str:
    from models import list_models, model_info

    lines = []
    for name in list_models():
        info = model_info(name)
        mark = "*" if info.default else " "
        lines.append(f"{mark} {name:<20} {info.description}")
        defaults = ", ".join(f"{key}={value!r}" for key, value in info.hyperparams.items())
        lines.append(f"  {'':<20} hyperparameters: {defaults or '(none)'}")
    lines.append("(* = in the default set; set one model's own value with --set NAME.KEY=VALUE)")
    return "\n".join(lines)


def list_tasks() -> str:
    from data_pipeline import list_tasks as registered
    from data_pipeline import task_info

    lines = []
    for name in registered():
        info = task_info(name)
        lines.append(f"{name:<20} {info.description}")
        lines.append(f"{'':<20} inputs: {'text' if info.text_inputs else 'not text'}; settings: "
                     f"data.{', data.'.join(f.name for f in dataclasses.fields(info.settings))}")
    return "\n".join(lines)


def parse_settings(settings: list[str]) -> dict[str, str]:
    overrides = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def check_out_dir(out: Path, *, resume: bool, overwrite: bool, run_ids: list[str]) -> None:
    """Refuse an --out this command may not write; reads only, so a refused folder is untouched."""
    from bench import folder

    folder.check_target(out, resume=resume, overwrite=overwrite, continuing=resume or bool(run_ids))


def clear_out_dir(out: Path) -> None:
    """Delete what rnnbench wrote into a results folder (--overwrite; under the lock): its runs'
    files, report, tuning, gradient probe and manifest; say what it kept."""
    from bench import folder, records
    from bench.tune import TUNING_NAME
    from data_pipeline import list_tasks
    from reports.render import is_report_output

    tasks = list_tasks()
    kept = folder.clear(out, lambda relative: is_report_output(relative, tasks),
                        own_files=(TUNING_NAME, records.GRADIENT_FLOW_NAME))
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        print(f"--overwrite: kept {len(kept)} file(s) rnnbench did not write in {out}: {shown}",
              file=sys.stderr)


@contextlib.contextmanager
def locked_out_dir(out: Path, argv: list[str]) -> Iterator[None]:
    """Create ``out`` if needed and hold its write lock; a folder this command created and left
    empty (it was refused, say) is removed again."""
    from bench import folder, records

    created = not out.exists()
    with records.writing(out):
        out.mkdir(parents=True, exist_ok=True)
    try:
        with folder.locked(out, argv):
            yield
    finally:
        if created and [p.name for p in out.iterdir()] == [folder.LOCK_NAME]:
            (out / folder.LOCK_NAME).unlink()
            out.rmdir()


def select_runs(specs: list[RunSpec], run_ids: list[str]) -> list[RunSpec]:
    """The specs named by ``--run-id`` (all of them when none is named)."""
    if not run_ids:
        return specs
    known = {s.run_id for s in specs}
    unknown = [r for r in run_ids if r not in known]
    if unknown:
        raise UsageError(f"--run-id {unknown[0]} is not in this grid; its runs are: "
                         f"{', '.join(sorted(known))}")
    return [s for s in specs if s.run_id in run_ids]


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: the child is stopped, the lock freed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.task is None and args.suite is None:
        args.task = "imdb"  # the default task (None until here, so --suite can tell it was given)
    if args.data is not None and not args.data.strip():
        # an unset shell variable, say: it must not quietly mean "the cache or a download"
        print("run_all.py: error: --data is empty; give the IMDb archive or aclImdb/ folder, or "
              "leave --data out to use $RNNBENCH_IMDB or the cache", file=sys.stderr)
        return EXIT_USAGE
    from bench.folder import FolderError  # after parsing: --help stays instant
    from bench.records import OutputError, RecordError

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(args, argv if argv is not None else sys.argv[1:])
    except (UsageError, FolderError, OutputError, RecordError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; finished records are kept (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    """Plan, execute and report, one job per function below."""

    if args.list_archs:
        print(list_archs())
        return 0
    if args.list_tasks:
        print(list_tasks())
        return 0
    device, profile, out = _resolve_target(args)
    if args.report_only:
        return _report_only(out)
    if args.suite == "memory":
        return _memory_suite(args, argv, device, profile, out)
    archs, config, model_settings = _resolve_config(args, profile)
    threads, specs = _plan(args, archs, config, model_settings, profile, device)
    check_out_dir(out, resume=args.resume, overwrite=args.overwrite, run_ids=args.run_id)
    with locked_out_dir(out, ["run_all.py", *argv]):
        previous, protocol, settings = _open_out_dir(args, out, specs)
        specs, tuning = _prepare_data_and_tune(
            args, specs, config, profile, device, out, previous, archs
        )
        manifest = _manifest(args, argv, previous, profile=profile, device=device, threads=threads,
                             archs=archs, protocol=protocol, settings=settings, tuning=tuning)
        outcome = _execute(args, specs, out, manifest)
        unreadable = _render_after_runs(out, manifest)
    return _exit_code(outcome, unreadable)


def _manifest(
    args: argparse.Namespace, argv: list[str], previous: dict[str, Any], *, profile: str,
    device: torch.device, threads: int, archs: list[str], protocol: str | None,
    settings: dict[str, Any], tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The folder's manifest after this command: what it ran, merged with what the folder held
    (``previous``). ``protocol`` None keeps the folder's (the memory suite has none of its own)."""
    from bench.runner import utc_now

    return {
        "profile": profile,
        "device": device.type,
        "threads": threads,
        "jobs": args.jobs,
        "executor": args.executor,
        "argv": ["run_all.py", *argv],
        # A resumed folder may have been started with other architectures: the report covers all.
        "archs": _merge_archs(previous.get("archs", []), archs),
        "tasks": list(dict.fromkeys([*previous.get("tasks", ["imdb"] if previous else []),
                                     args.task])),
        "seeds": max(args.seeds, previous.get("seeds", 0)),
        "protocol": protocol or previous.get("protocol", "fixed"),
        **({"tuning": tuning} if tuning is not None else
           {"tuning": previous["tuning"]} if previous.get("tuning") else {}),
        **({"memory_suite": previous["memory_suite"]} if previous.get("memory_suite") else {}),
        "settings": settings,
        "task_settings": {**_task_settings(previous), args.task: settings},
        "commits": _commits(previous),
        "started_utc": previous.get("started_utc", utc_now()),
        "finished_utc": None,
        "wall_time_s": previous.get("wall_time_s", 0.0),
    }


def _memory_suite(
    args: argparse.Namespace, argv: list[str], device: torch.device, profile: str, out: Path
) -> int:
    """``--suite memory``: the memory sweep, the gradient-flow probe and the report."""
    from bench import memory_suite
    from bench.records import write_gradient_flow

    if args.task not in (None, memory_suite.TASK):
        raise UsageError(f"--suite memory runs the task {memory_suite.TASK}; drop --task {args.task}")
    for given, option in ((args.tune, "--tune"), (args.run_id, "--run-id"),
                          (args.seeds != 1, "--seeds")):
        if given:
            raise UsageError(f"--suite memory decides its own seeds and runs; drop {option}")
    args.task = memory_suite.TASK
    suite = _suite_config(args, profile)
    archs, config, model_settings = _resolve_config(
        args, profile, base=memory_suite.suite_overrides(profile, {}))
    threads, specs = _plan(args, archs, config, model_settings, profile, device)
    check_out_dir(out, resume=args.resume, overwrite=args.overwrite, run_ids=[])
    with locked_out_dir(out, ["run_all.py", *argv]):
        previous, _, settings = _open_out_dir(args, out, specs, per_run=memory_suite.AXES,
                                              protocol=None, sweep=True)
        print(f"rnnbench: memory suite, profile {profile} on {device.type}, {len(archs)} "
              f"architecture(s), loads {', '.join(_load_names(suite))} -> {out}", file=sys.stderr)
        manifest = _manifest(args, argv, previous, profile=profile, device=device, threads=threads,
                             archs=archs, protocol=None, settings=settings)

        def sweep(_: list[RunSpec], log: Callable[[str], None]) -> GridOutcome:
            by_arch = {s.arch: s for s in specs}
            outcome, state = memory_suite.run_suite(by_arch, suite, out,
                                                    run=_executor(args, out, log), log=log)
            manifest["memory_suite"] = memory_suite.manifest_entry(suite, config, state)
            if not outcome.interrupted:
                payload = memory_suite.probe_gradients(out, by_arch, suite, data_path=args.data,
                                                       log=log)
                if payload is not None:
                    write_gradient_flow(out, payload)
            return outcome

        outcome = _execute(args, specs, out, manifest, grid=sweep)
        unreadable = _render_after_runs(out, manifest)
    return _exit_code(outcome, unreadable)


def _load_names(suite: Any) -> list[str]:
    from data_pipeline.memory import load_label

    return [load_label(alphabet, n_signals) for alphabet, n_signals in suite.loads]


def _suite_config(args: argparse.Namespace, profile: str) -> Any:
    """The memory suite of ``profile``, with --loads and --max-distance applied."""
    from bench.memory_suite import SUITE_PROFILES

    changes: dict[str, Any] = {}
    if args.loads is not None:
        try:
            pairs = [part.strip().split("/") for part in args.loads.split(",") if part.strip()]
            changes["loads"] = tuple((int(a), int(n)) for n, a in pairs)
        except ValueError:
            raise UsageError(f"--loads expects N/A pairs (N symbols of an alphabet of A), comma-"
                             f"separated, e.g. 2/16,2/4; got {args.loads!r}") from None
        repeated = sorted({f"{n}/{a}" for a, n in changes["loads"]
                           if changes["loads"].count((a, n)) > 1})
        if repeated:
            raise UsageError(f"--loads names {', '.join(repeated)} more than once; give each "
                             f"load once")
    if args.max_distance is not None:
        first = SUITE_PROFILES[profile].first_distance
        if args.max_distance < first:
            raise UsageError(f"--max-distance {args.max_distance} is below the suite's first T "
                             f"({first} in profile {profile}); give {first} or more")
        changes["limit_distance"] = args.max_distance
    try:
        return dataclasses.replace(SUITE_PROFILES[profile], **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _resolve_target(args: argparse.Namespace) -> tuple[torch.device, str, Path]:
    """The device, the profile (its default depends on the device) and the results folder."""
    # Imports here keep `--help` instant and let usage errors appear before torch loads.
    from bench.executor import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    profile = args.profile or ("full" if device.type == "cuda" else "quick")
    out = args.out or Path("results") / f"{profile}-{device.type}"
    return device, profile, out


def _report_only(out: Path) -> int:
    """Re-render the report of an existing results folder (no lock: it only reads records, and
    every file it writes is replaced atomically)."""
    from bench import records

    try:
        unreadable = _render(out, None)
    except records.RecordError as exc:
        raise UsageError(f"{exc}") from None
    return 1 if unreadable else 0


def _resolve_config(
    args: argparse.Namespace, profile: str, base: dict[str, Any] | None = None
) -> tuple[list[str], RunConfig, dict[str, ModelSettings]]:
    """The chosen architectures, the profile's configuration with ``base`` (a suite's settings)
    and then the command line's overrides, and each architecture's own hyperparameters
    (``--set lstm.hidden_dim=...``)."""
    from bench.config import ConfigError, parse_model_settings, profile_config, split_model_settings
    from data_pipeline import UnknownTaskError
    from models import UnknownModelError

    try:
        # a suite chooses among the registry's default set, whatever the profile
        archs = resolve_archs(_split_archs(args.archs), profile if base is None else None)
        overrides, per_model = split_model_settings(parse_settings(args.settings))
        if args.epochs is not None:
            overrides["train.epochs"] = str(args.epochs)
        overrides = {**(base or {}), **overrides}
        config = profile_config(profile, overrides, task=args.task)
        # A model is built once to check its settings; a task without a vocabulary setting
        # gets a small one (the check is about the model's own hyperparameters).
        vocab_size = getattr(config.data, "vocab_size", 100)
        model_settings = parse_model_settings(per_model, archs, vocab_size)
    except (ConfigError, UnknownModelError, UnknownTaskError) as exc:
        raise UsageError(str(exc)) from None
    return archs, config, model_settings


def _plan(
    args: argparse.Namespace, archs: list[str], config: RunConfig,
    model_settings: dict[str, ModelSettings], profile: str, device: torch.device,
) -> tuple[int, list[RunSpec]]:
    """Threads per run and the grid's specs (narrowed to --run-id unless tuning decides them)."""
    import torch

    from bench.runner import auto_jobs, check_jobs, cpu_cores, longest_first, plan_grid

    if args.ray_address is not None and args.executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    if args.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray, which is not installed here: "
                         "pip install 'rnnbench[ray]' (or pip install ray)")
    jobs = args.jobs
    if device.type == "cpu":
        threads = args.threads or 1
    else:  # the cores are shared out among the runs that feed the GPUs
        share = auto_jobs(device.type, 1) if jobs == "auto" else jobs
        threads = args.threads or max(1, min(torch.get_num_threads(), cpu_cores() // share))
    args.jobs = auto_jobs(device.type, threads) if jobs == "auto" else jobs
    try:
        check_jobs(args.jobs, threads)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    specs = plan_grid(
        archs, args.seeds, profile=profile, config=config, device=device.type, threads=threads,
        data_path=args.data, keep_artifacts=not args.records_only, model_settings=model_settings,
        task=args.task,
    )
    if args.jobs > 1 or args.executor == "ray":
        specs = longest_first(specs)  # runs at once then end together
    if not args.tune:
        specs = select_runs(specs, args.run_id)
    return threads, specs


def _open_out_dir(
    args: argparse.Namespace, out: Path, specs: list[RunSpec], *, per_run: tuple[str, ...] = (),
    protocol: str | None = "", sweep: bool = False,
) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Check the locked results folder against this command (protocol, settings, commit) and clear
    it for --overwrite; its previous manifest, this protocol and the settings of this grid.

    ``per_run``: settings that differ between this command's runs (a suite's axes); ``protocol``
    None: the command has no protocol of its own to check (the memory suite); ``sweep``: the
    command plans its runs as it goes (an unreadable record is run again if it plans that run)."""
    from bench import folder, records
    from bench.tune import DROPOUT_KEY, LR_KEY

    if protocol == "":
        protocol = "tuned" if args.tune else "fixed"
    per_arch = ((LR_KEY, DROPOUT_KEY) if args.tune else ()) + per_run
    settings = folder.grid_settings(specs, per_arch)
    if args.overwrite:
        clear_out_dir(out)
        return {}, protocol, settings
    try:
        previous = records.read_manifest(out) if (out / records.MANIFEST_NAME).is_file() else {}
        held = records.load_folder(out) if previous else records.Folder([], [])
    except records.RecordError as exc:
        raise UsageError(f"{exc}") from None
    if protocol is not None and previous.get("protocol", protocol) != protocol:
        raise UsageError(f"{out} holds runs of the {previous['protocol']} protocol; "
                         f"{'drop' if previous['protocol'] == 'fixed' else 'add'} --tune or "
                         "choose another --out")
    if previous:
        folder.check_settings(out, previous, held.records, settings, per_arch, task=args.task)
        if not args.allow_other_commit:
            folder.check_commit(out, previous, held.records)
        if not args.allow_other_machine and specs:
            folder.check_machine(out, held.records, _machine(specs[0].device))
    planned = {spec.run_id for spec in specs}
    for item in held.unreadable:
        fate = ("it is run again" if item.run_id in planned else
                "it is run again if tuning plans that run" if args.tune else
                "the sweep runs it again if it plans that run" if sweep else
                "it is not a run of this command's grid, so it stays as it is")
        print(f"unreadable record {item.message}; {fate}", file=sys.stderr)
    return previous, protocol, settings


def _machine(device: str) -> str:
    """The processor this command's runs are measured on (as records name it)."""
    import torch

    from bench.environment import device_name

    return device_name(torch.device(device))


def _task_settings(previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from bench.folder import task_settings

    return task_settings(previous)


def _commits(previous: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.folder import with_commit

    return with_commit(previous)


def _prepare_data_and_tune(
    args: argparse.Namespace, specs: list[RunSpec], config: RunConfig, profile: str,
    device: torch.device, out: Path, previous: dict[str, Any], archs: list[str],
) -> tuple[list[RunSpec], dict[str, Any] | None]:
    """Load (and cache) the data, tune when asked; the final specs and the tuning summary."""
    from data_pipeline import DataError, task_info

    task = task_info(args.task)
    try:
        data = task.loader(config.data, args.data, progress=not args.no_progress)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    print(f"rnnbench: task {task.name}, profile {profile} on {device.type}, {len(archs)} "
          f"architecture(s) x {args.seeds} seed(s) -> {out}", file=sys.stderr)
    print(f"data: {data.details.get('source', task.name)} ({len(data.train):,} train / "
          f"{len(data.val):,} validation / {len(data.test):,} test {task.example}s, vocabulary "
          f"{len(data.vocab):,})", file=sys.stderr)
    if args.executor == "ray" and data.details.get("source_kind") not in (None, "archive"):
        # Workers receive the data as one object (see bench.ray_executor); a folder is not one.
        raise UsageError(f"--executor ray needs the data as an archive, not the folder "
                         f"{data.details.get('source')}; pack it (tar czf aclImdb.tar.gz aclImdb) "
                         "and pass --data aclImdb.tar.gz")
    if not args.tune:
        # The children load the same data from the cache this warmed.
        return specs, None
    from bench.tune import TuneConfig, apply_choices, tune_grid, tuning_summary

    tune_config = TuneConfig(epochs=args.tune_epochs)
    chosen = tune_grid(specs, data, out, tune_config, progress=not args.no_progress,
                       jobs=args.jobs, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    specs = apply_choices(specs, chosen)
    # A resumed folder keeps the choices of architectures tuned by an earlier invocation.
    chosen = {**(previous.get("tuning") or {}).get("chosen", {}), **chosen}
    # Tuning decides the final specs, hence their run ids.
    return select_runs(specs, args.run_id), tuning_summary(tune_config, config, chosen)


def _execute(
    args: argparse.Namespace, specs: list[RunSpec], out: Path, manifest: dict[str, Any],
    grid: Callable[[list[RunSpec], Callable[[str], None]], GridOutcome] | None = None,
) -> GridOutcome:
    """Run the grid (or ``grid(specs, log)``: a suite), keeping the manifest's start, finish and
    wall time current."""
    from bench.runner import utc_now, write_manifest

    write_manifest(out, manifest)
    started = time.perf_counter()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    outcome = grid(specs, log) if grid is not None else _executor(args, out, log)(specs)
    manifest.update(finished_utc=utc_now(),
                    wall_time_s=manifest["wall_time_s"] + time.perf_counter() - started,
                    interrupted=outcome.interrupted)
    write_manifest(out, manifest)
    return outcome


def _executor(
    args: argparse.Namespace, out: Path, log: Callable[[str], None]
) -> Callable[[list[RunSpec]], GridOutcome]:
    """What runs a list of specs into ``out``: Ray tasks or local child processes (--jobs)."""
    if args.executor == "ray":
        from bench.ray_executor import run_grid_ray

        return lambda specs: run_grid_ray(specs, out, address=args.ray_address,
                                          resume=args.resume, log=log)
    from bench.runner import run_grid

    return lambda specs: run_grid(specs, out, resume=args.resume, progress=not args.no_progress,
                                  jobs=args.jobs, log=log)


def _render_after_runs(out: Path, manifest: dict[str, Any]) -> list[Any]:
    """:func:`_render` after a command's runs; a Ctrl-C while it renders marks the manifest
    interrupted (the report may be the previous one: re-render with --report-only)."""
    from bench.runner import write_manifest

    try:
        return _render(out, manifest)
    except KeyboardInterrupt:
        manifest["interrupted"] = True
        write_manifest(out, manifest)
        raise


def _render(out: Path, manifest: dict[str, Any] | None) -> list[Any]:
    """Render the report when there is anything to report, name the records left out as
    unreadable, and return those. With ``manifest`` None (--report-only), it is read from ``out``,
    and a folder with nothing to report is an error."""
    from bench import records
    from reports import render_report, terminal_summary
    from reports.markdown import RERUN_HINT

    held = records.load_folder(out)
    if manifest is None:
        manifest = records.read_manifest(out)
        if not held.records and not held.unreadable:
            raise UsageError(f"{out} holds no run records yet (runs/*/record.json)")
    if held.records:
        path = render_report(out)
        print()
        print(terminal_summary(held.records, manifest))
        print(f"\nreport: {path}")
    elif held.unreadable:
        raise UsageError(f"{held.unreadable[0].message}; {RERUN_HINT}")
    for item in held.unreadable:
        print(f"unreadable record left out of the report: {item.message}; {RERUN_HINT}",
              file=sys.stderr)
    return held.unreadable


def _exit_code(outcome: GridOutcome, unreadable: list[Any]) -> int:
    """0 every run succeeded, 1 a run failed or a record is unreadable, 130 interrupted."""
    if outcome.interrupted:
        print("interrupted; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.failed:
        named = ", ".join(f"{run_id} ({kind})" for run_id, kind in outcome.failed.items())
        hint = ("; diverged runs fail again with the same settings: lower train.lr, in another "
                "--out" if set(outcome.failed.values()) & {"diverged", "nan_loss"} else "")
        print(f"{len(outcome.failed)} of {len(outcome.ran)} run(s) failed: {named}. The same "
              "command with --resume retries the failed runs and keeps the others (or --run-id ID "
              f"retries one){hint}", file=sys.stderr)
        return 1
    return 1 if unreadable else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
