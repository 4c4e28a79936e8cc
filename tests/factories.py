"""Hand-made run records and results folders for the report tests.

Every record built here passes :func:`bench.results.records.validate_record`, so the reports are tested
on exactly the shape the runner writes, without training anything.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from bench.results.records import (
    MANIFEST_NAME,
    RUNS_DIR,
    SCHEMA_VERSION,
    TEST_LABELS_NAME,
    TEST_PROBS_NAME,
    load_records,
    validate_record,
    write_json_atomic,
    write_record,
)
from bench.run.config import RunConfig, profile_config
from data_pipeline import make_synthetic_archive

#: Plausible metrics of a small CPU run; tests override what they assert on. A metric registered
#: later and missing here is simply absent from these records, as from an older run's.
BASE_METRICS: dict[str, float | int | None] = {
    "param_count": 650_000,
    "test_accuracy": 0.85,
    "test_loss": 0.35,
    "test_precision": 0.86,
    "test_recall": 0.84,
    "test_f1": 0.85,
    "test_roc_auc": 0.92,
    "val_accuracy": 0.855,
    "val_loss": 0.34,
    "train_samples_per_s": 500.0,
    "train_tokens_per_s": 100_000.0,
    "infer_samples_per_s": 2_000.0,
    "latency_ms_p50": 2.0,
    "latency_ms_p95": 2.6,
    "train_peak_mem_mb": 120.0,
    "infer_peak_mem_with_weights_mb": 40.0,
    "train_time_s": 60.0,
    "epochs_run": 3,
    "best_epoch": 3,
    "efficiency": 0.05,
}


def small_run_config(*, epochs: int, vocab_size: int = 500, **overrides: Any) -> RunConfig:
    """The smoke profile on a whole generated archive (no subsampling), with a small vocabulary,
    ``epochs`` epochs and few latency repetitions; ``overrides`` as ``--set`` takes them."""
    base = {"data.vocab_size": vocab_size, "data.train_limit": None, "data.test_limit": None,
            "train.epochs": epochs, "measure.latency_reps": 5}  # fmt: skip
    return profile_config("smoke", {**base, **overrides})


def synthetic_archive(tmp_path_factory: Any, *, n_train: int, n_test: int) -> Path:
    """A generated archive with ``n_train`` and ``n_test`` reviews per class, in a fresh folder."""
    folder = tmp_path_factory.mktemp("data")
    return make_synthetic_archive(folder / "imdb.tar.gz", n_per_class_train=n_train,
                                  n_per_class_test=n_test)  # fmt: skip


def run_id(arch: str, seed: int, profile: str = "smoke") -> str:
    """``<arch>-s<seed>-<8 hex>``, the hex a hash of what identifies the run here."""
    digest = hashlib.sha256(f"{arch}|{seed}|{profile}".encode()).hexdigest()[:8]
    return f"{arch}-s{seed}-{digest}"


def make_history(n_epochs: int, final_accuracy: float = 0.85) -> list[dict[str, float]]:
    """Per-epoch entries with falling loss and rising accuracy towards ``final_accuracy``."""
    history = []
    for epoch in range(1, n_epochs + 1):
        progress = epoch / n_epochs
        history.append(
            {
                "epoch": epoch,
                "train_loss": 0.7 - 0.45 * progress,
                "train_accuracy": 0.5 + (final_accuracy + 0.05 - 0.5) * progress,
                "val_loss": 0.7 - 0.35 * progress,
                "val_accuracy": 0.5 + (final_accuracy - 0.5) * progress,
                "epoch_time_s": 20.0,
            }
        )
    return history


def make_record(
    arch: str = "lstm",
    seed: int = 0,
    *,
    metrics: dict[str, float | int | None] | None = None,
    status: str = "ok",
    error: tuple[str, str] | None = None,
    recurrent: bool = True,
    training: str = "gradient",
    description: str | None = None,
    n_epochs: int = 3,
    profile: str = "smoke",
    device: str = "cpu",
    model: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One valid record. ``status="failed"`` needs ``error=(type, message)`` and keeps no metrics
    unless ``metrics`` gives the ones the run got to."""
    if status == "ok":
        values = {**BASE_METRICS, **(metrics or {})}
        history = make_history(n_epochs, float(values["test_accuracy"] or 0.85))
        values["epochs_run"] = len(history)
    else:
        values = dict(metrics or {})
        history = []
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(arch, seed, profile),
        "arch": arch,
        "model_description": description if description is not None else f"{arch} classifier",
        "seed": seed,
        "profile": profile,
        "status": status,
        "error": None if error is None else {"type": error[0], "message": error[1]},
        "spec": {
            "arch": arch,
            "seed": seed,
            "profile": profile,
            "device": device,
            "threads": 2,
            "data": {
                "vocab_size": 10_000,
                "max_length": 250,
                "val_fraction": 0.2,
                "split_seed": 1234,
            },
            "model": {
                "embedding_dim": 64,
                "hidden_dim": 64,
                "num_layers": 1,
                "dropout": 0.2,
                "recurrent": recurrent,
                "training": training,
                **(model or {}),
            },  # fmt: skip
            "train": {"batch_size": 64, "lr": 0.001, "epochs": n_epochs, "patience": 2},
            "measure": {"warmup_batches": 3, "latency_repeats": 50},
        },
        "environment": {
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": False,
            "date_utc": "2025-01-02T10:00:00Z",
            "python": "3.11.9",
            "torch": "2.13.0+cpu",
            "cuda": None,
            "cudnn": None,
            "device": device,
            "device_name": None,
            "cpu_model": "Test CPU @ 2.0GHz",
            "threads": 2,
            "blas": "openblas",
            "onednn": None,
            "packages": {"numpy": "2.0"},
            **(environment or {}),
        },
        "data": {
            "source": "/data/aclImdb_v1.tar.gz",
            "source_kind": "archive",
            "origin": "local",
            "checksum": "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
            "n_train": 20_000,
            "n_val": 5_000,
            "n_test": 25_000,
            "vocab_size": 10_000,
            "cache_hit": True,
            "n_decode_errors": 0,
            "prep_time_s": 1.5,
        },
        "metrics": values,
        "history": history,
        "artifacts": {
            "test_probs": None,
            "test_labels": None,
            "checkpoint": None,
            "vocab": None,
            "config": None,
        },  # fmt: skip
    }
    return validate_record(record)


#: What the memory task's registration says, as its records carry it (``task_info``).
MEMORY_FACTS = {"name": "memory", "title": "Memory", "description": "Generated memory sequences",
                "citation": "", "example": "sequence", "text_inputs": False}


def make_memory_record(
    arch: str,
    seed: int,
    *,
    distance: int,
    accuracy: float | None = None,
    alphabet: int = 16,
    n_signals: int = 2,
    recurrent: bool = True,
    training: str = "gradient",
    error: tuple[str, str] | None = None,
    stop_reason: str = "target_reached",
) -> dict[str, Any]:
    """One valid record of the memory suite: ``arch`` trained at distance ``distance`` on
    ``n_signals`` symbols out of ``alphabet``, with test accuracy ``accuracy`` (or failed with
    ``error``)."""
    status = "ok" if error is None else "failed"
    record = make_record(arch, seed, status=status, error=error, recurrent=recurrent,
                         training=training, metrics=None if error else {"test_accuracy": accuracy})  # fmt: skip
    settings = {"distance": distance, "alphabet": alphabet, "n_signals": n_signals, "noise_vocab": 32,
                "margin": 0.25, "n_train": 4_000, "n_val": 1_000, "n_test": 2_000, "seed": 0}  # fmt: skip
    identity = f"memory|{arch}|{seed}|{distance}|{alphabet}|{n_signals}"
    record.update(
        task="memory",
        task_info=dict(MEMORY_FACTS),
        run_id=f"memory-{arch}-s{seed}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}",
        data={"source": "generated", "n_train": 4_000, "n_val": 1_000, "n_test": 2_000,
              "vocab_size": 2 + 32 + alphabet},  # fmt: skip
    )
    record["spec"].update(task="memory", data=settings)
    record["spec"]["train"].update(epochs=12, patience=3)
    if status == "ok":
        record["stop_reason"] = stop_reason
    return validate_record(record)


def make_memory_records(
    sweep: dict[str, dict[tuple[int, int], dict[int, list[float]]]],
    floors: tuple[str, ...] = ("bag_of_embeddings", "tfidf_logreg"),
) -> list[dict[str, Any]]:
    """Memory records from ``{arch: {(alphabet, n_signals): {distance: [accuracy per seed]}}}``
    (seeds 0, 1, ...); the architectures in ``floors`` are declared non-recurrent."""
    records = []
    for arch, loads in sweep.items():
        for (alphabet, n_signals), by_distance in loads.items():
            for distance, accuracies in by_distance.items():
                for seed, accuracy in enumerate(accuracies):
                    records.append(make_memory_record(
                        arch, seed, distance=distance, accuracy=accuracy, alphabet=alphabet,
                        n_signals=n_signals, recurrent=arch not in floors,
                        training="self_fit" if arch == "tfidf_logreg" else "gradient",
                    ))  # fmt: skip
    return records


def memory_suite_manifest(**suite: Any) -> dict[str, Any]:
    """The manifest's ``memory_suite`` block as the suite writes it; ``suite`` overrides keys."""
    return {"memory_suite": {"threshold": 0.95, "target_accuracy": 0.97,
                             "loads": [{"alphabet": 16, "n_signals": 2}, {"alphabet": 16, "n_signals": 3}],
                             "distances": [16, 32, 64, 128, 256, 512], "seeds_at_change": 3,
                             "budget": {"epochs": 12, "patience": 3, "n_train": 4000}, **suite}}  # fmt: skip


def make_manifest(archs: list[str], seeds: list[int], **overrides: Any) -> dict[str, Any]:
    """A manifest for a grid of ``archs`` x ``seeds``."""
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "profile": "smoke",
        "device": "cpu",
        "argv": ["run_all.py", "--profile", "smoke"],
        "archs": list(archs),
        "seeds": max(seeds, default=-1) + 1,  # as run_all.py writes it: the seeds 0..N-1
        "started_utc": "2025-01-02T10:00:00Z",
        "finished_utc": "2025-01-02T10:30:00Z",
        "wall_time_s": 1800.0,
        "protocol": "fixed",
    }
    manifest.update(overrides)
    return manifest


def shared_labels(n_reviews: int) -> np.ndarray:
    """The shared test labels: half positive, interleaved."""
    return (np.arange(n_reviews) % 2).astype(np.int8)


def correct_mask(n_reviews: int, accuracy: float, seed: int) -> np.ndarray:
    """Exactly ``round(accuracy * n_reviews)`` correct reviews, at random positions."""
    mask = np.zeros(n_reviews, dtype=bool)
    n_correct = int(round(accuracy * n_reviews))
    mask[np.random.default_rng(seed).permutation(n_reviews)[:n_correct]] = True
    return mask


def write_results(
    folder: Path,
    records: list[dict[str, Any]],
    manifest: dict[str, Any],
    correct: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a results folder. ``correct`` maps run ids to per-review correctness: those runs get
    ``test_probs.npy``/``test_labels.npy`` and a ``test_accuracy`` that matches them."""
    folder = Path(folder)
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    for record in records:
        record = copy.deepcopy(record)
        run_dir = folder / RUNS_DIR / record["run_id"]
        run_dir.mkdir(parents=True, exist_ok=True)
        mask = (correct or {}).get(record["run_id"])
        if mask is not None:
            labels = shared_labels(mask.size)
            predicted = np.where(mask, labels, 1 - labels)
            probs = np.where(predicted == 1, 0.9, 0.1).astype(np.float32)
            np.save(run_dir / TEST_PROBS_NAME, probs)
            np.save(run_dir / TEST_LABELS_NAME, labels)
            record["artifacts"].update(test_probs=TEST_PROBS_NAME, test_labels=TEST_LABELS_NAME)
            record["metrics"]["test_accuracy"] = float(mask.mean())
        write_record(run_dir, record)
    return folder


def make_grid(
    folder: Path,
    archs: dict[str, dict[str, Any]],
    seeds: list[int],
    n_reviews: int = 2000,
    **manifest_overrides: Any,
) -> tuple[Path, list[dict[str, Any]]]:
    """Write a results folder for ``archs`` x ``seeds`` and return it with its records.

    Each ``archs`` value may hold ``accuracy`` (per-review correctness is drawn to match it
    exactly, so paired tests see it), ``recurrent``, ``training``, ``metrics`` (overrides), ``n_epochs``,
    ``failed`` (seed -> (error type, message)) and ``predictions`` (False: keep none).
    """
    records, correct = [], {}
    for position, (arch, opts) in enumerate(archs.items()):
        for seed in seeds:
            failure = (opts.get("failed") or {}).get(seed)
            if failure is not None:
                records.append(
                    make_record(
                        arch,
                        seed,
                        status="failed",
                        error=failure,
                        recurrent=opts.get("recurrent", True),
                        training=opts.get("training", "gradient"),
                    )  # fmt: skip
                )
                continue
            accuracy = opts.get("accuracy", 0.85)
            record = make_record(
                arch,
                seed,
                metrics={"test_accuracy": accuracy, **(opts.get("metrics") or {})},
                recurrent=opts.get("recurrent", True),
                training=opts.get("training", "gradient"),
                n_epochs=opts.get("n_epochs", 3),
            )
            records.append(record)
            if opts.get("predictions", True):
                # Different seeds and architectures err on different reviews, as real runs do.
                mask_seed = 1000 * position + seed
                correct[record["run_id"]] = correct_mask(n_reviews, accuracy, mask_seed)
    manifest = make_manifest(list(archs), seeds, **manifest_overrides)
    write_results(folder, records, manifest, correct)
    return folder, load_records(folder)


def same_run_fields(record: dict[str, Any]) -> dict[str, Any]:
    """What two executions of one spec must share, whichever executor ran them: everything but
    the timings, the memory figures, the environment and where the data was read from."""
    timed = ("_per_s", "_ms_p50", "_ms_p95", "_mb", "_time_s", "efficiency")
    kept = {k: v for k, v in record.items()
            if k not in ("environment", "concurrent_runs", "data", "history")}
    kept["metrics"] = {k: v for k, v in record["metrics"].items() if not k.endswith(timed)}
    kept["history"] = [{k: v for k, v in epoch.items() if k != "epoch_time_s"}
                       for epoch in record["history"]]
    kept["data"] = {k: v for k, v in record["data"].items()
                    if k not in ("source", "origin", "cache_hit", "prep_time_s")}
    if kept["error"] is not None:
        kept["error"] = kept["error"]["type"]  # a message may quote a measured value
    return kept


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``run_all.py argv`` in this process: its exit code, stdout and stderr (``capsys``)."""
    import run_all

    code = run_all.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
