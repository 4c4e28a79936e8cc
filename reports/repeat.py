"""``python -m reports.repeat FIRST SECOND``: how far two cost-suite runs of one commit agree.

The same points measured twice, on the same machine, at the same commit: per point the ratio of
the second run's median to the first's (training step and inference step), and the difference of
their peak memories. The page is rendered from the two folders' cost points alone and written as
``FIRST/repeatability.md`` (``--check``: compare instead of writing). Facts first
(:func:`repeat_facts`), then one rendering (:func:`render_repeat`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results.cost import load_points

PAGE = "repeatability.md"
#: A timed figure is compared when its median is at least this long in both runs (shorter ones
#: are the timer's and the scheduler's as much as the model's).
TIMED_FLOOR_MS = 10.0
#: The agreement bands of timed figures (ratio of medians): "within" and "beyond".
NEAR, FAR = 0.10, 0.25
#: Peak memories agree when they differ by at most max(this share, MEMORY_MIB).
MEMORY_SHARE, MEMORY_MIB = 0.02, 2.0
#: The timed figures compared: (phase, label).
TIMED = (("train", "train step"), ("infer", "inference"))


@dataclass(frozen=True)
class Pair:
    """One figure of one point in both runs."""

    point_id: str
    arch: str
    axis: str
    size: str
    figure: str
    first: float
    second: float

    @property
    def ratio(self) -> float:
        return self.second / self.first

    @property
    def off(self) -> float:
        """How far the two disagree, as a share of the smaller (symmetric in the runs)."""
        low, high = sorted((self.first, self.second))
        return high / low - 1.0 if low > 0 else float("inf")


@dataclass(frozen=True)
class RepeatFacts:
    first: str
    second: str
    timed: list[Pair]  # medians of at least TIMED_FLOOR_MS in both runs
    short: int  # timed figures left out: under the floor in a run
    memory: list[Pair]
    only_one: list[str]  # point ids measured in one run alone (or not ok in one)
    wall_s: tuple[float | None, float | None]
    commits: tuple[str, str]
    #: Each run's median calibration matmul FLOP/s over its rounds (None: not recorded).
    matmul: tuple[float | None, float | None] = (None, None)

    @property
    def drift(self) -> float:
        """The second run over the first across every timed figure (the median ratio): how
        much faster or slower the machine ran the whole second run. It moves every figure of a
        run alike, so no ranking or ratio within a run changes with it."""
        return statistics.median(p.ratio for p in self.timed) if self.timed else 1.0

    def near_without_drift(self) -> int:
        """Timed figures within :data:`NEAR` of each other once :attr:`drift` is divided out."""
        drift = self.drift
        return sum(max(r, 1 / r) - 1 <= NEAR for r in (p.ratio / drift for p in self.timed))


def _size(point: Mapping[str, Any]) -> str:
    if point["axis"] == "task":
        return "task's lengths"
    return f"T {point['length_T']:,}, batch {point['batch']:,}"


def _median(point: Mapping[str, Any], phase: str) -> float | None:
    part = point.get(phase) or {}
    return part["step_ms"]["median"] if part.get("status") == "ok" else None


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def repeat_facts(first: Path, second: Path) -> RepeatFacts:
    """Match the two folders' points by id and pair their figures."""
    a = {p["point_id"]: p for p in load_points(first).points if p["status"] == "ok"}
    b = {p["point_id"]: p for p in load_points(second).points if p["status"] == "ok"}
    timed, memory, short = [], [], 0
    for point_id in (i for i in a if i in b):
        one, two = a[point_id], b[point_id]
        base = (point_id, one["arch"], one["axis"], _size(one))
        for phase, label in TIMED:
            x, y = _median(one, phase), _median(two, phase)
            if x is None or y is None:
                continue
            if min(x, y) < TIMED_FLOOR_MS:
                short += 1
            else:
                timed.append(Pair(*base, label, x, y))
        for phase, label in TIMED:
            x, y = (p["peak_memory"].get(f"{phase}_peak_mb") for p in (one, two))
            if x is not None and y is not None:
                memory.append(Pair(*base, f"{label} peak", x, y))
    manifests = [_manifest(first), _manifest(second)]
    walls = tuple(m.get("wall_time_s") for m in manifests)
    rates = [(m.get("cost_suite") or {}).get("round_matmul_flops_per_s") or [] for m in manifests]
    matmul = tuple(statistics.median(r) if r else None for r in rates)
    commits = tuple(", ".join(c["commit"][:12] + (" (dirty)" if c.get("dirty") else "")
                              for c in m.get("commits") or []) or "unknown" for m in manifests)
    return RepeatFacts(first.name, second.name, timed, short, memory,
                       sorted(set(a) ^ set(b)), walls, commits, matmul)  # type: ignore[arg-type]


def memory_agrees(pair: Pair) -> bool:
    return abs(pair.second - pair.first) <= max(MEMORY_SHARE * min(pair.first, pair.second),
                                                MEMORY_MIB)


def _share(count: int, total: int) -> str:
    return f"{count} of {total} ({count / total:.1%})" if total else "none of none"


def render_repeat(facts: RepeatFacts) -> str:
    timed, memory = facts.timed, facts.memory
    near = sum(p.off <= NEAR for p in timed)
    far = [p for p in timed if p.off > FAR]
    mem_ok = sum(memory_agrees(p) for p in memory)
    worst = sorted(timed, key=lambda p: p.off, reverse=True)
    lines = [
        "# Repeatability: the cost suite measured twice",
        "",
        f"`{facts.first}` and `{facts.second}`: the same points measured by two runs of the cost "
        f"suite (commits `{facts.commits[0]}` and `{facts.commits[1]}`; "
        f"{_minutes(facts.wall_s[0])} and {_minutes(facts.wall_s[1])}), one after the other on "
        "one machine. Each timed figure is a point's median step time; the ratio is the second "
        f"run's over the first's. Figures under {TIMED_FLOOR_MS:g} ms in a run are left out "
        f"({facts.short} of them): they measure the timer and the scheduler as much as the model. "
        "Two figures differ by x% when the larger is x% above the smaller. T 256 at batch 64 "
        "belongs to both series (lengths and batch sizes), so it appears once for each, measured "
        "at two moments of each round.",
        "",
        "| Agreement | Result |",
        "|---|---|",
        f"| timed figures that differ by at most {NEAR:.0%} | {_share(near, len(timed))} |",
        f"| timed figures that differ by more than {FAR:.0%} | {_share(len(far), len(timed))} |",
        f"| largest disagreement | {_worst(worst[0]) if worst else '—'} |",
        f"| peak memories within max({MEMORY_SHARE:.0%}, {MEMORY_MIB:g} MiB) | "
        f"{_share(mem_ok, len(memory))} |",
        f"| points measured in one run only | {len(facts.only_one)} |",
        f"| the second run over the first, median of every timed figure | {facts.drift:.3f}"
        f"{_matmul_note(facts)} |",
        f"| timed figures within {NEAR:.0%} once that is divided out | "
        f"{_share(facts.near_without_drift(), len(timed))} |",
        "",
        "The median ratio says how much slower or faster the machine ran the whole second run "
        "(one commit, the same points): a drift shared by every figure of a run changes no "
        "ranking or ratio between architectures within it, and nothing in the suite controls "
        "it (the calibration matmul, bound by arithmetic rather than memory, moved less).",
        "",
        f"## Every timed figure of {TIMED_FLOOR_MS:g} ms or more, most different first",
        "",
        "| Architecture | Point | Figure | First ms | Second ms | Ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| `{p.arch}` | {p.size} | {p.figure} | {p.first:,.1f} | {p.second:,.1f} | "
              f"{p.ratio:.2f} |" for p in worst]
    differ = [p for p in memory if p.first != p.second]
    lines += ["", "## Peak memory", ""]
    if not differ:
        lines.append(f"All {len(memory)} peak memories are the same to the byte in both runs.")
    else:
        lines += ["| Architecture | Point | Figure | First MiB | Second MiB |", "|---|---|---|---:|---:|"]
        lines += [f"| `{p.arch}` | {p.size} | {p.figure} | {p.first:,.2f} | {p.second:,.2f} |"
                  for p in differ]
    return "\n".join(lines) + "\n"


def _matmul_note(facts: RepeatFacts) -> str:
    one, two = facts.matmul
    if not one or not two:
        return ""
    return f" (the calibration matmul, median over rounds: {two / one:.3f})"


def _minutes(seconds: float | None) -> str:
    return "time unknown" if seconds is None else f"{seconds / 60:.1f} minutes"


def _worst(pair: Pair) -> str:
    return f"`{pair.arch}` {pair.figure} at {pair.size}: ratio {pair.ratio:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reports.repeat",
        description="Compare two cost-suite results folders point by point (the same commit "
        f"measured twice) and write FIRST/{PAGE}.")
    parser.add_argument("first", type=Path, help="a results folder holding cost points")
    parser.add_argument("second", type=Path, help="the same suite measured again")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when FIRST/{PAGE} differs from what the folders give")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not load_points(folder).points:
            print(f"python -m reports.repeat: error: {folder} holds no cost points; run "
                  "run_all.py --suite cost into it first", file=sys.stderr)
            return 2
    facts = repeat_facts(args.first, args.second)
    if not facts.timed and not facts.memory:
        print(f"python -m reports.repeat: error: {args.first} and {args.second} share no measured "
              "point; compare two runs of the same suite, profile and settings", file=sys.stderr)
        return 2
    page = render_repeat(facts)
    target = args.first / PAGE
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != page:
            print(f"python -m reports.repeat: {target} is out of date; run without --check",
                  file=sys.stderr)
            return 1
        return 0
    target.write_text(page, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
