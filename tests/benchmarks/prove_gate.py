"""Proof that the gate ignores load and catches a 2x slow-down. Run by hand, not by the suite::

    .venv/bin/python tests/benchmarks/prove_gate.py --loaded-runs 5 --slow-model lstm

1. ``--loaded-runs`` times: start a busy loop (``python -c "while True: pass"``, one core of
   load), run the benchmark suite writing JSON, stop the loop, run the gate. Every run must pass.
2. Once more, under the same load, with ``tests.benchmarks.slowdown_plugin`` making
   ``--slow-model``'s forward pass twice as slow. The gate must fail, naming that model.

Prints each gate's verdict and the slowed model's figures; exits 0 only if both hold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import gate  # noqa: E402


@contextmanager
def busy_core() -> Iterator[None]:
    """One process spinning on a core for the duration; stopped (by its pid) on exit."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.terminate()
        spinner.wait()


def run_suite(json_path: Path, env: dict[str, str], plugins: list[str]) -> None:
    """The benchmark suite, as ``make test`` runs it, writing ``json_path``."""
    command = [sys.executable, "-m", "pytest", "tests/benchmarks", "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={json_path}"]
    for plugin in plugins:
        command += ["-p", plugin]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def judge(json_path: Path, baseline: dict) -> gate.GateResult:
    return gate.run_gate(json.loads(json_path.read_text()), baseline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loaded-runs", type=int, default=5)
    parser.add_argument("--slow-model", default="lstm")
    parser.add_argument("--baseline", type=Path, default=ROOT / "tests/benchmarks/baseline.json")
    parser.add_argument("--out", type=Path, default=ROOT / ".benchmarks/proof")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    baseline = json.loads(args.baseline.read_text())
    env = {k: v for k, v in os.environ.items() if k != "RNNBENCH_SLOWDOWN"}

    false_alarms = 0
    for i in range(1, args.loaded_runs + 1):
        path = args.out / f"loaded-{i}.json"
        with busy_core():
            run_suite(path, env, [])
        result = judge(path, baseline)
        ratios = [
            float(f.message.split("ratio ")[1].split("x")[0])
            for f in result.findings if f.status in (gate.OK, gate.FASTER, gate.REGRESSION)
        ]
        print(f"loaded run {i}: {'FAILED' if result.failed else 'passed'}; ratio to baseline "
              f"min {min(ratios):.2f} max {max(ratios):.2f}")
        for finding in result.findings:
            if finding.failed:
                print(f"    {finding.status} {finding.name}: {finding.message}")
        false_alarms += result.failed

    path = args.out / f"slow-{args.slow_model}.json"
    with busy_core():
        run_suite(path, {**env, "RNNBENCH_SLOWDOWN": args.slow_model},
                  ["tests.benchmarks.slowdown_plugin"])
    result = judge(path, baseline)
    print(f"2x slow-down of {args.slow_model}'s forward pass: "
          f"{'FAILED (caught)' if result.failed else 'passed (MISSED)'}")
    for finding in result.findings:
        if f"-{args.slow_model}]" in finding.name or finding.failed:
            print(f"    {finding.status} {finding.name}: {finding.message}")
    caught = result.failed and any(
        f"-{args.slow_model}]" in f.name for f in result.by_status(gate.REGRESSION)
    )
    print(f"summary: {false_alarms} false alarm(s) in {args.loaded_runs} loaded runs; "
          f"slow-down {'caught' if caught else 'MISSED'}")
    return 0 if false_alarms == 0 and caught else 1


if __name__ == "__main__":
    sys.exit(main())
