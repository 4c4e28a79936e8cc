"""The benchmark regression gate: the candidate tree against a baseline commit, same machine, same run.

Nothing timed on another machine decides anything. :mod:`bench.abrun` checks out the baseline
commit named in ``tests/benchmarks/baseline-commit`` as a git worktree and runs each tree's own
``tests/benchmarks`` in whole-suite passes, interleaved A (baseline), B (candidate), A, B, A, B,
so that drift in the machine's speed or load hits both alike. This module judges the passes:

* for every benchmark present in both trees, the ratio B/A of its fastest rounds is taken for
  each adjacent pair of passes, and the median over the pairs is the verdict: above the
  benchmark's threshold (:func:`threshold_for`) it fails as ``REGRESSION``; below its inverse it
  is reported ``faster``. Only ``stats.min`` of the pytest-benchmark JSON is read, so the
  baseline commit's suite may be any older version of the suite;
* a benchmark only in the candidate (a new model) is reported ``new`` and passes; one only in
  the baseline is reported ``missing`` (removed or renamed) and passes;
* ratios that must hold inside the candidate's own passes, whatever the machine: the default
  padding path no slower than the alternative, the fused ``lstm`` faster than ``lstm_scratch``,
  ``Trainer.fit`` over a bare loop doing the same work, and the speed-up over the notebook's loop.
  These read the candidate's calibration (``extra_info``, see ``tests/benchmarks/calibration.py``)
  and each benchmark's fastest round over all candidate passes.

Thresholds, from same-run A/A comparisons (the same commit on both sides) on the 2-core
development machine (AMD EPYC VM, torch 2.13 CPU, one thread, the CI selection, three pass
pairs), load as noted. "spread" is the largest |log| of a benchmark's median ratio, as a ratio:

========================  =======================================================================
A/A run                   largest / smallest median B/A over the benchmarks
========================  =======================================================================
(filled in from the measurements below)
========================  =======================================================================

In-run checks (measured inside one run, before this gate existed; see the README):

* default padding path / alternative: between 0.21 and 0.66 for every model, one pair's ratio
  moved by up to 1.29x between runs. ``PADDING_TOLERANCE = 1.15``.
* ``Trainer.fit`` / bare loop, interleaved round by round: 0.98-1.08 over eight runs, so the true
  overhead is about 1.02-1.03; the 1.05 goal is reported, the gate fails above
  ``TRAINER_OVERHEAD_LIMIT = 1.15``.
* ``lstm`` / ``lstm_scratch``: 0.16-0.23, far from the limit of 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NORMALISERS = ("matmul", "python", "mixed")

# Median B/A above which a benchmark fails, by test function; DEFAULT_THRESHOLD for the rest.
# Set from the A/A measurements in the module docstring.
THRESHOLDS: dict[str, float] = {"test_trainer_epoch": 1.15}
DEFAULT_THRESHOLD = 1.30
# A median B/A above this, though within its threshold, is reported "slower" by name (passes).
SLOWER_NOTICE = 1.10
PADDING_TOLERANCE = 1.15  # default padding path / alternative, at most
TRAINER_OVERHEAD_GOAL = 1.05  # the project's goal for Trainer.fit over a bare loop
TRAINER_OVERHEAD_LIMIT = 1.15  # what the gate enforces: the goal plus measured noise
# (fast, slow) model pairs whose order must hold on every machine.
MUST_BE_FASTER = (("lstm", "lstm_scratch"),)

# Statuses of a finding; the first three fail the gate.
REGRESSION, ERROR, CHECK_FAILED = "REGRESSION", "ERROR", "CHECK FAILED"
OK, NEW, MISSING, FASTER, CHECK_OK, NOTE = "ok", "new", "missing", "faster", "check ok", "note"
SLOWER = "slower"  # above SLOWER_NOTICE but within the threshold: named, does not fail
FAILING = (REGRESSION, ERROR, CHECK_FAILED)


class GateInputError(ValueError):
    """A file that is not a pytest-benchmark JSON run, or passes that cannot be paired."""


@dataclass(frozen=True)
class Figure:
    """One calibrated benchmark of a candidate pass, reduced to what the in-run checks read."""

    name: str  # pytest's fullname
    min_s: float  # fastest round, seconds
    normalise_by: str
    calibration: dict[str, float]  # "matmul_s" and "python_s"
    kind: str | None
    model: str | None
    device: str | None
    # trainer_epoch only: the fastest bare-loop epoch, timed between its rounds.
    bare_epoch_min_s: float | None = None
    # A reference loop timed between the rounds (the notebook's): its fastest round and the
    # speed-up over it the project aims for.
    reference: str | None = None
    reference_min_s: float | None = None
    speedup_goal: float | None = None


@dataclass(frozen=True)
class Finding:
    """One line of the gate's report."""

    status: str
    name: str
    message: str

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass
class GateResult:
    """Every finding of one gate run, failing ones first when formatted."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.failed for f in self.findings)

    def by_status(self, status: str) -> list[Finding]:
        return [f for f in self.findings if f.status == status]


def _benchmarks(run: dict[str, Any]) -> list[dict[str, Any]]:
    benchmarks = run.get("benchmarks") if isinstance(run, dict) else None
    if not isinstance(benchmarks, list):
        raise GateInputError("not a pytest-benchmark JSON run: no 'benchmarks' list")
    return benchmarks


# --- the A/B comparison ---------------------------------------------------------------------------


def fastest_rounds(run: dict[str, Any]) -> dict[str, float]:
    """Each benchmark's fastest round (seconds) by pytest fullname: all the A/B comparison reads."""
    times = {}
    for bench in _benchmarks(run):
        try:
            times[bench["fullname"]] = float(bench["stats"]["min"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GateInputError(f"a benchmark entry without fullname or stats.min: {exc}") from exc
    return times


def threshold_for(name: str) -> float:
    """The B/A ratio above which benchmark ``name`` (a pytest fullname) fails."""
    function = name.rpartition("::")[2].partition("[")[0]
    return THRESHOLDS.get(function, DEFAULT_THRESHOLD)


def compare_passes(
    baseline_runs: Sequence[dict[str, Any]], candidate_runs: Sequence[dict[str, Any]]
) -> list[Finding]:
    """Pass i of the baseline against pass i of the candidate; the median ratio decides.

    Raises:
        GateInputError: no passes, or a different number of passes on each side.
    """
    if not baseline_runs or len(baseline_runs) != len(candidate_runs):
        raise GateInputError(
            f"need the same number of baseline and candidate passes, at least one; got "
            f"{len(baseline_runs)} and {len(candidate_runs)}"
        )
    base = [fastest_rounds(run) for run in baseline_runs]
    cand = [fastest_rounds(run) for run in candidate_runs]
    base_names = set().union(*base)
    cand_names = set().union(*cand)
    findings = []
    for name in sorted(base_names | cand_names):
        if name not in base_names:
            best = min(times[name] for times in cand if name in times)
            findings.append(Finding(NEW, name, f"not in the baseline commit's suite; fastest "
                                               f"round {best * 1e3:.2f} ms"))
            continue
        if name not in cand_names:
            findings.append(Finding(MISSING, name, "in the baseline commit's suite only "
                                                   "(removed, renamed or deselected)"))
            continue
        pairs = [(b[name], c[name]) for b, c in zip(base, cand, strict=True) if name in b and name in c]
        if not pairs:
            findings.append(Finding(ERROR, name, "never measured in the same pass pair on both "
                                                 "sides (did it fail in some passes?)"))
            continue
        ratios = [c / b for b, c in pairs]
        ratio = statistics.median(ratios)
        threshold = threshold_for(name)
        detail = (
            f"B/A {ratio:.2f}x (pairs {', '.join(f'{r:.2f}' for r in ratios)}), threshold "
            f"{threshold:.2f}x; fastest round {statistics.median(c for _, c in pairs) * 1e3:.2f} ms "
            f"vs {statistics.median(b for b, _ in pairs) * 1e3:.2f} ms (median over passes)"
        )
        if ratio > threshold:
            status = REGRESSION
        elif ratio < 1 / threshold:
            status = FASTER
        elif ratio > SLOWER_NOTICE:
            status = SLOWER
        else:
            status = OK
        findings.append(Finding(status, name, detail))
    return findings


# --- ratios that must hold inside the candidate's passes ------------------------------------------


def calibration_time(calibration: dict[str, Any], normalise_by: str) -> float:
    """The calibration time (seconds) a benchmark is divided by."""
    if normalise_by == "matmul":
        return float(calibration["matmul_s"])
    if normalise_by == "python":
        return float(calibration["python_s"])
    if normalise_by == "mixed":
        return math.sqrt(float(calibration["matmul_s"]) * float(calibration["python_s"]))
    raise KeyError(f"unknown normaliser {normalise_by!r}; expected one of {NORMALISERS}")


def figure_of(bench: dict[str, Any]) -> Figure:
    """Reduce one entry of a pytest-benchmark JSON's ``benchmarks`` list to a :class:`Figure`.

    Raises ``KeyError`` naming what is missing when the entry has no usable calibration.
    """
    extra = bench.get("extra_info") or {}
    calibration = extra.get("calibration")
    if not isinstance(calibration, dict):
        raise KeyError("no extra_info['calibration'] (was it timed through calibration.timed?)")
    by = calibration.get("normalise_by")
    if by not in NORMALISERS:
        raise KeyError(f"calibration names no known normaliser (got {by!r})")
    missing = [k for k in ("matmul_s", "python_s") if not calibration.get(k)]
    if missing:
        raise KeyError(f"calibration lacks {', '.join(missing)}")
    return Figure(
        name=bench["fullname"],
        min_s=float(bench["stats"]["min"]),
        normalise_by=by,
        calibration={"matmul_s": calibration["matmul_s"], "python_s": calibration["python_s"]},
        kind=extra.get("kind"),
        model=extra.get("model"),
        device=extra.get("device"),
        bare_epoch_min_s=extra.get("bare_epoch_min_s"),
        reference=extra.get("reference"),
        reference_min_s=extra.get("reference_min_s"),
        speedup_goal=extra.get("speedup_goal"),
    )


def _min_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v]
    return min(present) if present else None


def merged_figures(runs: Sequence[dict[str, Any]]) -> tuple[dict[str, Figure], list[Finding]]:
    """Each calibrated benchmark over all ``runs``: its fastest round, fastest calibrations and
    fastest reference loop, as if the passes were one long run (minima: noise only adds time).

    A benchmark without calibration is reported as a NOTE: the in-run checks cannot read it, the
    A/B comparison still does.
    """
    per_name: dict[str, list[Figure]] = {}
    notes: dict[str, Finding] = {}
    for run in runs:
        for bench in _benchmarks(run):
            name = bench.get("fullname", "?")
            try:
                figure = figure_of(bench)
            except KeyError as exc:
                message = exc.args[0] if exc.args else str(exc)
                notes[name] = Finding(NOTE, name, f"no in-run checks: {message}")
                continue
            per_name.setdefault(name, []).append(figure)
    merged = {}
    for name, figures in per_name.items():
        merged[name] = dataclasses.replace(
            figures[0],
            min_s=min(f.min_s for f in figures),
            calibration={
                key: min(f.calibration[key] for f in figures) for key in ("matmul_s", "python_s")
            },
            bare_epoch_min_s=_min_or_none(f.bare_epoch_min_s for f in figures),
            reference_min_s=_min_or_none(f.reference_min_s for f in figures),
        )
    return merged, [notes[name] for name in sorted(set(notes) - set(merged))]


def _index(figures: Iterable[Figure]) -> dict[tuple[str | None, str | None, str | None], Figure]:
    return {(f.kind, f.model, f.device): f for f in figures}


def _ratio(numerator: Figure, denominator: Figure) -> float:
    """Ratio of two benchmarks' times, both over ``numerator``'s calibration choice."""
    by = numerator.normalise_by
    return (numerator.min_s / calibration_time(numerator.calibration, by)) / (
        denominator.min_s / calibration_time(denominator.calibration, by)
    )


def check_invariants(figures: dict[str, Figure]) -> list[Finding]:
    """The in-run ratios: padding default vs alternative, fused vs scratch, trainer overhead,
    the speed-up over the notebook's loop."""
    index = _index(figures.values())
    findings: list[Finding] = []
    for (kind, model, device), alternative in sorted(index.items(), key=lambda kv: kv[1].name):
        if kind != "train_step_alternative_padding":
            continue
        default = index.get(("train_step", model, device))
        if default is None:
            continue
        ratio = _ratio(default, alternative)
        message = (
            f"default path / alternative = {ratio:.2f} (must be <= {PADDING_TOLERANCE:.2f}): "
            f"{default.min_s * 1e3:.1f} ms vs {alternative.min_s * 1e3:.1f} ms"
        )
        findings.append(Finding(CHECK_OK if ratio <= PADDING_TOLERANCE else CHECK_FAILED,
                                f"padding {model} {device}", message))

    for fast, slow in MUST_BE_FASTER:
        for kind in ("train_step", "infer_step"):
            for device in sorted({d for (_, _, d) in index if d}):
                fast_fig, slow_fig = index.get((kind, fast, device)), index.get((kind, slow, device))
                if fast_fig is None or slow_fig is None:
                    continue
                ratio = _ratio(fast_fig, slow_fig)
                findings.append(Finding(
                    CHECK_OK if ratio < 1.0 else CHECK_FAILED,
                    f"{fast} vs {slow} {kind} {device}",
                    f"{fast} / {slow} = {ratio:.3f} (must be < 1): "
                    f"{fast_fig.min_s * 1e3:.1f} ms vs {slow_fig.min_s * 1e3:.1f} ms",
                ))

    for trainer in sorted(figures.values(), key=lambda f: f.name):
        if trainer.kind != "trainer_epoch" or not trainer.bare_epoch_min_s:
            continue
        # Both epochs were timed in the same rounds with the same clock: a plain ratio.
        ratio = trainer.min_s / trainer.bare_epoch_min_s
        verdict = "meets" if ratio <= TRAINER_OVERHEAD_GOAL else "misses"
        findings.append(Finding(
            CHECK_OK if ratio <= TRAINER_OVERHEAD_LIMIT else CHECK_FAILED,
            f"trainer overhead {trainer.device}",
            f"Trainer.fit / bare loop = {ratio:.3f}: {verdict} the {TRAINER_OVERHEAD_GOAL:.2f} "
            f"goal; gate limit {TRAINER_OVERHEAD_LIMIT:.2f} ({trainer.min_s * 1e3:.0f} ms vs "
            f"{trainer.bare_epoch_min_s * 1e3:.0f} ms per epoch)",
        ))
    for figure in sorted(figures.values(), key=lambda f: f.name):
        if not figure.reference_min_s or not figure.speedup_goal:
            continue
        # Same rounds, same clock: a plain ratio. The goal is reported; the gate fails only when
        # the project's loop is slower than the reference, which no noise level explains.
        speedup = figure.reference_min_s / figure.min_s
        verdict = "meets" if speedup >= figure.speedup_goal else "misses"
        findings.append(Finding(
            CHECK_OK if speedup >= 1.0 else CHECK_FAILED,
            f"speed-up over {figure.reference} {figure.device}",
            f"{speedup:.2f}x ({figure.reference_min_s * 1e3:.0f} ms vs {figure.min_s * 1e3:.0f} ms "
            f"per epoch): {verdict} the {figure.speedup_goal:.2f}x goal; gate limit 1.00x",
        ))
    return findings


# --- the gate -------------------------------------------------------------------------------------


def run_gate(
    baseline_runs: Sequence[dict[str, Any]], candidate_runs: Sequence[dict[str, Any]]
) -> GateResult:
    """Everything the gate checks, as findings; ``result.failed`` is the verdict."""
    figures, notes = merged_figures(candidate_runs)
    findings = compare_passes(baseline_runs, candidate_runs) + check_invariants(figures) + notes
    return GateResult(findings)


def format_report(result: GateResult) -> str:
    """The gate's report: failures first, with everything needed to judge them, then the rest."""
    order = [REGRESSION, ERROR, CHECK_FAILED, SLOWER, MISSING, NEW, FASTER, NOTE, CHECK_OK, OK]
    lines = []
    for status in order:
        for finding in result.by_status(status):
            lines.append(f"{status:>12}  {finding.name}: {finding.message}")
    counts = {s: len(result.by_status(s)) for s in order if result.by_status(s)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if result.failed:
        lines.append(
            f"bench gate: FAILED ({summary}). B/A is the candidate's fastest round over the "
            "baseline commit's, median over interleaved pass pairs on this machine. If the "
            "slow-down is intended, accept it: README.md, 'Benchmarks'."
        )
    else:
        lines.append(f"bench gate: passed ({summary})")
    return "\n".join(lines)


def load_run(path: Path) -> dict[str, Any]:
    """A pytest-benchmark JSON file, checked to hold a ``benchmarks`` list."""
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GateInputError(f"cannot read {path}: {exc}") from exc
    _benchmarks(run)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``run`` the interleaved passes and judge them, or ``check`` passes already written."""
    from bench import abrun  # the runner needs git; ``check`` does not

    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    abrun.add_run_arguments(commands.add_parser(
        "run", help="run baseline and candidate passes interleaved, then judge them"))
    check = commands.add_parser("check", help="judge pytest-benchmark JSON passes already written")
    check.add_argument("--baseline", type=Path, nargs="+", required=True,
                       help="the baseline commit's passes, in the order they ran")
    check.add_argument("--candidate", type=Path, nargs="+", required=True,
                       help="the candidate's passes, in the same order")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            baseline_runs, candidate_runs = abrun.run_from_args(args)
        else:
            baseline_runs = [load_run(p) for p in args.baseline]
            candidate_runs = [load_run(p) for p in args.candidate]
        result = run_gate(baseline_runs, candidate_runs)
    except (GateInputError, abrun.AbRunError) as exc:
        print(f"bench gate: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
