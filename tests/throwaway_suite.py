"""A throwaway suite, task and report section, registered when this test-only module is imported,
with no edit to any other file: what a contributor's new suite is (tests/test_suites.py runs it).

The task: sequences of one repeated symbol, labelled by which symbol it is. The suite: one run of
each chosen architecture on it, at the length its own option (``--echo-length``) gives. The report
section: the task's own, saying how many runs reached which accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from bench.suites import list_suites, register_suite
from bench.suites.command import Command, positive_int
from data_pipeline import EncodedSplit, TaskData, Vocab, list_tasks, register_task
from reports.sections import TASK_REPORTS, TaskContext, TaskReport, register_task_report

TASK = "echo_test"
SUITE = "echo"
SECTION_HEADING = "## The echo task"


@dataclass(frozen=True)
class EchoSettings:
    """Sequences of ``length`` copies of one of two symbols; the label is the symbol."""

    n_train: int = 120
    n_test: int = 40
    length: int = 6
    seed: int = 0


def _split(name: str, rng: np.random.Generator, n: int, length: int) -> EncodedSplit:
    symbols = rng.integers(2, 4, size=n)
    split = EncodedSplit.unlabeled(name, [[int(s)] * length for s in symbols])
    return dataclasses.replace(split, labels=torch.from_numpy((symbols == 3).astype(np.int64)))


def load_echo(settings: EchoSettings, data_path: object, *, progress: bool = True) -> TaskData:
    rng = np.random.default_rng(settings.seed)
    n_val = settings.n_train // 4
    return TaskData(_split("train", rng, settings.n_train - n_val, settings.length),
                    _split("val", rng, n_val, settings.length),
                    _split("test", rng, settings.n_test, settings.length),
                    Vocab(["<unk>", "<pad>", "x", "y"]), {"source": "generated"})


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--echo-length", type=positive_int, default=None, metavar="N",
                       help="the length of every sequence")


def run(command: Command) -> int:
    args = command.args
    args.task = TASK
    base = {} if args.echo_length is None else {"data.length": str(args.echo_length)}
    archs, config, model_settings = command.resolve_config(base=base)
    threads, specs = command.plan(archs, config, model_settings)
    with command.open_folder(specs) as (previous, protocol, settings):
        manifest = command.manifest(previous, threads=threads, archs=archs, protocol=protocol,
                                    settings=settings)
        outcome = command.execute(specs, manifest)
        unreadable = command.report(manifest)
    return command.exit_code(outcome, unreadable)


def echo_section(context: TaskContext) -> tuple[str, dict[str, bytes]]:
    solved = [r for r in context.records if r["status"] == "ok"
              and r["metrics"]["test_accuracy"] >= 0.9]
    lengths = sorted({r["spec"]["data"]["length"] for r in context.records})
    return (f"{SECTION_HEADING}\n\n{len(solved)} of {len(context.records)} run(s) reached 90% "
            f"test accuracy at length {', '.join(map(str, lengths))}.\n", {})


if TASK not in list_tasks():
    register_task(TASK, settings=EchoSettings, loader=load_echo, title="Echo",
                  description="Generated sequences of one repeated symbol, labelled by it",
                  example="sequence")
if SUITE not in list_suites():
    register_suite(SUITE, run=run, add_options=add_options,
                   description="one run per architecture on the echo task (a test's suite)",
                   report_sections=("the echo task's section",))
if TASK not in TASK_REPORTS:
    register_task_report(TaskReport(TASK, section=echo_section))
