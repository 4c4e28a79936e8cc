#!/usr/bin/env python3
"""rnnbench: train every chosen architecture on a task (IMDb by default) through one pipeline and
one trainer, then write a report that compares accuracy, speed and memory.

    python run_all.py                          # the default set, profile for this machine
    python run_all.py --profile smoke          # a minute, end to end
    python run_all.py --archs 'lstm,bi*' --seeds 3
    python run_all.py --tune                   # lr and dropout chosen per architecture first
    python run_all.py --list-tasks             # the registered tasks (--task NAME)
    python run_all.py --list-suites            # the registered suites (--suite NAME)
    python run_all.py --report-only --out results/quick-cpu

This file parses the command line and dispatches: what a command runs is a suite
(:mod:`bench.suites`), the steps suites share are :mod:`bench.suites.command`, and the results
folder is :mod:`bench.results.folder`'s job.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from bench.suites.command import EXIT_INTERRUPTED, EXIT_USAGE, positive_int, resolve_archs

__all__ = ["build_parser", "main", "resolve_archs"]


def _jobs(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (the help text says)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from bench.suites import add_suite_options

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
        "cores), long (whole reviews, vocabulary 30,000, a wider embedding and the pooled readouts, "
        "one setting sized on GRUs; ~45 min per seed on 2 CPU cores), full (the notebook's "
        "configuration, meant for a GPU); default: full on CUDA, quick on CPU",
    )
    parser.add_argument("--task", default=None, metavar="NAME",
                        help="the task to run (see --list-tasks; default: imdb); a results folder "
                        "may hold several tasks, each reported in its own section")
    parser.add_argument(
        "--archs", nargs="+", default=None, metavar="NAME",
        help="architectures: registry names, glob patterns or family:NAME (classic, modern, "
        "floor), space- or comma-separated (see --list-archs); default: the registry's default set",
    )
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                        help="run every architecture with model seeds 0..N-1")
    parser.add_argument("--epochs", type=positive_int, default=None,
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
    parser.add_argument("--tune-epochs", type=positive_int, default=None, metavar="N",
                        help="epochs per tuning trial (default: half the profile's epochs)")
    parser.add_argument("--threads", type=positive_int, default=None,
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
    parser.add_argument("--list-suites", action="store_true",
                        help="list the registered suites (--suite NAME) and their options, and exit")
    add_suite_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser

def list_archs() -> str:
    from models import FAMILIES, list_models, model_info

    lines = []
    for family in FAMILIES:
        lines.append(f"family {family} (--archs family:{family}):")
        for name in list_models(family=family):
            info = model_info(name)
            mark = "*" if info.default else " "
            lines.append(f"{mark} {name:<20} {info.description}")
            defaults = ", ".join(f"{key}={value!r}" for key, value in info.hyperparams.items())
            lines.append(f"  {'':<20} builder defaults: {defaults or '(none)'}")
    lines.append("(* = in the default set. Each profile sets its own sizes over these defaults "
                 "(docs/configuration.md); set one model's own value with --set NAME.KEY=VALUE)")
    return "\n".join(lines)


def list_suites() -> str:
    from bench.suites import list_text

    return list_text()


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

def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: the child is stopped, the lock freed


def _reporting():  # noqa: ANN202 - bench.suites.command.Reporting, imported late
    """What the suites need of ``reports`` (bench imports nothing of reports: run_all wires them)."""
    from bench.suites.command import Reporting
    from reports import render_report, terminal_summary
    from reports.markdown import RERUN_HINT
    from reports.render import is_report_output

    return Reporting(render=render_report, summary=terminal_summary, rerun_hint=RERUN_HINT,
                     is_report_output=is_report_output)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.strip():
        # an unset shell variable, say: it must not quietly mean "the cache or a download"
        print("run_all.py: error: --data is empty; give the IMDb archive or aclImdb/ folder, or "
              "leave --data out to use $RNNBENCH_IMDB or the cache", file=sys.stderr)
        return EXIT_USAGE
    for flag, listing in ((args.list_archs, list_archs), (args.list_tasks, list_tasks),
                          (args.list_suites, list_suites)):
        if flag:
            try:
                print(listing(), flush=True)
            except BrokenPipeError:  # `--list-archs | head`: the reader left; not an error
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    from bench.suites import command

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return command.main(args, argv if argv is not None else sys.argv[1:], _reporting())
    except KeyboardInterrupt:
        print("\ninterrupted; finished records are kept (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
