"""The plain comparison (``run_all.py``, or ``--suite compare``): every chosen architecture x seed
on one task, each run once with the profile's settings (or with the lr and dropout ``--tune``
chose)."""

from __future__ import annotations

from bench.results.records import DEFAULT_TASK
from bench.suites import register_suite
from bench.suites.command import Command


def run(command: Command) -> int:
    """Plan the grid, open the folder, load the data (tune when asked), run, report."""
    args = command.args
    if args.task is None:
        args.task = DEFAULT_TASK
    archs, config, model_settings = command.resolve_config()
    threads, specs = command.plan(archs, config, model_settings)
    with command.open_folder(specs) as (previous, protocol, settings):
        data = command.load_data(config, archs)
        tuning = None
        if args.tune:
            specs, tuning = command.tune(specs, data, config, previous)
        del data  # the children load the same data from the cache this warmed
        manifest = command.manifest(previous, threads=threads, archs=archs, protocol=protocol,
                                    settings=settings, tuning=tuning)
        outcome = command.execute(specs, manifest)
        unreadable = command.report(manifest)
    return command.exit_code(outcome, unreadable)


register_suite(
    "compare", run=run, default=True,
    description="every architecture x seed on one task (--task, --archs, --seeds, --tune)",
    report_sections=("a section per task: results, comparisons, plots, recommendation",),
)
