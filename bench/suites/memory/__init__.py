"""The memory suite (``run_all.py --suite memory``): how far back each architecture carries what it
has read, on the generated memory task, and the gradient-flow probe; run into the folder of an IMDb
grid, the report adds the notebook's comparison table, measured.

This module registers the suite and holds its command line; :mod:`.sweep` plans and runs the
sweep, :mod:`.gradflow` measures how gradients reach back in time.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from bench.suites import register_suite
from bench.suites.command import Command, UsageError, positive_int

if TYPE_CHECKING:
    from bench.grid.runner import GridOutcome
    from bench.run.config import RunSpec
    from bench.suites.memory.sweep import SuiteConfig

#: The manifest key of the sweep's summary.
MANIFEST_ENTRY = "memory_suite"


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--loads", default=None, metavar="N/A,...",
                       help="the memory loads, N symbols of an alphabet of A each (default: "
                       "2/16,2/4)")
    group.add_argument("--max-distance", type=positive_int, default=None, metavar="T",
                       help="the largest T the sweep may reach (default: 512; it doubles from 16 "
                       "while any architecture still solves the last T)")


def run(command: Command) -> int:
    """The memory sweep, the gradient-flow probe and the report."""
    from bench.suites.memory import sweep

    args = command.args
    if args.task not in (None, sweep.TASK):
        raise UsageError(f"--suite memory runs the task {sweep.TASK}; drop --task {args.task}")
    command.refuse_grid_options(("--tune", "--run-id", "--seeds"),
                                "decides its own seeds and runs")
    args.task = sweep.TASK
    suite = suite_config(args, command.profile)
    archs, config, model_settings = command.resolve_config(
        base=sweep.suite_overrides(command.profile, {}))
    threads, specs = command.plan(archs, config, model_settings)
    with command.open_folder(specs, per_run=sweep.AXES, protocol=None,
                             replanned_by="the sweep") as (previous, _, settings):
        command.log(f"rnnbench: memory suite, profile {command.profile} on "
                    f"{command.device.type}, {len(archs)} architecture(s), loads "
                    f"{', '.join(load_names(suite))} -> {command.out}")
        manifest = command.manifest(previous, threads=threads, archs=archs, protocol=None,
                                    settings=settings)

        def run_sweep(_: list[RunSpec]) -> GridOutcome:
            by_arch = {s.arch: s for s in specs}
            outcome, state = sweep.run_suite(by_arch, suite, command.out, run=command.executor(),
                                             log=command.log)
            manifest[MANIFEST_ENTRY] = sweep.manifest_entry(suite, config, state)
            if not outcome.interrupted:
                _probe(command, by_arch, suite)
            return outcome

        outcome = command.execute(specs, manifest, grid=run_sweep)
        unreadable = command.report(manifest)
    return command.exit_code(outcome, unreadable)


def _probe(command: Command, by_arch: dict[str, RunSpec], suite: SuiteConfig) -> None:
    """The gradient-flow probe of the folder's runs, written beside them."""
    from bench.results.records import write_gradient_flow
    from bench.suites.memory import sweep

    payload = sweep.probe_gradients(command.out, by_arch, suite, data_path=command.args.data,
                                    log=command.log)
    if payload is not None:
        write_gradient_flow(command.out, payload)


def load_names(suite: SuiteConfig) -> list[str]:
    from data_pipeline.memory import load_label

    return [load_label(alphabet, n_signals) for alphabet, n_signals in suite.loads]


def suite_config(args: argparse.Namespace, profile: str) -> SuiteConfig:
    """The memory suite of ``profile``, with --loads and --max-distance applied."""
    from bench.suites.memory.sweep import SUITE_PROFILES

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


register_suite(
    "memory", run=run, add_options=add_options, manifest_entry=MANIFEST_ENTRY,
    description="every recurrent architecture on the generated memory task at T = 16, 32, 64, "
    "... (from 4 in the smoke profile) until it fails (the horizon), more seeds where its result changes, floors at the first "
    "and last T, and the gradient-flow probe; run it into the folder of an IMDb grid (--resume) "
    "and the report adds the notebook's table, measured",
    report_sections=("the memory task's section (horizons, curves)", "gradient flow",
                     "the notebook's table, measured (with an IMDb grid in the folder)"),
)
