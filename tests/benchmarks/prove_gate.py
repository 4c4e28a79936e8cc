"""Proof that the same-run gate stays quiet on A/A and catches slow-downs. Run by hand::

    .venv/bin/python tests/benchmarks/prove_gate.py                # everything below
    .venv/bin/python tests/benchmarks/prove_gate.py --aa-runs 0    # only the two slow-downs

1. ``--aa-runs`` A/A gate runs: the committed HEAD as the baseline commit against this tree
   (which must have no uncommitted changes, so both sides are the same code); the last
   ``--busy-runs`` of them with a busy loop (``python -c "while True: pass"``) on one core. Every
   one must pass. Prints each run's lowest and highest B/A.
2. A/B: ``--slow-model``'s forward pass doubled in the candidate only
   (``tests.benchmarks.slowdown_plugin``). The gate must fail, naming that model's inference step.
3. A/B: every ``Trainer.train_step`` of the candidate delayed by a CPU spin sized to make
   ``test_trainer_epoch`` 1.2x slower (from that benchmark's fastest epoch in the first candidate
   pass of step 2). ``test_trainer_epoch`` must be reported by name with B/A >= 1.1.

Passes and logs go to ``.benchmarks/proof/<run>/``. Exits 0 only if all three hold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.dev import abrun, gate  # noqa: E402

PLUGIN = "tests.benchmarks.slowdown_plugin"
TRAINER = "tests/benchmarks/test_bench_trainer.py::test_trainer_epoch[cpu]"


@contextmanager
def busy_core() -> Iterator[None]:
    """One process spinning on a core for the duration; stopped (by its pid) on exit."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.terminate()
        spinner.wait()


def gate_run(name: str, commit: str, patterns: list[str], passes: int, plugins: list[str],
             env: dict[str, str], busy: bool) -> tuple[gate.GateResult, list[dict[str, Any]]]:
    """One gate run (interleaved passes, then the verdict) with ``env`` set for its duration."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with busy_core() if busy else nullcontext():
            base, cand = abrun.run_interleaved(
                ROOT, commit, passes=passes, patterns=patterns, out=ROOT / ".benchmarks/proof" / name,
                candidate_plugins=plugins, log=lambda line: print("   ", line, flush=True))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    result = gate.run_gate(base, cand)
    (ROOT / ".benchmarks/proof" / f"{name}.txt").write_text(gate.format_report(result) + "\n")
    return result, cand


def ratio_of(finding: gate.Finding) -> float:
    return float(finding.message.split("B/A ")[1].split("x")[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aa-runs", type=int, default=5)
    parser.add_argument("--busy-runs", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--select", choices=abrun.SELECTIONS, default="ci")
    parser.add_argument("--slow-model", default="gru")
    parser.add_argument("--trainer-slowdown", type=float, default=1.2)
    args = parser.parse_args()
    patterns = abrun.selection_patterns(args.select, abrun.ci_models())
    clean = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    head = abrun.resolve_commit(ROOT, "HEAD")
    ok = True

    if args.aa_runs and clean:
        print(f"A/A needs a tree without uncommitted changes (so both sides are HEAD):\n{clean}")
        return 2
    for i in range(1, args.aa_runs + 1):
        busy = i > args.aa_runs - args.busy_runs
        result, _ = gate_run(f"aa-{i}", head, patterns, args.passes, [], {}, busy)
        ratios = [ratio_of(f) for f in result.findings if f.status in (gate.OK, gate.FASTER,
                                                                         gate.REGRESSION)]
        print(f"A/A run {i}{' (busy loop on one core)' if busy else ''}: "
              f"{'FAILED' if result.failed else 'passed'}; B/A min {min(ratios):.3f} "
              f"median {statistics.median(ratios):.3f} max {max(ratios):.3f}", flush=True)
        for finding in result.findings:
            if finding.failed:
                print(f"    {finding.status} {finding.name}: {finding.message}")
        ok &= not result.failed

    baseline = abrun.resolve_commit(ROOT, abrun.read_baseline_commit(ROOT))
    result, cand = gate_run(f"slow-{args.slow_model}", baseline, patterns, args.passes, [PLUGIN],
                            {"RNNBENCH_SLOWDOWN": args.slow_model}, False)
    caught = [f for f in result.by_status(gate.REGRESSION)
              if f.name.endswith(f"test_infer_step[cpu-{args.slow_model}]")]
    print(f"2x forward pass of {args.slow_model}: {'caught' if caught else 'MISSED'}")
    for finding in result.findings:
        if f"-{args.slow_model}]" in finding.name or finding.failed:
            print(f"    {finding.status} {finding.name}: {finding.message}")
    ok &= bool(caught)

    trainer = next(b for b in cand[0]["benchmarks"] if b["fullname"] == TRAINER)
    steps = int(trainer["extra_info"]["steps"])
    delay_ms = (args.trainer_slowdown - 1) * float(trainer["stats"]["min"]) * 1e3 / steps
    result, _ = gate_run("slow-trainer-step", baseline, patterns, args.passes, [PLUGIN],
                         {"RNNBENCH_STEP_DELAY_MS": f"{delay_ms:.3f}"}, False)
    [finding] = [f for f in result.findings if f.name == TRAINER]
    print(f"{delay_ms:.2f} ms spin per train step (aiming at {args.trainer_slowdown}x the epoch): "
          f"{finding.status} {finding.name}: {finding.message}")
    for other in result.findings:
        if other.failed and other is not finding:
            print(f"    {other.status} {other.name}: {other.message}")
    ok &= ratio_of(finding) >= 1.1
    print(f"summary: {'all held' if ok else 'NOT all held'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
