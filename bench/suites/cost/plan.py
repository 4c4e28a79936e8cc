"""The cost suite's points: which input sizes each architecture is measured at, per profile.

Two doubling series, every sequence exactly T long so that a point is the cost of T: T at a fixed
batch, and the batch size at a fixed T; plus the task's own lengths at the grid's batch (the
point the report's main table quotes). A point's id is a hash of everything that sets its
numbers except how many repetitions measured it, so ``--resume`` skips what was measured.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any


def doubling(first: int, last: int) -> tuple[int, ...]:
    """``first, 2 first, 4 first, ...`` up to ``last``."""
    values = []
    while first <= last:
        values.append(first)
        first *= 2
    return tuple(values)


@dataclass(frozen=True)
class CostSeries:
    """A profile's points and repetitions."""

    lengths: tuple[int, ...]  #: T of the length series
    length_batch: int  #: its batch size
    batches: tuple[int, ...]  #: batch sizes of the batch series
    batch_length: int  #: its T
    #: Timed repetitions per point, one a round (the interval's coverage needs >= 6 for 95%).
    #: 49: on a shared 2-core machine a step's time moves 25-35% between spells of seconds, and
    #: drawing 7 of them left a median a coin toss between two levels (two runs: 73% of figures
    #: within 10%); redrawing the two runs' 14 times per figure, 49 draws put 97% within 10%.
    reps: int = 49
    #: Untimed repetitions before a point's first timed one. A later visit needs none: its first
    #: step measured within 2% of its second (2026-12-03, this machine, four architectures).
    warmup: int = 2
    #: Batches of the task's own lengths timed as one repetition of the task's point.
    task_batches: int = 4
    #: Fresh processes the rounds are split over, one after another. With one process, two runs
    #: (49 rounds each, 2026-12-03, this machine) put 90% of figures within 10% of each other:
    #: single architectures' steps sat 5-15% apart in every round, an offset a process keeps for
    #: life (its memory placement, most likely) and pooled processes average out.
    sittings: int = 4

    def __post_init__(self) -> None:
        if self.reps < 5:
            raise ValueError(f"--reps must be at least 5, got {self.reps}")
        if not self.lengths or not self.batches or min(self.lengths + self.batches) < 1:
            raise ValueError("the series need at least one length and one batch size, each >= 1")


#: The series per profile: smoke tiny; quick (and long) CPU-sized; full for a GPU.
SERIES: dict[str, CostSeries] = {
    "smoke": CostSeries(lengths=(8, 16, 32), length_batch=4, batches=(1, 2, 4), batch_length=16,
                        reps=6, warmup=1, task_batches=2, sittings=1),
    "quick": CostSeries(lengths=doubling(64, 2048), length_batch=64, batches=doubling(1, 256),
                        batch_length=256),
    "long": CostSeries(lengths=doubling(64, 2048), length_batch=64, batches=doubling(1, 256),
                       batch_length=256),
    "full": CostSeries(lengths=doubling(64, 8192), length_batch=64, batches=doubling(1, 1024),
                       batch_length=256),
}  # fmt: skip


def series_for(profile: str, *, lengths: Sequence[int] | None = None,
               batches: Sequence[int] | None = None, reps: int | None = None,
               sittings: int | None = None) -> CostSeries:  # fmt: skip
    """The profile's series with ``--lengths``, ``--batches``, ``--reps`` and ``--sittings``
    applied (:class:`ValueError` for values out of range)."""
    changes: dict[str, Any] = {} if sittings is None else {"sittings": sittings}
    if lengths:
        changes["lengths"] = tuple(sorted(set(lengths)))
    if batches:
        changes["batches"] = tuple(sorted(set(batches)))
    if reps is not None:
        changes["reps"] = reps
    return replace(SERIES[profile], **changes)


@dataclass(frozen=True)
class CostPoint:
    """One architecture at one input size. ``length_T`` None: the task's own lengths."""

    arch: str
    axis: str  # "task", "length" or "batch" (bench.results.cost.AXES)
    length_T: int | None
    batch: int

    def point_id(self, identity: Mapping[str, Any]) -> str:
        """``<arch>-<axis>-T<T>-b<batch>-<hash>``, the hash over ``identity`` (what sets the
        point's numbers: profile, device, threads, the model's hyperparameters, the vocabulary)."""
        blob = json.dumps({**identity, "arch": self.arch, "axis": self.axis, "T": self.length_T,
                           "batch": self.batch}, sort_keys=True, default=str).encode()  # fmt: skip
        length = "x" if self.length_T is None else str(self.length_T)
        digest = hashlib.sha256(blob).hexdigest()[:8]
        return f"{self.arch}-{self.axis}-T{length}-b{self.batch}-{digest}"


def plan_points(archs: Sequence[str], series: CostSeries, task_batch: int) -> list[CostPoint]:
    """Every point of every architecture, architecture by architecture: the task's point, then
    the length series, then the batch series."""
    points = []
    for arch in archs:
        points.append(CostPoint(arch, "task", None, task_batch))
        points += [CostPoint(arch, "length", t, series.length_batch) for t in series.lengths]
        points += [CostPoint(arch, "batch", series.batch_length, b) for b in series.batches]
    return points


def parse_sizes(text: str | None, flag: str) -> tuple[int, ...] | None:
    """``--lengths 64,128`` as a tuple of whole numbers >= 1 (ValueError naming ``flag``)."""
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{flag} expects whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{flag} expects whole numbers >= 1 separated by commas, got {text!r}")
    return values
