"""Execute one RunSpec in the current process and leave its record (and artifacts) on disk.

A RunSpec goes in, a record comes out, both plain data: the same function runs in a local child
process today and could run as a task of a cluster engine tomorrow. Nothing here assumes that runs
share a process or a disk other than the results folder.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import io
import multiprocessing as mp
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import metrics as skm
from torch import nn

from bench.grid import live
from bench.results import records
from bench.run.config import RunSpec
from bench.run.environment import capture
from bench.run.instruments import PeakMemory, matmul_flops_per_s, measure_latency, training_flops
from bench.run.trainer import DivergedError, EvalResult, FitResult, Trainer
from data_pipeline import EncodedSplit, TaskData, ensure_task, make_batches
from models import ModelInfo, SelfFitting, create_model, model_info

CHECKPOINT_NAME = records.CHECKPOINT_NAME
VOCAB_NAME = records.VOCAB_NAME
CONFIG_NAME = records.CONFIG_NAME


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def model_hyperparams(spec: RunSpec) -> dict[str, Any]:
    """The hyperparameters this spec's model is built with: its builder's defaults, updated by
    the configured ``model.*`` settings it accepts, then by its own ``model_settings``."""
    info = model_info(spec.arch)
    configured = {**vars(spec.config.model), **dict(spec.model_settings)}
    return {k: configured.get(k, default) for k, default in info.hyperparams.items()}


def build_model(spec: RunSpec, vocab_size: int, pad_index: int) -> nn.Module:
    """The spec's model, with the configured hyperparameters it accepts."""
    return create_model(
        spec.arch, vocab_size=vocab_size, pad_index=pad_index, **model_hyperparams(spec)
    )


def initial_model(spec: RunSpec, vocab_size: int, pad_index: int) -> nn.Module:
    """The spec's model as its run starts training: every generator seeded with the run's seed,
    then built (:func:`build_model`). The one place a run's starting point is made, so a probe of
    a finished run (``bench.suites.memory.gradflow``) rebuilds exactly the weights it started from."""
    seed_everything(spec.seed)
    return build_model(spec, vocab_size, pad_index)


def model_facts(info: ModelInfo, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """What the registry declares about the model, as the record's ``spec.model`` carries it."""
    return {
        "recurrent": info.recurrent,
        "family": info.family,
        "training": info.training,
        "flops_per_token": info.declared_flops_per_token(**hyperparams),
    }


def load_task_data(spec: RunSpec, *, progress: bool = True) -> TaskData:
    """The spec's task's splits under its settings (the task's registered loader)."""
    task = ensure_task(spec.task, spec.task_module)
    return task.loader(spec.config.data, spec.data_path, progress=progress)


def data_block(data: TaskData) -> dict[str, Any]:
    """The record's description of the data a run saw: the split sizes and vocabulary, and what
    the task's loader says about where the data came from."""
    return {
        **data.details,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "vocab_size": len(data.vocab),
    }


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC-AUC of thresholded probabilities."""
    predicted = (probs > 0.5).astype(np.int8)
    both_classes = len(np.unique(labels)) == 2
    return {
        "test_accuracy": float(skm.accuracy_score(labels, predicted)),
        "test_precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "test_recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "test_f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "test_roc_auc": float(skm.roc_auc_score(labels, probs)) if both_classes else float("nan"),
    }


#: What an allocation failure says where it raises a plain RuntimeError: CUDA's older message, and
#: the CPU allocator's ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ...").
_OOM_TEXTS = ("out of memory", "can't allocate memory")


def error_of(exc: BaseException) -> dict[str, str]:
    """The record's ``error`` for an exception: its type (nan_loss, oom, crash) and message."""
    if isinstance(exc, DivergedError):
        kind = exc.kind
    elif isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError) or any(
            text in str(exc) for text in _OOM_TEXTS):
        kind = "oom"
    else:
        kind = "crash"
    return {"type": kind, "message": f"{type(exc).__name__}: {exc}".strip()[:500]}


def base_record(spec: RunSpec, device: torch.device) -> dict[str, Any]:
    """The fields every record has, before the run produces anything."""
    return {
        "schema_version": records.SCHEMA_VERSION,
        "run_id": spec.run_id,
        "task": spec.task,
        "task_info": ensure_task(spec.task, spec.task_module).record_facts(),
        "arch": spec.arch,
        "model_description": model_info(spec.arch).description,
        "seed": spec.seed,
        "profile": spec.profile,
        "status": "ok",
        "error": None,
        "spec": spec.to_dict(),
        "environment": capture(device),
        "data": {},
        "metrics": {},
        "history": [],
        "selected_hyperparams": {},
        "artifacts": {},
    }


def execute_run(
    spec: RunSpec, run_dir: Path, *, progress: bool = True, log_epochs: bool = True,
    concurrent_runs: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Run one spec end to end and write its record; failures are recorded, not raised.

    ``concurrent_runs`` says, when the record is written, the most runs of this one's grid that
    were in progress at once while it ran (itself included; None: it ran alone). The record's
    ``concurrent_runs`` is the larger of that and the machine-wide count of :mod:`bench.grid.live`,
    which sees the rnnbench runs of other grids on this machine too.

    Diverged or NaN losses, out-of-memory errors and crashes become a record with ``error``; a
    crash also prints its traceback, since a programming error must be seen, not only counted.
    KeyboardInterrupt and :class:`bench.results.records.OutputError` (the run's files cannot be written)
    propagate and leave no record, so a resumed grid runs this spec again.
    """
    run_dir = Path(run_dir)
    with records.writing(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(spec.threads)
    device = resolve_device(spec.device)
    if device.type == "cpu":
        torch.set_flush_denormal(spec.config.train.flush_denormal)
    record = base_record(spec, device)
    # Registered machine-wide while it runs, so that runs of other grids count too (bench.grid.live).
    with live.register() as registration:
        try:
            _run(spec, run_dir, device, record, progress=progress, log_epochs=log_epochs)
        except (KeyboardInterrupt, records.OutputError):
            raise  # no record: the grid stops, and a resumed grid runs this spec again
        except Exception as exc:  # noqa: BLE001 - failures are data; the traceback is still shown
            record["status"] = "failed"
            record["error"] = error_of(exc)
            if record["error"]["type"] == "crash":
                traceback.print_exc(file=sys.stderr)
        machine_runs = registration.finish()
    grid_runs = concurrent_runs() if concurrent_runs is not None else 1
    record["concurrent_runs"] = max(grid_runs, machine_runs)
    records.write_record(run_dir, record)
    return record


def _run(
    spec: RunSpec, run_dir: Path, device: torch.device, record: dict[str, Any], *, progress: bool,
    log_epochs: bool,
) -> None:
    data = load_task_data(spec, progress=progress)
    record["data"] = data_block(data)
    model = initial_model(spec, len(data.vocab), data.pad_index)
    info = model_info(spec.arch)
    hyperparams = model_hyperparams(spec)
    record["spec"]["model"] = {**hyperparams, **model_facts(info, hyperparams)}
    metrics = record["metrics"]
    metrics["param_count"] = trainable_params(model)
    metrics["core_param_count"] = core_params(model) if info.training == "gradient" else None
    metrics["state_size"] = info.declared_state_size(**hyperparams) if info.recurrent else None

    # The trainer is also the evaluator every model shares (test pass, inference throughput).
    trainer = Trainer(
        model, spec.config.train, spec.config.measure, device, pad_index=data.pad_index,
        progress=progress, log_epochs=log_epochs,
    )
    # The one place that decides how a model learns, as its registration declares: a self-fitting
    # model fits itself (its own hyperparameters chosen on validation); every other model goes
    # through the trainer's epochs. Everything after learning is shared.
    with PeakMemory(device) as train_mem:
        if info.training == "self_fit":
            fit = self_fit(model, data, spec)
        else:
            fit = trainer.fit(data.train, data.val, seed=spec.seed, desc=f"{spec.arch} s{spec.seed} ")
    record["history"] = fit.history
    record["selected_hyperparams"] = fit.extra
    # Checked before anything is measured or written, so a failed run leaves no artifacts behind.
    if fit.train_samples_per_s is None:
        raise RuntimeError("no steady-state training batches were timed; is the train split empty?")
    model.load_state_dict(fit.best_state)
    metrics["param_count"] = trainable_params(model)  # a one-go model sizes itself when fitting

    with PeakMemory(device) as infer_mem:
        test = trainer.evaluate(data.test, desc="test", measured=True)
    if trainer.timing_notes:  # training's and this pass's (a split too small to warm up)
        record["timing_notes"] = list(trainer.timing_notes)
    # On CPU the test pass above reuses memory training freed, so its growth read anything from
    # 0.3 to 312 MiB between models and seeds of one run; it is measured again in a process of
    # its own, where it means something.
    infer_peak_mb = (infer_mem.peak_mb if device.type == "cuda"
                     else cpu_inference_peak_mb(spec, hyperparams, data.test, len(data.vocab),
                                                data.pad_index, fit.best_state)
                     if spec.config.measure.infer_memory else None)  # fmt: skip
    best = fit.history[fit.best_epoch - 1]
    metrics.update(classification_metrics(test.probs, test.labels))
    metrics.update(
        test_loss=test.loss,
        val_loss=best["val_loss"],
        val_accuracy=best["val_accuracy"],
        train_samples_per_s=fit.train_samples_per_s,
        train_tokens_per_s=fit.train_tokens_per_s,
        infer_samples_per_s=test.samples_per_s,
        train_peak_mem_mb=train_mem.peak_mb,
        infer_peak_mem_with_weights_mb=infer_peak_mb,
        train_time_s=fit.train_time_s,
        epochs_run=fit.epochs_run,
        best_epoch=fit.best_epoch,
    )
    record["stop_reason"] = fit.stop_reason
    metrics.update(_latency(model, data, spec, device))
    metrics["efficiency"] = _efficiency(record["spec"]["model"], fit, spec, device)

    record["artifacts"] = _write_artifacts(spec, run_dir, data, fit, test)


def _write_artifacts(
    spec: RunSpec, run_dir: Path, data: TaskData, fit: FitResult, test: EvalResult
) -> dict[str, str | None]:
    """Save test probabilities and labels (and, unless records only, the checkpoint, vocabulary
    and config); the record's ``artifacts`` block naming them. A file that cannot be written
    raises :class:`bench.results.records.OutputError`: a full disk is not the run's failure."""
    artifacts: dict[str, str | None] = {"test_probs": records.TEST_PROBS_NAME, "test_labels": records.TEST_LABELS_NAME,
                 "checkpoint": None, "vocab": None, "config": None}
    # Serialised in memory, then written atomically: torch.save onto a full disk raises a bare
    # RuntimeError and leaves half a file, where write_bytes_atomic names the path and the cause.
    records.write_bytes_atomic(run_dir / records.TEST_PROBS_NAME, _npy(test.probs.astype(np.float32)))
    records.write_bytes_atomic(run_dir / records.TEST_LABELS_NAME, _npy(test.labels.astype(np.int8)))
    if spec.keep_artifacts:
        checkpoint = io.BytesIO()
        torch.save(fit.best_state, checkpoint)
        records.write_bytes_atomic(run_dir / CHECKPOINT_NAME, checkpoint.getvalue())
        with records.writing(run_dir / VOCAB_NAME, name_path=True):
            data.vocab.save(run_dir / VOCAB_NAME)
        records.write_json_atomic(run_dir / CONFIG_NAME, spec.to_dict())
        artifacts.update(checkpoint=CHECKPOINT_NAME, vocab=VOCAB_NAME, config=CONFIG_NAME)
    return artifacts


def _npy(array: np.ndarray) -> bytes:
    """``array`` in NumPy's ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def trainable_params(model: nn.Module) -> int:
    """The number of trainable parameters (the record's ``param_count``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def core_params(model: nn.Module) -> int:
    """The trainable parameters outside the model's embedding tables (the record's
    ``core_param_count``): the recurrence and the readout, which a large vocabulary's table
    hides in the total (the long profile's 30,000 x 128 table is 3.84M of `rnn`'s 3.85M)."""
    embedded = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                for p in m.parameters()}  # fmt: skip
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in embedded)


def self_fit(model: nn.Module, data: TaskData, spec: RunSpec) -> FitResult:
    """Let a self-fitting model fit itself on train (choosing on validation) and report it like
    the trainer does: one "epoch", whose throughput covers the timed featurising and final fit."""
    if not isinstance(model, SelfFitting):
        raise TypeError(
            f"model {spec.arch!r} is registered with training='self_fit' but its module has no "
            "fit(train, val, *, seed) method"
        )
    start = time.perf_counter()
    result = model.fit(data.train, data.val, seed=spec.seed)
    train_time_s = time.perf_counter() - start
    return FitResult(
        history=result.history,
        best_epoch=1,
        epochs_run=1,
        best_state=copy.deepcopy(model.state_dict()),
        train_time_s=train_time_s,
        stop_reason="fitted",
        steady_samples=len(data.train),
        steady_tokens=int(data.train.lengths.sum()),
        steady_time_s=result.timed_s,
        extra=dict(result.chosen),
    )


def cpu_inference_peak_mb(
    spec: RunSpec, hyperparams: dict[str, Any], test: EncodedSplit, vocab_size: int,
    pad_index: int, state: dict[str, torch.Tensor],
) -> float | None:
    """Peak memory (MiB) of the test pass with the model's weights, in a fresh process.

    The child receives the encoded test split (numpy arrays, copied, so resident before its
    baseline) and the selected weights as bytes; it measures how far its peak resident memory
    rises while it builds the model, loads the weights into it and runs the evaluation-mode pass
    at the evaluation batch size. None where the kernel does not expose peak memory.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    split = {"tokens": test.tokens.numpy(), "offsets": test.offsets.numpy(),
             "labels": test.labels.numpy()}  # fmt: skip
    job = (spec.arch, hyperparams, vocab_size, pad_index, buffer.getvalue(), split,
           spec.config.train.eval_batch_size, spec.threads, spec.config.train.flush_denormal)  # fmt: skip
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_inference_peak_here, *job).result()


def _inference_peak_here(
    arch: str, hyperparams: dict[str, Any], vocab_size: int, pad_index: int, weights: bytes,
    split: dict[str, np.ndarray], eval_batch_size: int, threads: int, flush_denormal: bool,
) -> float | None:
    """The child of :func:`cpu_inference_peak_mb`: build, load and run, inside one measurement."""
    _fix_mmap_threshold()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
    tensors = {name: torch.from_numpy(array) for name, array in split.items()}
    unknown = torch.full_like(tensors["labels"], -1)
    test = EncodedSplit("test", tensors["tokens"], tensors["offsets"], tensors["labels"],
                        review_ids=unknown, stars=unknown)  # fmt: skip
    # A first pass through torch's code paths costs memory once per process, whatever the model's
    # size: the meta device's first use (measured: 61 MiB), the loader, and the code pages of the
    # kernels each batch shape selects (file-backed, so how many are already mapped varies with
    # the machine's page cache: that made repeated measurements of one checkpoint differ by up to
    # 30 MiB). So the whole pass runs once before the baseline, by the same architecture over a
    # two-token vocabulary (negligible weights), and the memory it freed is handed back.
    warm_vocab = pad_index + 2
    warm = create_model(arch, vocab_size=warm_vocab, pad_index=pad_index, **hyperparams)
    buffer = io.BytesIO()
    torch.save(warm.state_dict(), buffer)
    del warm
    batches = make_batches(test, eval_batch_size, pad_index=pad_index, shuffle=False)
    _load_and_run(arch, hyperparams, warm_vocab, pad_index, buffer.getvalue(),
                  ((batch.tokens.remainder(warm_vocab), batch.lengths) for batch in batches))  # fmt: skip
    del buffer, batches
    _release_free_heap()
    with PeakMemory(torch.device("cpu")) as peak:
        batches = make_batches(test, eval_batch_size, pad_index=pad_index, shuffle=False)
        _load_and_run(arch, hyperparams, vocab_size, pad_index, weights,
                      ((batch.tokens, batch.lengths) for batch in batches))  # fmt: skip
    return peak.peak_mb


# glibc's mallopt parameter for the size above which an allocation gets its own mapping.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def _fix_mmap_threshold() -> None:
    """Give every allocation over 128 KiB (any sizeable tensor) its own mapping, returned to the
    kernel when freed, by fixing glibc's otherwise adaptive threshold.

    With the adaptive default, freed tensors stay in the heap for later ones to reuse, so the
    peak depends on the allocation history: five identical passes of one checkpoint in one
    process peaked at 79-111 MiB; with the threshold fixed, at 72.5-73.0 MiB.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def _release_free_heap() -> None:
    """Hand the heap's free memory back to the kernel (glibc ``malloc_trim``), so what the
    warm-up freed is not in the baseline for the measured pass to reuse unseen."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _load_and_run(
    arch: str, hyperparams: dict[str, Any], vocab_size: int, pad_index: int, weights: bytes,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Build ``arch`` with ``weights`` and run it over ``batches`` in evaluation mode."""
    # Built on the meta device and given the loaded tensors (assign), so the weights are held
    # once, as inference holds them, not twice (initial values plus the loaded copy).
    with torch.device("meta"):
        model = create_model(arch, vocab_size=vocab_size, pad_index=pad_index, **hyperparams)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state, assign=True)
    del state
    model.eval()
    with torch.inference_mode():
        for tokens, lengths in batches:
            model(tokens, lengths)


def _latency(model: nn.Module, data: TaskData, spec: RunSpec, device: torch.device) -> dict[str, float]:
    """p50/p95 latency of one review of median length, batch of one, evaluation mode."""
    lengths = data.test.lengths
    median_len = int(lengths.median())
    index = int(torch.argmin((lengths - median_len).abs()))
    tokens, lens = data.test.pad([index], data.pad_index)
    tokens = tokens.to(device)
    model.eval()
    measure = spec.config.measure

    @torch.inference_mode()
    def predict_one() -> torch.Tensor:
        return model(tokens, lens)

    latency = measure_latency(predict_one, device, warmup=measure.latency_warmup, reps=measure.latency_reps)
    return {"latency_ms_p50": latency.p50_ms, "latency_ms_p95": latency.p95_ms}


def _efficiency(
    facts: dict[str, Any], fit: FitResult, spec: RunSpec, device: torch.device
) -> float | None:
    """Achieved training FLOP/s over the dense matmul FLOP/s of this device, this process.

    None (not measured) for a model that declares no FLOPs, and for one that fits itself:
    training FLOPs are 3x the forward FLOPs only for gradient steps.
    """
    flops = facts["flops_per_token"]
    if flops is None or facts["training"] != "gradient" or not fit.steady_time_s:
        return None
    achieved = training_flops(flops, fit.steady_tokens) / fit.steady_time_s
    dtype = torch.bfloat16 if device.type == "cuda" and spec.config.train.bf16 else torch.float32
    peak = matmul_flops_per_s(device, size=spec.config.measure.matmul_size, dtype=dtype)
    return achieved / peak
