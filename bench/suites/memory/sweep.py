"""The memory suite (``run_all.py --suite memory``): how far back each architecture carries what
it has read, measured on the generated memory task (:mod:`data_pipeline.memory`).

For each memory load (``alphabet`` symbols, ``n_signals`` of them to hold) every recurrent
architecture is trained at distances T = 16, 32, 64, ... (doubling), one seed, each run stopped as
soon as its validation accuracy reaches the target (solved) or stops improving. An architecture
leaves the sweep at its first T whose test accuracy falls below the threshold (a longer distance
is not easier: the task at 2T holds the task at T's difficulty and more); the series goes on while
any architecture still solves it, up to a limit. Then the T where each architecture's result
changes (its last solved and first failed T) get more seeds, and the floors (the architectures
without recurrence) run at the first and the last T, where they must stay at chance.

A horizon is not decided by a run its epoch cap cut off while it was still improving: a run of
the sweep whose result decides a horizon (a recurrent architecture's seed 0 at a T of its series,
and its extra seeds where the result changes) that is budget-bound
(:func:`bench.results.records.budget_bound`) and below the threshold is run once more, the same
run with :attr:`SuiteConfig.extension_factor` times its epochs (a budget extension,
``train.extends_epochs``), and the extension's result decides in its place. A budget-bound run
that solved its T is not extended: the cap did not stop it short of the threshold, and its chain
goes on regardless (the report marks such a run ‡ all the same). An extension is extended no further.

Every run is an ordinary run of the task ``memory``: a record in ``runs/`` like any other, through
the one executor and trainer. The runs of one folder share every setting but the architecture,
the seed and the sweep's axes (:data:`AXES`: distance and load); an extension has the settings
of the run it extends (:func:`bench.results.folder.settings_of`). What a sweep decides next is
read back from the records, extensions included, so ``--resume`` replays it and runs only what is
missing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.grid.runner import GridOutcome, longest_first
from bench.results import records
from bench.run.config import RunConfig, RunSpec, apply_overrides
from data_pipeline.memory import load_label
from models import model_info

TASK = "memory"

#: The settings a sweep varies: neither identifies a folder's settings nor must match across runs.
AXES = ("data.distance", "data.alphabet", "data.n_signals")


@dataclass(frozen=True)
class SuiteConfig:
    """What the suite sweeps and when a run counts as solved.

    Attributes:
        loads: the memory loads, as (alphabet, n_signals) pairs.
        first_distance: the sweep's first T.
        limit_distance: the largest T it may reach (the series doubles while any architecture
            still solves the last T, up to this).
        threshold: the test accuracy at or above which a run has solved its T.
        seeds_at_change: seeds at each architecture's last solved and first failed T.
        probe_distance: the T whose trained models the gradient probe reads (first load).
        extension_factor: a deciding run that is budget-bound and below the threshold is run
            once more with this many times its epochs (1: never); the declared budget of the
            suite is the profile's ``train.epochs``, extended so once.
    """

    loads: tuple[tuple[int, int], ...] = ((16, 2), (4, 2))
    first_distance: int = 16
    limit_distance: int = 512
    threshold: float = 0.95
    seeds_at_change: int = 3
    probe_distance: int = 64
    extension_factor: int = 2

    def __post_init__(self) -> None:
        if not self.loads:
            raise ValueError("the memory suite needs at least one load")
        for alphabet, n_signals in self.loads:
            if n_signals < 2 or alphabet < n_signals:
                raise ValueError(f"memory load {n_signals} of {alphabet}: needs 2 <= n_signals <= "
                                 "alphabet")
        if not 1 <= self.first_distance <= self.limit_distance:
            raise ValueError("the memory suite needs 1 <= first distance <= limit distance")
        if not 0.5 < self.threshold <= 1.0:
            raise ValueError("the memory suite's threshold must be in (0.5, 1]")
        if self.seeds_at_change < 1:
            raise ValueError("the memory suite needs at least 1 seed at the change points")
        if self.extension_factor < 1:
            raise ValueError("the memory suite's extension factor must be >= 1 (1: no extension)")

    def distances(self) -> list[int]:
        """The doubling series, first to limit."""
        series, distance = [], self.first_distance
        while distance <= self.limit_distance:
            series.append(distance)
            distance *= 2
        return series


#: The suite per profile. smoke: tiny loads and distances, so CI runs it in a minute or two.
SUITE_PROFILES: dict[str, SuiteConfig] = {
    "smoke": SuiteConfig(loads=((4, 2), (8, 2)), first_distance=4, limit_distance=8,
                         seeds_at_change=2, probe_distance=4),
    "quick": SuiteConfig(),
    "long": SuiteConfig(),
    "full": SuiteConfig(),
}

#: The run settings the suite sets over the profile's (the user's --set still wins). Small models
#: (embedding 16, hidden 64, as the task was calibrated with), no dropout (nothing to regularise:
#: the data are unlimited in principle), a higher learning rate and a patience long enough for
#: the plateau at chance a memory task shows before a model finds the signal; a run stops as soon
#: as it is solved. Speed and memory figures are not what this suite is for: latency is measured
#: briefly and CPU inference memory not at all (its fresh process took 25 of a run's 34 seconds).
SUITE_DELTAS: dict[str, dict[str, Any]] = {
    "smoke": {
        "model.embedding_dim": 8, "model.hidden_dim": 16, "model.num_layers": 1,
        "model.dropout": 0.0, "train.lr": 1e-2, "train.epochs": 3, "train.patience": 2,
        "train.target_accuracy": 0.97, "measure.infer_memory": False,
    },
    "quick": {
        "model.embedding_dim": 16, "model.hidden_dim": 64, "model.num_layers": 1,
        "model.dropout": 0.0, "train.lr": 5e-3, "train.epochs": 12, "train.patience": 3,
        "train.target_accuracy": 0.97, "measure.latency_reps": 5, "measure.latency_warmup": 1,
        "measure.infer_memory": False,
    },
}
SUITE_DELTAS["long"] = SUITE_DELTAS["full"] = SUITE_DELTAS["quick"]


def suite_overrides(profile: str, user: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides a suite run applies over the profile: the suite's, then the user's."""
    return {**SUITE_DELTAS[profile], **user}


def at(spec: RunSpec, distance: int, load: tuple[int, int], seed: int = 0) -> RunSpec:
    """``spec`` (an architecture's run of the memory task) at one point of the sweep."""
    alphabet, n_signals = load
    config: RunConfig = apply_overrides(spec.config, {
        "data.distance": distance, "data.alphabet": alphabet, "data.n_signals": n_signals,
    })
    return dataclasses.replace(spec, config=config, seed=seed)


def solved(record: Mapping[str, Any] | None, threshold: float) -> bool:
    """Whether a record is a successful run whose test accuracy reached ``threshold``."""
    return (record is not None and record.get("status") == "ok"
            and record["metrics"]["test_accuracy"] >= threshold)


def extension(spec: RunSpec, suite: SuiteConfig) -> RunSpec:
    """The budget extension of ``spec``: the same run with ``suite.extension_factor`` times its
    epochs, marked as extending them (``train.extends_epochs``)."""
    epochs = spec.config.train.epochs
    return dataclasses.replace(spec, config=apply_overrides(spec.config, {
        "train.epochs": epochs * suite.extension_factor, "train.extends_epochs": epochs,
    }))


def needs_extension(record: Mapping[str, Any] | None, suite: SuiteConfig) -> bool:
    """Whether a deciding run's record calls for its extension: a successful run, itself no
    extension, budget-bound and below the threshold (and the suite extends at all)."""
    return (suite.extension_factor > 1 and record is not None and record.get("status") == "ok"
            and not records.extended_epochs(record["spec"]) and records.budget_bound(record)
            and not solved(record, suite.threshold))


def deciding_record(out_dir: Path, spec: RunSpec, suite: SuiteConfig) -> dict[str, Any] | None:
    """The record whose result decides for ``spec``: its extension's when it needed one that
    succeeded, else its own (None: not run)."""
    record = _record(out_dir, spec)
    if needs_extension(record, suite):
        extended = _record(out_dir, extension(spec, suite))
        if extended is not None and extended.get("status") == "ok":
            return extended
    return record


@dataclass
class SweepState:
    """Where each (load, architecture) chain stands: its last solved and first failed T (each
    decided by the run's extension where it had one)."""

    alive: set[tuple[tuple[int, int], str]]
    last_solved: dict[tuple[tuple[int, int], str], int] = dataclasses.field(default_factory=dict)
    first_failed: dict[tuple[tuple[int, int], str], int] = dataclasses.field(default_factory=dict)
    distances: list[int] = dataclasses.field(default_factory=list)
    #: The run ids of the budget extensions the sweep asked for, in order.
    extended: list[str] = dataclasses.field(default_factory=list)

    def change_points(self) -> list[tuple[tuple[int, int], str, int]]:
        """(load, arch, T) for every T where a chain's result changes."""
        points = []
        for key in sorted({*self.last_solved, *self.first_failed}):
            for table in (self.last_solved, self.first_failed):
                if key in table:
                    points.append((key[0], key[1], table[key]))
        return points


def run_suite(
    specs: Mapping[str, RunSpec],
    suite: SuiteConfig,
    out_dir: Path,
    *,
    run: Callable[[list[RunSpec]], GridOutcome],
    log: Callable[[str], None] = print,
) -> tuple[GridOutcome, SweepState]:
    """Sweep the architectures of ``specs`` (each its run of the memory task; recurrent ones along
    T, the others as floors), ``run`` executing each stage's specs (``run_grid`` bound to the
    folder, the jobs and resume); the combined outcome and where each chain ended. Stops at the
    first interrupted stage."""
    for spec in specs.values():
        if spec.task != TASK:
            raise ValueError(f"the memory suite runs the task {TASK!r}, not {spec.task!r}")
    recurrent = [a for a in specs if model_info(a).recurrent]
    floors = [a for a in specs if not model_info(a).recurrent]
    state = SweepState(alive={(load, arch) for load in suite.loads for arch in recurrent})
    total = GridOutcome()
    series = suite.distances()
    done: set[str] = set()
    times = f"{suite.extension_factor}x"

    def stage(planned: list[RunSpec], what: str) -> bool:
        planned = [spec for spec in dict.fromkeys(planned) if spec.run_id not in done]
        done.update(spec.run_id for spec in planned)
        if not planned:
            return True
        log(f"memory suite: {what}: {len(planned)} run(s)")
        outcome = run(longest_first(planned, size=lambda spec: spec.config.data.distance))
        total.ran += outcome.ran
        total.skipped += outcome.skipped
        total.failed.update(outcome.failed)
        total.wall_time_s += outcome.wall_time_s
        total.interrupted = outcome.interrupted
        return not outcome.interrupted

    def extend(deciding: list[RunSpec], what: str) -> bool:
        """Run the extensions the ``deciding`` runs call for (:func:`needs_extension`)."""
        extensions = [extension(spec, suite) for spec in deciding
                      if needs_extension(_record(out_dir, spec), suite)]  # fmt: skip
        state.extended += [spec.run_id for spec in extensions if spec.run_id not in state.extended]
        return stage(extensions, f"{what}: budget-bound runs below the threshold, {times} epochs")

    for distance in series:
        if not state.alive:
            break
        chains = sorted(state.alive)
        planned = [at(specs[arch], distance, load) for load, arch in chains]
        if distance == series[0]:
            planned += [at(specs[arch], distance, load) for load in suite.loads for arch in floors]
        deciding = [at(specs[arch], distance, load) for load, arch in chains]
        if not stage(planned, f"T = {distance}") or not extend(deciding, f"T = {distance}"):
            return total, state
        state.distances.append(distance)
        for (load, arch), spec in zip(chains, deciding, strict=True):
            if solved(deciding_record(out_dir, spec, suite), suite.threshold):
                state.last_solved[(load, arch)] = distance
            else:
                state.first_failed[(load, arch)] = distance
                state.alive.discard((load, arch))

    seeds = [at(specs[arch], distance, load, seed) for load, arch, distance in state.change_points()
             for seed in range(1, suite.seeds_at_change)]  # fmt: skip
    planned = list(seeds)
    last = state.distances[-1] if state.distances else None
    if last is not None and last != series[0]:
        planned += [at(specs[arch], last, load) for load in suite.loads for arch in floors]
    # The gradient probe reads every recurrent architecture trained at one T and load, whether or
    # not its sweep got there (then it is one run past its horizon).
    planned += probe_points(specs, suite)
    if stage(planned, "more seeds where a result changes, floors at the last T, the probe's T"):
        extend(seeds, "the extra seeds")
    return total, state


def probe_points(specs: Mapping[str, RunSpec], suite: SuiteConfig) -> list[RunSpec]:
    """The runs the gradient probe reads on the memory task: each recurrent architecture at the
    probe distance of the first load, seed 0."""
    return [at(spec, suite.probe_distance, suite.loads[0]) for arch, spec in specs.items()
            if model_info(arch).recurrent]


def probe_gradients(
    out_dir: Path, specs: Mapping[str, RunSpec], suite: SuiteConfig, *,
    data_path: str | None = None, log: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """The gradient-flow probe of the folder (``bench.suites.memory.gradflow``): on the memory task, the runs of
    :func:`probe_points`; on IMDb, the folder's seed-0 run of each of the suite's recurrent
    architectures, when it has one (run the IMDb grid into the folder to get them). Each at its
    start and with its checkpoint; the payload for ``gradient_flow.json`` (None: nothing to
    probe). What cannot be probed is said in one line and left out."""
    from bench.run.execute import CONFIG_NAME, load_task_data
    from bench.suites.memory import gradflow  # torch-heavy; only the suite needs it
    from data_pipeline import DEFAULT_TASK, DataError

    out_dir = Path(out_dir)
    recurrent = {arch for arch in specs if model_info(arch).recurrent}
    targets: list[tuple[RunSpec, dict[str, Any]]] = []
    left_out: list[tuple[str, str]] = []  # (run id, why): the report names them
    for spec in probe_points(specs, suite):
        record = _record(out_dir, spec)
        if record is not None:
            targets.append((spec, record))
    for record in records.load_folder(out_dir).records:
        if (records.task_of(record) == DEFAULT_TASK and record["seed"] == 0
                and record["arch"] in recurrent and record.get("status") == "ok"):
            # The run's own spec (its config.json): the record's spec adds the model's declared
            # facts, which are not settings. A run without one kept no checkpoint either.
            config = out_dir / records.RUNS_DIR / record["run_id"] / CONFIG_NAME
            if not config.is_file():
                left_out.append((record["run_id"], "it kept no checkpoint (--records-only)"))
                log(f"gradient-flow probe: {record['run_id']} left out: {left_out[-1][1]}")
                continue
            spec = RunSpec.from_dict(json.loads(config.read_text(encoding="utf-8")),
                                     data_path=data_path)
            targets.append((spec, record))
    probes, batches = [], {}
    for spec, record in targets:
        run_dir = out_dir / records.RUNS_DIR / record["run_id"]
        try:
            key = (spec.task, spec.config.data)
            if key not in batches:
                test = load_task_data(spec, progress=False).test
                batches[key] = (gradflow.sequence_probe_batch(test) if spec.task != DEFAULT_TASK
                                else gradflow.imdb_probe_batch(test, min(250, spec.config.data.max_len)))
            probes.append(gradflow.probe_run(run_dir, record, batches[key]))
        except (gradflow.ProbeError, DataError) as exc:
            left_out.append((record["run_id"], str(exc)))
            log(f"gradient-flow probe: {record['run_id']} left out: {exc}")
    if not probes:
        return None
    log(f"gradient-flow probe: {len(probes)} run(s) probed"
        + (f", {len(left_out)} left out (named in the report)" if left_out else ""))
    return gradflow.gradient_flow_payload(probes, left_out=left_out)


def _record(out_dir: Path, spec: RunSpec) -> dict[str, Any] | None:
    path = Path(out_dir) / records.RUNS_DIR / spec.run_id / records.RECORD_NAME
    try:
        return records.read_record(path) if path.is_file() else None
    except records.RecordError:
        return None


def manifest_entry(suite: SuiteConfig, config: RunConfig, state: SweepState) -> dict[str, Any]:
    """What the manifest keeps of the suite (``memory_suite``): its design and training budget,
    so the report can say what the horizons depend on."""
    return {
        "threshold": suite.threshold,
        "target_accuracy": config.train.target_accuracy,
        "loads": [{"alphabet": a, "n_signals": k, "label": load_label(a, k)} for a, k in suite.loads],
        "distances": state.distances,
        "first_distance": suite.first_distance,
        "limit_distance": suite.limit_distance,
        "seeds_at_change": suite.seeds_at_change,
        "probe_distance": suite.probe_distance,
        # The declared budget: ``budget.epochs``, and once this many times as many for a deciding
        # run that was budget-bound and below the threshold.
        "extension_factor": suite.extension_factor,
        "extensions": len(state.extended),
        "budget": {
            "epochs": config.train.epochs, "patience": config.train.patience,
            "lr": config.train.lr, "batch_size": config.train.batch_size,
            "n_train": config.data.n_train, "n_val": config.data.n_val, "n_test": config.data.n_test,
            "embedding_dim": config.model.embedding_dim, "hidden_dim": config.model.hidden_dim,
            "num_layers": config.model.num_layers,
        },
    }


