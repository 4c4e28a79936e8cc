"""The tuned protocol (``run_all.py --tune``): per-architecture learning rate and dropout, chosen on
validation before the final runs.

With fixed hyperparameters, "A beats B" may only say that the profile's settings suit A better.
Here each architecture first runs a small fixed grid of short trials, by default learning rate in
{lr/3, lr, 3·lr} × dropout in {dropout, dropout/2} (the profile's values) for half the profile's
epochs, with seed 0. The setting with the lowest validation loss (at its best epoch) is kept, and
every seed of the final runs trains with it. Trials train on the training split and score on the
validation split only: the test split is never read here.

A hyperparameter is tuned only where the model uses it: dropout where the builder accepts one
(``model_info(name).hyperparams``), the learning rate where the trainer does the learning. A model
that fits itself (``tfidf_logreg``) chooses its own regularisation on validation already.

Trials are recorded in ``<out>/tuning.json`` after each one, keyed by the trial's run id (a hash of
its resolved spec); a resumed grid reuses the trials it finds there instead of repeating them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.grid import live
from bench.grid.runner import EXIT_INTERRUPTED, Slots, crash_error, visible_gpus
from bench.results import records
from bench.run.config import RunConfig, RunSpec, apply_overrides
from bench.run.execute import error_of, initial_model, load_task_data, resolve_device
from bench.run.trainer import DivergedError, Trainer
from data_pipeline import TaskData
from models import model_info

TUNING_NAME = records.TUNING_NAME
LR_KEY = "train.lr"
DROPOUT_KEY = "model.dropout"
SELECTION = "lowest validation loss at the trial's best epoch"


@dataclass(frozen=True)
class TuneConfig:
    """The tuning grid, as factors of the profile's values, and the length of a trial.

    Attributes:
        lr_factors: learning rates tried, as multiples of the configured ``train.lr``.
        dropout_factors: dropouts tried, as multiples of the configured ``model.dropout``.
        epochs: epochs per trial; None means half the configured epochs, at least one.
        seed: the model seed of every trial.
    """

    lr_factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)
    dropout_factors: tuple[float, ...] = (1.0, 0.5)
    epochs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.lr_factors or any(f <= 0 for f in self.lr_factors):
            raise ValueError(f"lr_factors must be positive, got {self.lr_factors}")
        if not self.dropout_factors or any(f < 0 for f in self.dropout_factors):
            raise ValueError(f"dropout_factors must be >= 0, got {self.dropout_factors}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    def trial_epochs(self, config: RunConfig) -> int:
        """Epochs of one trial under ``config``."""
        return self.epochs if self.epochs is not None else max(1, config.train.epochs // 2)


def _round(value: float) -> float:
    # Three significant figures: lr/3 reads 0.001, not 0.0009999999999999998, in spec and report.
    return float(f"{value:.3g}")


def candidate_settings(
    config: RunConfig, tune: TuneConfig, keys: Sequence[str]
) -> list[dict[str, float]]:
    """Every combination of the tuned ``keys``' values, learning rate varying slowest.

    Duplicate values (dropout 0 times any factor) are tried once.
    """
    bases = {LR_KEY: (config.train.lr, tune.lr_factors),
             DROPOUT_KEY: (config.model.dropout, tune.dropout_factors)}  # fmt: skip
    axes = []
    for key in keys:
        base, factors = bases[key]
        axes.append(list(dict.fromkeys(_round(base * f) for f in factors)))
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes)]


def tuned_keys(spec: RunSpec) -> list[str]:
    """The settings worth tuning for ``spec.arch``: those its model actually uses (a learning
    rate only for a gradient-trained model, a dropout only where the builder takes one)."""
    info = model_info(spec.arch)
    keys = [] if info.training == "self_fit" else [LR_KEY]
    # A dropout the user set for this model alone (--set <arch>.dropout=...) is not tuned away.
    if "dropout" in info.hyperparams and "dropout" not in dict(spec.model_settings):
        keys.append(DROPOUT_KEY)
    return keys


def trial_spec(spec: RunSpec, settings: dict[str, float], tune: TuneConfig) -> RunSpec:
    """The spec of one trial: ``spec`` with ``settings``, the trial's epochs and seed."""
    overrides = {**settings, "train.epochs": tune.trial_epochs(spec.config)}
    return dataclasses.replace(
        spec, seed=tune.seed, config=apply_overrides(spec.config, overrides), keep_artifacts=False
    )


def run_trial(spec: RunSpec, settings: dict[str, float], data: TaskData, *, progress: bool) -> dict[str, Any]:
    """Train ``spec`` on train, score it on validation, and describe the outcome.

    A diverging or out-of-memory trial is an outcome (no validation loss, never chosen); any other
    exception is a programming error and propagates. The outcome's ``concurrent_runs`` is the
    most rnnbench runs in progress at once on this machine while the trial trained, itself
    included (:mod:`bench.grid.live`: any grid's runs and trials).
    """
    torch.set_num_threads(spec.threads)
    device = resolve_device(spec.device)
    outcome: dict[str, Any] = {"trial_id": spec.run_id, "arch": spec.arch, "settings": settings,
                               "epochs": spec.config.train.epochs}  # fmt: skip
    start = time.perf_counter()
    with live.register() as registration:
        try:
            # Built inside: a model too large for the machine fails as the trial's outcome.
            model = initial_model(spec, len(data.vocab), data.pad_index)
            trainer = Trainer(model, spec.config.train, spec.config.measure, device,
                              pad_index=data.pad_index, progress=progress)
            fit = trainer.fit(data.train, data.val, seed=spec.seed, desc=f"tune {spec.arch} ")
        except (DivergedError, MemoryError, RuntimeError) as exc:
            error = error_of(exc)
            if error["type"] == "crash":  # a RuntimeError that is not the allocator's: a bug
                raise
            return {**outcome, "val_loss": None, "val_accuracy": None, "best_epoch": None,
                    "time_s": time.perf_counter() - start, "error": error,
                    "concurrent_runs": registration.finish()}  # fmt: skip
        outcome["concurrent_runs"] = registration.finish()
    best = fit.history[fit.best_epoch - 1]
    return {**outcome, "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"],
            "best_epoch": fit.best_epoch, "time_s": time.perf_counter() - start, "error": None}  # fmt: skip


def choose(trials: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """The settings of the trial with the lowest validation loss (the first on a tie), or None
    when no trial finished."""
    finished = [t for t in trials if t["val_loss"] is not None]
    if not finished:
        return None
    return dict(min(finished, key=lambda t: t["val_loss"])["settings"])


#: What to do about a damaged ``tuning.json``.
_DAMAGED_FIX = ("remove it to run the trials again (the final runs keep their records), or start "
                "the folder again with --overwrite")


def _valid_trial(trial: Any) -> bool:
    """Whether a ``tuning.json`` trial has what a resumed tuning reads of it."""
    def number(value: Any) -> bool:  # json reads NaN and Infinity, which tuning never writes
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    if not (isinstance(trial, dict) and isinstance(trial.get("trial_id"), str)
            and isinstance(trial.get("settings"), dict)
            and all(number(v) for v in trial["settings"].values())):  # fmt: skip
        return False
    # A finished trial has a validation loss (choose() ranks it); a failed one has none and an
    # error type (logged).
    error, val_loss = trial.get("error", ...), trial.get("val_loss", ...)
    if error is None:
        return number(val_loss)
    return val_loss is None and isinstance(error, dict) and isinstance(error.get("type"), str)


def _read_trials(path: Path) -> dict[str, dict[str, Any]]:
    """The trials a results folder's ``tuning.json`` holds, by trial id; :class:`RecordError`
    naming the file and what to do when it cannot be read or a trial lacks what tuning reads."""
    if not path.is_file():
        return {}
    fix = _DAMAGED_FIX
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise records.RecordError(f"cannot read {path} ({exc}); {fix}") from None
    trials = payload.get("trials") if isinstance(payload, dict) else None
    if not isinstance(trials, list):
        raise records.RecordError(f"{path} is damaged (it needs an object with a list of "
                                  f"\"trials\"); {fix}")
    bad = next((n for n, t in enumerate(trials, start=1) if not _valid_trial(t)), None)
    if bad is not None:
        raise records.RecordError(f"{path} is damaged (trial {bad} of {len(trials)} lacks a "
                                  "trial_id, numeric settings, or a finite val_loss with error "
                                  "null, or error.type with val_loss null); " + fix)
    return {t["trial_id"]: t for t in trials}


def _trial_in_child(spec: RunSpec, settings: dict[str, float], progress: bool, *,
                    concurrent_runs: Callable[[], int]) -> dict[str, Any]:
    """A trial in its own process: the data comes from the cache the driver warmed."""
    data = load_task_data(spec, progress=False)
    trial = run_trial(spec, settings, data, progress=progress)
    return {**trial, "concurrent_runs": max(trial["concurrent_runs"], concurrent_runs())}


Trial = tuple[RunSpec, dict[str, float]]


def _trial_grids(
    base_specs: dict[str, RunSpec], specs: Sequence[RunSpec], tune: TuneConfig,
    log: Callable[[str], None],
) -> dict[str, list[Trial]]:
    """Each architecture's trials (spec and settings), in grid order; an architecture with
    nothing to tune has none (said)."""
    grids: dict[str, list[Trial]] = {}
    for arch in dict.fromkeys(spec.arch for spec in specs):
        base = base_specs[arch]
        keys = tuned_keys(base)
        if not keys:
            log(f"tune {arch}: nothing to tune (it chooses its own hyperparameters on validation)")
            continue
        grids[arch] = [(trial_spec(base, settings, tune), settings)
                       for settings in candidate_settings(base.config, tune, keys)]
    return grids


def _run_trials(
    queue: list[Trial], slots: Slots, data: TaskData, progress: bool,
    finished: Callable[[RunSpec, dict[str, float], dict[str, Any]], None],
) -> None:
    """Run the queued trials, ``slots.jobs`` at once (one: in this process, on ``data``), calling
    ``finished`` with each trial's result; Ctrl-C (or a child stopped from outside) stops all."""
    try:
        while queue or slots.running:
            while queue and slots.free:
                spec, settings = queue.pop(0)
                if slots.jobs == 1:  # in this process, on the data already loaded
                    trial = run_trial(spec, settings, data, progress=progress)
                    finished(spec, settings, trial)  # its count is the machine-wide one
                    continue
                slots.start((spec, settings), _trial_in_child, spec, settings, False)
            for child in slots.wait() if slots.running else []:
                spec, settings = child.key
                if child.exitcode == EXIT_INTERRUPTED:  # stopped from outside: stop the grid
                    raise KeyboardInterrupt
                trial = child.result or {  # killed or crashed: a failed trial, never chosen
                    "trial_id": spec.run_id, "arch": spec.arch, "settings": settings,
                    "epochs": spec.config.train.epochs, "val_loss": None, "val_accuracy": None,
                    "best_epoch": None, "time_s": child.duration_s,
                    "error": crash_error(child.exitcode), "concurrent_runs": child.concurrent_runs,
                }
                finished(spec, settings, trial)
    except BaseException:
        slots.stop_all()
        raise


def tune_grid(
    specs: Sequence[RunSpec],
    data: TaskData,
    out_dir: Path,
    tune: TuneConfig,
    *,
    progress: bool = True,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Tune every architecture of ``specs`` on ``data``'s validation split.

    Returns the chosen settings per architecture (``{"train.lr": ..., "model.dropout": ...}``);
    an architecture with nothing to tune, or whose every trial failed, gets none and keeps its
    configured values. ``out_dir/tuning.json`` holds every trial and the choices. With ``jobs``
    above one, that many trials run at once, each in its own process (as grid runs do); with one,
    they run in this process on ``data``. Ctrl-C stops them all; finished trials stay recorded.
    """
    path = Path(out_dir) / TUNING_NAME
    done = _read_trials(path)
    base_specs = {spec.arch: spec for spec in reversed(specs)}  # each arch's first spec
    grids = _trial_grids(base_specs, specs, tune, log)
    results: dict[str, dict[str, Any]] = {}  # trial id -> trial, in the order they finish
    chosen: dict[str, dict[str, float]] = {}

    def finished(spec: RunSpec, settings: dict[str, float], trial: dict[str, Any]) -> None:
        results[spec.run_id] = trial
        arch_grid = grids[spec.arch]
        i = next(n for n, (s, _) in enumerate(arch_grid, start=1) if s.run_id == spec.run_id)
        shown = ", ".join(f"{k} {v:g}" for k, v in settings.items())
        result = (f"validation loss {trial['val_loss']:.4f}" if trial["error"] is None
                  else f"failed ({trial['error']['type']})")  # fmt: skip
        log(f"tune {spec.arch} [{i}/{len(arch_grid)}] {shown}: {result}")
        if all(s.run_id in results for s, _ in arch_grid):
            choice = choose([results[s.run_id] for s, _ in arch_grid])
            if choice is None:
                log(f"tune {spec.arch}: every trial failed; the final runs keep the configured values")
            else:
                chosen[spec.arch] = choice
                log(f"tune {spec.arch}: chose " + ", ".join(f"{k} {v:g}" for k, v in choice.items()))
        _write(path, tune, base_specs[spec.arch].config, _in_grid_order(grids, results), chosen)

    queue = [(spec, settings) for grid in grids.values() for spec, settings in grid]
    # Checked before any is reused: reusing one rewrites the file.
    for spec, settings in queue:
        if spec.run_id in done and done[spec.run_id]["settings"] != settings:  # the id hashes them
            raise records.RecordError(
                f"{path} is damaged (trial {spec.run_id} has settings "
                f"{done[spec.run_id]['settings']}, not the {settings} its id stands for); "
                + _DAMAGED_FIX)
    for spec, settings in list(queue):
        if spec.run_id in done:  # a resumed grid reuses the trials it finds
            queue.remove((spec, settings))
            finished(spec, settings, done[spec.run_id])
    on_cuda = any(spec.device == "cuda" for spec in specs)
    slots = Slots(jobs, gpus=visible_gpus() if on_cuda and jobs > 1 else None)
    _run_trials(queue, slots, data, progress, finished)
    _write(path, tune, base_specs[specs[0].arch].config if specs else None,
           _in_grid_order(grids, results), chosen)
    return chosen


def _in_grid_order(grids: dict[str, list[tuple[RunSpec, dict[str, float]]]],
                   results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished trials, architecture by architecture in grid order."""
    return [results[s.run_id] for grid in grids.values() for s, _ in grid if s.run_id in results]


def _write(
    path: Path, tune: TuneConfig, config: RunConfig | None, trials: list[dict[str, Any]],
    chosen: dict[str, dict[str, float]],
) -> None:
    records.write_json_atomic(path, {
        "schema_version": records.SCHEMA_VERSION,
        **tuning_summary(tune, config, chosen),
        "trials": trials,
    })  # fmt: skip


def tuning_summary(
    tune: TuneConfig, config: RunConfig | None, chosen: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """What the manifest (and ``tuning.json``) say about the tuning: grid, selection, choices."""
    return {
        "file": TUNING_NAME,
        "selection": SELECTION,
        "split": "validation",
        "lr_factors": list(tune.lr_factors),
        "dropout_factors": list(tune.dropout_factors),
        "trial_epochs": tune.trial_epochs(config) if config is not None else tune.epochs,
        "trial_seed": tune.seed,
        "chosen": chosen,
    }


def apply_choices(specs: Sequence[RunSpec], chosen: dict[str, dict[str, float]]) -> list[RunSpec]:
    """``specs`` with each architecture's chosen settings applied (the others unchanged)."""
    return [
        dataclasses.replace(spec, config=apply_overrides(spec.config, chosen[spec.arch]))
        if spec.arch in chosen else spec
        for spec in specs
    ]
