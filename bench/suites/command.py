"""The steps every suite's command shares: resolve the configuration, plan the runs, open the
results folder, load the data (and tune), execute, report, and the exit code.

:func:`main` is what ``run_all.py`` calls once it has parsed the command line: it resolves the
device, profile and results folder, re-renders (``--report-only``) or hands a :class:`Command` to
the chosen suite's ``run``, and turns bad input into one line and exit code 2. Heavy modules are
imported inside the steps, so the registry (and ``--help``) stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bench.grid.runner import GridOutcome
    from bench.run.config import ModelSettings, RunConfig, RunSpec

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


@dataclass(frozen=True)
class Reporting:
    """What a command needs of ``reports``; ``run_all.py`` passes it in (``bench`` imports nothing
    of ``reports``: DESIGN.md's import direction)."""

    render: Callable[[Path], Path]  #: render a folder's report, return its path
    summary: Callable[[list[dict[str, Any]], dict[str, Any]], str]  #: the terminal table
    rerun_hint: str  #: what to do about an unreadable record
    is_report_output: Callable[[str, Iterable[str]], bool]  #: what --overwrite may remove


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(args: argparse.Namespace, argv: list[str], reporting: Reporting) -> int:
    """Run the command ``args`` (parsed ``argv``) describes; bad input is one line and exit 2."""
    from bench.results.folder import FolderError
    from bench.results.records import OutputError, RecordError
    from bench.suites import check_suite_options, suite_info

    try:
        try:
            check_suite_options(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        suite = suite_info(args.suite)
        device, profile, out = _resolve_target(args)
        command = Command(args, argv, device, profile, out, reporting)
        if args.report_only:
            return command.report_only()
        return suite.run(command)
    except (UsageError, FolderError, OutputError, RecordError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _resolve_target(args: argparse.Namespace) -> tuple[torch.device, str, Path]:
    """The device, the profile (its default depends on the device) and the results folder."""
    from bench.run.execute import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    profile = args.profile or ("full" if device.type == "cuda" else "quick")
    out = args.out or Path("results") / f"{profile}-{device.type}"
    return device, profile, out


def split_archs(values: list[str] | None) -> list[str] | None:
    """``--archs`` values, split on commas; None when not given."""
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        # `--archs ""` (an unset shell variable, say) must not quietly mean "the default set".
        raise UsageError("--archs names no architecture; give registry names or patterns "
                         "(see --list-archs), or leave --archs out for the default set")
    return names


def resolve_archs(patterns: list[str] | None, profile: str | None = None) -> list[str]:
    """Registry names from names, globs or ``family:NAME`` (every model of that family), in
    registry order; unknown names fail with hints. Without patterns, the profile's own set
    (:data:`bench.run.config.PROFILE_ARCHS`), else the registry's default set."""
    from bench.run.config import PROFILE_ARCHS
    from models import FAMILIES, list_models, model_info

    if not patterns:
        return list(PROFILE_ARCHS.get(profile, ())) or list_models(default_only=True)
    chosen: list[str] = []
    for pattern in patterns:
        if pattern.startswith("family:"):
            family = pattern.removeprefix("family:")
            if family not in FAMILIES:
                raise UsageError(f"--archs {pattern!r}: unknown family {family!r}; families: "
                                 f"{', '.join(FAMILIES)}")
            matched = list_models(family=family)
        elif any(ch in pattern for ch in "*?["):
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


def parse_settings(settings: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items as a dict."""
    overrides = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


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


@dataclass
class Command:
    """One ``run_all.py`` command: its arguments and target, and the steps a suite runs it by."""

    args: argparse.Namespace
    argv: list[str]
    device: torch.device
    profile: str
    out: Path
    reporting: Reporting

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def refuse_grid_options(self, flags: tuple[str, ...], why: str) -> None:
        """Stop with one line when one of the training grid's ``flags`` (``--tune``, ``--seeds``,
        ``--epochs``, ``--run-id``) was given to a suite that decides it itself: ``why`` says so."""
        args = self.args
        given = {"--tune": args.tune, "--seeds": args.seeds != 1,
                 "--epochs": args.epochs is not None, "--run-id": bool(args.run_id)}
        for flag in flags:
            if given[flag]:
                raise UsageError(f"--suite {args.suite} {why}; drop {flag}")

    # --- plan -----------------------------------------------------------------------------------

    def resolve_config(
        self, base: dict[str, Any] | None = None
    ) -> tuple[list[str], RunConfig, dict[str, ModelSettings]]:
        """The chosen architectures, the profile's configuration with ``base`` (a suite's
        settings) and then the command line's overrides, and each architecture's own
        hyperparameters (``--set lstm.hidden_dim=...``)."""
        from bench.run.config import (
            ConfigError,
            parse_model_settings,
            profile_config,
            split_model_settings,
        )
        from data_pipeline import UnknownTaskError
        from models import UnknownModelError

        args = self.args
        try:
            # a suite chooses among the registry's default set, whatever the profile
            archs = resolve_archs(split_archs(args.archs), self.profile if base is None else None)
            overrides, per_model = split_model_settings(parse_settings(args.settings))
            if args.epochs is not None:
                overrides["train.epochs"] = str(args.epochs)
            overrides = {**(base or {}), **overrides}
            config = profile_config(self.profile, overrides, task=args.task)
            # A model is built once to check its settings; a task without a vocabulary setting
            # gets a small one (the check is about the model's own hyperparameters).
            vocab_size = getattr(config.data, "vocab_size", 100)
            model_settings = parse_model_settings(per_model, archs, vocab_size)
        except (ConfigError, UnknownModelError, UnknownTaskError) as exc:
            raise UsageError(str(exc)) from None
        return archs, config, model_settings

    def plan(
        self, archs: list[str], config: RunConfig, model_settings: dict[str, ModelSettings],
    ) -> tuple[int, list[RunSpec]]:
        """Threads per run and the grid's specs (narrowed to --run-id unless tuning decides them)."""
        import torch

        from bench.grid.runner import auto_jobs, check_jobs, cpu_cores, longest_first, plan_grid

        args, device = self.args, self.device
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
            archs, args.seeds, profile=self.profile, config=config, device=device.type,
            threads=threads, data_path=args.data, keep_artifacts=not args.records_only,
            model_settings=model_settings, task=args.task,
        )
        if args.jobs > 1 or args.executor == "ray":
            specs = longest_first(specs)  # runs at once then end together
        if not args.tune:
            specs = select_runs(specs, args.run_id)
        return threads, specs

    # --- the results folder ---------------------------------------------------------------------

    @contextlib.contextmanager
    def open_folder(
        self, specs: list[RunSpec], *, per_run: tuple[str, ...] = (), protocol: str | None = "",
        replanned_by: str | None = None,
    ) -> Iterator[tuple[dict[str, Any], str | None, dict[str, Any]]]:
        """Check, lock and (for --overwrite) clear the results folder for this command, and yield
        its previous manifest, this protocol and the settings of this grid.

        ``per_run``: settings that differ between this command's runs (a suite's axes);
        ``protocol`` None: the command has no protocol of its own to check; ``replanned_by``:
        what plans the runs as it goes (an unreadable record is run again if it plans that run).
        """
        from bench.grid.tune import DROPOUT_KEY, LR_KEY
        from bench.results import folder

        args, out = self.args, self.out
        folder.check_target(out, resume=args.resume, overwrite=args.overwrite,
                            continuing=args.resume or bool(args.run_id))
        if protocol == "":
            protocol = "tuned" if args.tune else "fixed"
        per_arch = ((LR_KEY, DROPOUT_KEY) if args.tune else ()) + per_run
        settings = folder.grid_settings(specs, per_arch)
        with folder.opened(out, ["run_all.py", *self.argv]):
            if args.overwrite:
                folder.clear_for_overwrite(out, self.reporting.is_report_output)
                yield {}, protocol, settings
                return
            previous, held = folder.read_held(out)
            if previous:
                machine = self._machine(specs[0].device) if specs else None
                folder.check_held(out, previous, held, settings=settings, per_arch=per_arch,
                                  protocol=protocol, task=args.task, machine=machine,
                                  allow_other_commit=args.allow_other_commit,
                                  allow_other_machine=args.allow_other_machine)
            folder.say_unreadable(held, (spec.run_id for spec in specs),
                                  replanned_by="tuning" if args.tune else replanned_by)
            yield previous, protocol, settings

    @staticmethod
    def _machine(device: str) -> str:
        """The processor this command's runs are measured on (as records name it)."""
        import torch

        from bench.run.environment import device_name

        return device_name(torch.device(device))

    def manifest(
        self, previous: dict[str, Any], *, threads: int, archs: list[str], protocol: str | None,
        settings: dict[str, Any], tuning: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The folder's manifest after this command (:func:`bench.results.folder.next_manifest`)."""
        from bench.results.folder import next_manifest
        from bench.suites import list_suites, suite_info

        args = self.args
        run = {"profile": self.profile, "device": self.device.type, "threads": threads,
               "jobs": args.jobs, "executor": args.executor, "argv": ["run_all.py", *self.argv]}
        entries = [e for e in (suite_info(n).manifest_entry for n in list_suites()) if e]
        return next_manifest(previous, run=run, archs=archs, task=args.task, seeds=args.seeds,
                             protocol=protocol, settings=settings, tuning=tuning,
                             suite_entries=entries)

    # --- data, tuning, execution ----------------------------------------------------------------

    def load_data(self, config: RunConfig, archs: list[str], *, banner: bool = True) -> Any:
        """Load (and cache) the task's data, saying what it is (and, with ``banner``, what the
        grid trains); the children load the same data from the cache this warms."""
        from data_pipeline import DataError, task_info

        args = self.args
        task = task_info(args.task)
        try:
            data = task.loader(config.data, args.data, progress=not args.no_progress)
        except DataError as exc:
            raise UsageError(str(exc)) from None
        if banner:
            self.log(f"rnnbench: task {task.name}, profile {self.profile} on {self.device.type}, "
                     f"{len(archs)} architecture(s) x {args.seeds} seed(s) -> {self.out}")
        self.log(f"data: {data.details.get('source', task.name)} ({len(data.train):,} train / "
                 f"{len(data.val):,} validation / {len(data.test):,} test {task.example}s, "
                 f"vocabulary {len(data.vocab):,})")
        if args.executor == "ray" and data.details.get("source_kind") not in (None, "archive"):
            # Workers receive the data as one object (see bench.grid.ray_runner); a folder is not.
            raise UsageError(f"--executor ray needs the data as an archive, not the folder "
                             f"{data.details.get('source')}; pack it (tar czf aclImdb.tar.gz "
                             "aclImdb) and pass --data aclImdb.tar.gz")
        return data

    def tune(
        self, specs: list[RunSpec], data: Any, config: RunConfig, previous: dict[str, Any],
    ) -> tuple[list[RunSpec], dict[str, Any]]:
        """Choose each architecture's lr and dropout (``--tune``); the final specs (narrowed to
        --run-id: tuning decides their run ids) and the tuning summary."""
        from bench.grid.tune import TuneConfig, apply_choices, tune_grid, tuning_summary

        args = self.args
        tune_config = TuneConfig(epochs=args.tune_epochs)
        chosen = tune_grid(specs, data, self.out, tune_config, progress=not args.no_progress,
                           jobs=args.jobs, log=self.log)
        specs = apply_choices(specs, chosen)
        # A resumed folder keeps the choices of architectures tuned by an earlier invocation.
        chosen = {**(previous.get("tuning") or {}).get("chosen", {}), **chosen}
        return select_runs(specs, args.run_id), tuning_summary(tune_config, config, chosen)

    def executor(self) -> Callable[[list[RunSpec]], GridOutcome]:
        """What runs a list of specs into the folder: Ray tasks or local child processes."""
        args, out = self.args, self.out
        if args.executor == "ray":
            from bench.grid.ray_runner import run_grid_ray

            return lambda specs: run_grid_ray(specs, out, address=args.ray_address,
                                              resume=args.resume, log=self.log)
        from bench.grid.runner import run_grid

        return lambda specs: run_grid(specs, out, resume=args.resume,
                                      progress=not args.no_progress, jobs=args.jobs, log=self.log)

    def execute(
        self, specs: list[RunSpec], manifest: dict[str, Any],
        grid: Callable[[list[RunSpec]], GridOutcome] | None = None,
    ) -> GridOutcome:
        """Run the specs (or ``grid(specs)``: a suite's own plan), keeping the manifest's start,
        finish and wall time current."""
        from bench.results.folder import invocation_ended
        from bench.results.records import utc_now, write_manifest

        write_manifest(self.out, manifest)
        started = time.perf_counter()
        outcome = (grid or self.executor())(specs)
        took = time.perf_counter() - started
        manifest.update(finished_utc=utc_now(), wall_time_s=manifest["wall_time_s"] + took,
                        interrupted=outcome.interrupted)
        invocation_ended(manifest, took)
        write_manifest(self.out, manifest)
        return outcome

    # --- report and exit code -------------------------------------------------------------------

    def report_only(self) -> int:
        """Re-render the report of an existing results folder (no lock: it only reads records,
        and every file it writes is replaced atomically)."""
        from bench.results import records

        try:
            unreadable = self.render(None)
        except records.RecordError as exc:
            raise UsageError(f"{exc}") from None
        return 1 if unreadable else 0

    def report(self, manifest: dict[str, Any]) -> list[Any]:
        """:meth:`render` after a command's runs; a Ctrl-C while it renders marks the manifest
        interrupted (the report may be the previous one: re-render with --report-only)."""
        from bench.results.records import write_manifest

        try:
            return self.render(manifest)
        except KeyboardInterrupt:
            manifest["interrupted"] = True
            write_manifest(self.out, manifest)
            raise

    def render(self, manifest: dict[str, Any] | None) -> list[Any]:
        """Render the report when there is anything to report, name the records left out as
        unreadable, and return those. With ``manifest`` None (--report-only), it is read from the
        folder, and a folder with nothing to report is an error."""
        from bench.results import cost, records

        out, hint = self.out, self.reporting.rerun_hint
        held = records.load_folder(out)
        points = cost.load_points(out)  # the cost suite's records, beside the runs
        if manifest is None:
            manifest = records.read_manifest(out)
            if not held.records and not held.unreadable and not points.points:
                raise UsageError(f"{out} holds no run records yet (runs/*/record.json)")
        if held.records or points.points:
            path = self.reporting.render(out)
            print()
            if held.records:
                print(self.reporting.summary(held.records, manifest))
            print(f"\nreport: {path}")
        elif held.unreadable:
            raise UsageError(f"{held.unreadable[0].message}; {hint}")
        for item in [*held.unreadable, *points.unreadable]:
            print(f"unreadable record left out of the report: {item.message}; {hint}",
                  file=sys.stderr)
        return [*held.unreadable, *points.unreadable]

    @staticmethod
    def exit_code(outcome: GridOutcome, unreadable: list[Any]) -> int:
        """0 every run succeeded, 1 a run failed or a record is unreadable, 130 interrupted."""
        if outcome.interrupted:
            print("interrupted; continue with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        if outcome.failed:
            named = ", ".join(f"{run_id} ({kind})" for run_id, kind in outcome.failed.items())
            hint = ("; diverged runs fail again with the same settings: lower train.lr, in "
                    "another --out" if set(outcome.failed.values()) & {"diverged", "nan_loss"}
                    else "")
            print(f"{len(outcome.failed)} of {len(outcome.ran)} run(s) failed: {named}. The same "
                  "command with --resume retries the failed runs and keeps the others (or "
                  f"--run-id ID retries one){hint}", file=sys.stderr)
            return 1
        return 1 if unreadable else 0
