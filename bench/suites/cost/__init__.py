"""The cost suite (``run_all.py --suite cost``): what each architecture costs as the sequence
length and the batch size grow, measured alone, one point at a time.

This module registers the suite and holds its command line; :mod:`.plan` chooses the points,
:mod:`.series` runs them, :mod:`.measure` measures one, :mod:`.peak` counts its peak memory.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bench.suites import register_suite
from bench.suites.command import Command, UsageError, positive_int

if TYPE_CHECKING:
    from bench.grid.runner import GridOutcome
    from bench.run.config import RunSpec
    from bench.suites.cost.plan import CostSeries

#: The suite's name (``--suite cost``), for code that starts it (the GPU check).
SUITE = "cost"
#: The manifest key of the suite's summary.
MANIFEST_ENTRY = "cost_suite"


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--lengths", default=None, metavar="T,...",
                       help="sequence lengths of the length series (default per profile: quick "
                       "64..2048 at batch 64, full 64..8192, smoke 8,16,32)")
    group.add_argument("--batches", default=None, metavar="B,...",
                       help="batch sizes of the batch series (default per profile: quick 1..256 "
                       "at T 256, full 1..1024, smoke 1,2,4)")
    group.add_argument("--reps", type=positive_int, default=None, metavar="N",
                       help="timed repetitions per point, one a round, at least 5 (default: 49; smoke 6); "
                       "the suite measures one point at a time whatever --jobs says")
    group.add_argument("--sittings", type=positive_int, default=None, metavar="N",
                       help="fresh processes the rounds are split over, one after another, so "
                       "each figure pools several memory placements (default: 4; smoke 1)")


def suite_series(command: Command) -> CostSeries:
    """The profile's series with ``--lengths``, ``--batches``, ``--reps``, ``--sittings`` applied."""
    from bench.suites.cost.plan import SERIES, parse_sizes, series_for

    args = command.args
    if command.profile not in SERIES:
        raise UsageError(f"--suite cost has no series for profile {command.profile}")
    try:
        return series_for(command.profile, lengths=parse_sizes(args.lengths, "--lengths"),
                          batches=parse_sizes(args.batches, "--batches"), reps=args.reps,
                          sittings=args.sittings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(command: Command) -> int:
    """Plan the points, open the folder, load the task's vocabulary and lengths, measure, report."""
    from bench.results.records import DEFAULT_TASK
    from bench.suites.cost import plan, series

    args = command.args
    command.refuse_grid_options(("--tune", "--seeds", "--epochs", "--run-id"),
                                "measures untrained models, one point at a time, with no seeds "
                                "or epochs")
    if args.task is None:
        args.task = DEFAULT_TASK
    chosen = suite_series(command)
    archs, config, model_settings = command.resolve_config()
    threads, specs = command.plan(archs, config, model_settings)
    points = plan.plan_points(archs, chosen, config.train.batch_size)
    with command.open_folder(specs, protocol=None) as (previous, _, settings):
        command.log(f"rnnbench: cost suite, task {args.task}, profile {command.profile} on "
                    f"{command.device.type}: {len(points)} point(s) of {len(archs)} untrained "
                    f"architecture(s), {chosen.reps} timed repetitions each, one at a time "
                    f"({threads} thread(s)) -> {command.out}")
        data = command.load_data(config, archs, banner=False)
        manifest = command.manifest(previous, threads=threads, archs=archs, protocol=None,
                                    settings=settings)

        def measure(_: list[RunSpec]) -> GridOutcome:
            outcome, summary = series.run_points(specs, points, data, chosen, command.out,
                                                 log=command.log)
            manifest[MANIFEST_ENTRY] = summary
            return outcome

        outcome = command.execute(specs, manifest, grid=measure)
        unreadable = command.report(manifest)
    return command.exit_code(outcome, unreadable)


register_suite(
    SUITE, run=run, add_options=add_options, manifest_entry=MANIFEST_ENTRY,
    description="what each architecture costs, untrained, as T and the batch size double: "
    "training step (forward, backward, optimizer), inference, latency at batch 1, peak memory, "
    "efficiency and the kernels that ran; measured alone, one point at a time whatever --jobs "
    "says (--lengths, --batches, --reps, --sittings)",
    report_sections=("cost: the task's point, growth exponents, crossovers, kernels, plots",),
)
