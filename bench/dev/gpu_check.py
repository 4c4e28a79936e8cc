"""The GPU check: one prepared command that proves the CUDA paths and measures what decides them.

    python -m bench.gpu_check --out DIR --data PATH [--budget-s 300] [--steps padding,grid]

GPU time comes in short allocations that include the machine's start, so the check is one command
that fits in about five minutes and can be rerun once. It writes one folder:

``summary.md`` / ``summary.json``
    every step's status (ok, failed, skipped with the reason) and time, and the tables below.
``tests.txt``
    the CUDA unit tests (``pytest -m cuda``).
``bench-cuda.json``
    the pytest-benchmark suite on CUDA (``tests/benchmarks -k cuda``).
``padding`` (in the summary)
    padded against packed training steps for every model with a padding choice, at the ``full``
    profile's sizes, batch 64 of IMDb-like lengths, in the dtype training uses (bf16 autocast) and
    in fp32: this is the measurement that decides what ``padding_mode="auto"`` means on CUDA.
    Each model's efficiency is its training FLOP/s over a dense matmul's in the same dtype.
``precision``
    lstm at ``full`` sizes in fp32 with TF32 off, TF32, and bf16 autocast: step time, test accuracy
    after one epoch on IMDb, and the dtype the recurrent kernel really ran in (read from the
    autograd profiler's recorded input types, not assumed).
``anchor``
    pytorch's fastrnns shape (LSTM, seq 100, batch 64, input and hidden 512), forward and backward
    separately, so our figures can be set beside that published one.
``scan`` (in the summary)
    the linear scan of ``models/scan.py`` on the device: each method's forward and backward time
    at batch 64, width 64, T = 1,000 and its float32 error against the float64 recurrence (weak
    forgetting, T = 4,096); a minGRU layer against an ``nn.GRU`` layer (the gated benchmark's
    shape); and the training step of every modern architecture at the ``full`` sizes with each
    scan method, beside the GRU's.
``grid/``
    ``run_all.py --profile full --seeds 1``: the default grid end to end, data pipeline included,
    with its report; the summary turns its per-run times into wall-time estimates for 5 seeds.

Without CUDA the steps that need it are skipped with the reason, and the measuring steps run on
the CPU at small sizes (``--scale small``), so the plumbing is tested where there is no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.results import records
from bench.run.config import profile_config
from bench.run.environment import capture
from bench.run.instruments import matmul_flops_per_s, synchronize, training_flops
from models import create_model, list_models, model_info
from models.recurrent import AUTO_PADDING_MODE

STEPS = ("environment", "tests", "bench", "padding", "precision", "anchor", "scan", "cost_suite",
         "grid")
#: The cost step's share of the budget (the issue's 2 of the check's 5 minutes), in seconds.
COST_BUDGET_S = 120.0
PRECISIONS = ("fp32", "tf32", "bf16")
REPO_ROOT = Path(__file__).resolve().parents[2]  # bench/dev/gpu_check.py -> the checkout

# Sizes of the measuring steps. "full" is the notebook's configuration (the ``full`` profile);
# "small" exists so that the plumbing runs in seconds on a CPU.
SCALES: dict[str, dict[str, int]] = {
    "full": {"batch": 64, "max_len": 250, "vocab": 10_000, "warmup": 3, "reps": 10,
             "anchor_hidden": 512, "anchor_seq": 100, "matmul": 4096,
             "scan_batch": 64, "scan_width": 64, "scan_steps": 1_000, "scan_check_steps": 4_096},
    "small": {"batch": 8, "max_len": 40, "vocab": 500, "warmup": 1, "reps": 3,
              "anchor_hidden": 32, "anchor_seq": 20, "matmul": 256,
              "scan_batch": 4, "scan_width": 8, "scan_steps": 50, "scan_check_steps": 256},
}
# IMDb's review lengths (tokens): log-normal with median 201 and sigma 0.73 fits p50/p90/p99;
# truncated at the batch's max_len as the pipeline truncates (tests/benchmarks use the same fit).
_MEDIAN_LENGTH, _LENGTH_SIGMA = 201, 0.73


@dataclass
class StepResult:
    """What one step of the check did."""

    name: str
    status: str = "ok"  # ok | failed | skipped
    reason: str = ""
    time_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


# --- inputs and timing -----------------------------------------------------------------------

def imdb_like_batch(
    batch: int, max_len: int, vocab: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded tokens ``[B, max_len]``, CPU lengths ``[B]`` and float labels ``[B]``."""
    rng = np.random.default_rng(seed)
    scale = max_len / 250  # keep the truncated shape of the distribution at small sizes
    raw = rng.lognormal(math.log(_MEDIAN_LENGTH * scale), _LENGTH_SIGMA, batch)
    lengths = torch.from_numpy(np.clip(np.round(raw), 2, max_len).astype(np.int64))
    lengths[0] = max_len
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, vocab, (batch, max_len), generator=gen)
    tokens[torch.arange(max_len).unsqueeze(0) >= lengths.unsqueeze(1)] = 1
    labels = torch.randint(0, 2, (batch,), generator=gen).float()
    return tokens, lengths, labels


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device) -> Iterator[torch.autocast]:
    """Set TF32 for ``fp32``/``tf32`` and yield the autocast context for ``bf16``.

    TF32 applies to cuBLAS matmuls and to cuDNN (whose RNNs honour ``allow_tf32``); the previous
    settings are restored on exit.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass(frozen=True)
class StepTimes:
    """Medians over timed repetitions, in milliseconds."""

    forward_ms: float
    backward_ms: float
    step_ms: float  # forward + loss + backward + optimiser step


def time_training_step(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    device: torch.device,
    *,
    precision: str,
    warmup: int,
    reps: int,
) -> StepTimes:
    """Median forward, backward and whole-step time of ``model`` on ``batch`` (Adam, BCE)."""
    model = model.to(device).train()
    tokens, lengths, labels = batch[0].to(device), batch[1], batch[2].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    forward_ms, backward_ms, step_ms = [], [], []
    with precision_mode(precision, device) as autocast:
        for i in range(warmup + reps):
            synchronize(device)
            start = time.perf_counter()
            with autocast:
                logits = model(tokens, lengths)
            loss = loss_fn(logits.float(), labels)
            synchronize(device)
            mid = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            synchronize(device)
            end_backward = time.perf_counter()
            optimizer.step()
            synchronize(device)
            end = time.perf_counter()
            if i >= warmup:
                forward_ms.append((mid - start) * 1e3)
                backward_ms.append((end_backward - mid) * 1e3)
                step_ms.append((end - start) * 1e3)
    return StepTimes(
        statistics.median(forward_ms), statistics.median(backward_ms), statistics.median(step_ms)
    )


# What the profiler writes for arguments that are not tensors.
_NOT_DTYPES = {"Scalar", "ScalarList", "TensorList", "GenericList", "None"}


def recurrent_kernel_dtypes(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    device: torch.device, *, precision: str,
) -> dict[str, list[str]]:
    """The input dtypes the autograd profiler recorded for each recurrent op of one forward pass.

    Keys are op names (``aten::lstm``, ``aten::_cudnn_rnn``, ...); values the distinct dtypes of
    their tensor inputs. This answers "did the kernel run in bf16?" from what ran, not from what
    autocast's documentation suggests.
    """
    model = model.to(device).eval()
    tokens, lengths = batch[0].to(device), batch[1]
    activities = [torch.profiler.ProfilerActivity.CPU]
    found: dict[str, set[str]] = {}
    with precision_mode(precision, device) as autocast, torch.profiler.profile(
        activities=activities, record_shapes=True
    ) as prof, torch.no_grad(), autocast:
        model(tokens, lengths)
    for event in prof.events():
        name = event.name
        if any(key in name for key in ("lstm", "gru", "rnn_tanh", "cudnn_rnn", "_rnn")):
            # ``input_dtypes`` is one entry per argument: a dtype name, "" for a non-tensor, or
            # a list for a TensorList (the weights).
            for entry in event.input_dtypes:
                entries = entry if isinstance(entry, list) else [entry]
                found.setdefault(name, set()).update(
                    str(e) for e in entries if e and str(e) not in _NOT_DTYPES
                )
    return {name: sorted(types) for name, types in sorted(found.items())}


# --- the steps ------------------------------------------------------------------------------

def padding_choices() -> list[str]:
    """Registered models that declare a ``padding_mode`` hyperparameter (they have the choice)."""
    return [name for name in list_models() if "padding_mode" in model_info(name).hyperparams]


def full_model_hyperparams(name: str, scale: str) -> dict[str, Any]:
    """The ``full`` profile's model settings that ``name`` accepts (tiny ones at small scale)."""
    configured = vars(profile_config("full").model)
    if scale == "small":
        configured = {**configured, "embedding_dim": 16, "hidden_dim": 16}
    accepted = model_info(name).hyperparams
    return {key: value for key, value in configured.items() if key in accepted}


def measure_padding(device: torch.device, scale: str, precisions: Sequence[str]) -> dict[str, Any]:
    """Padded vs packed training steps for every model with the choice, per precision."""
    sizes = SCALES[scale]
    batch = imdb_like_batch(sizes["batch"], sizes["max_len"], sizes["vocab"])
    real_tokens = int(batch[1].sum())
    matmul = {
        precision: _matmul_flops(device, sizes["matmul"], precision) for precision in precisions
    }
    rows = []
    for name in padding_choices():
        for precision in precisions:
            row: dict[str, Any] = {"model": name, "precision": precision}
            for mode in ("padded", "packed"):
                torch.manual_seed(0)
                hyper = {**full_model_hyperparams(name, scale), "padding_mode": mode}
                model = create_model(name, vocab_size=sizes["vocab"], pad_index=1, **hyper)
                times = time_training_step(
                    model, batch, device, precision=precision,
                    warmup=sizes["warmup"], reps=sizes["reps"],
                )
                row[f"{mode}_step_ms"] = times.step_ms
            row["padded_over_packed"] = row["padded_step_ms"] / row["packed_step_ms"]
            best_ms = min(row["padded_step_ms"], row["packed_step_ms"])
            row["faster"] = "padded" if row["padded_step_ms"] <= row["packed_step_ms"] else "packed"
            flops = declared_flops(name, hyper)
            row["efficiency"] = (
                training_flops(flops, real_tokens) / (best_ms / 1e3) / matmul[precision]
                if flops is not None else None
            )
            rows.append(row)
    return {
        "batch": sizes["batch"], "max_len": sizes["max_len"], "real_tokens": real_tokens,
        "matmul_flops_per_s": matmul, "rows": rows, "auto_should_be": _auto_verdict(rows),
        "auto_is": AUTO_PADDING_MODE.get(device.type, "padded"),
    }


def declared_flops(name: str, hyper: dict[str, Any]) -> float | None:
    """The registry's declared forward FLOPs per token for ``name`` at ``hyper``, if declared."""
    return model_info(name).declared_flops_per_token(**hyper)


def _auto_verdict(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Per precision: the mode that was faster for most models (ties go to padded)."""
    verdict = {}
    for precision in {row["precision"] for row in rows}:
        picks = [row["faster"] for row in rows if row["precision"] == precision]
        verdict[precision] = "packed" if picks.count("packed") > len(picks) / 2 else "padded"
    return verdict


def _training_precision(device: torch.device) -> str:
    """The precision a run trains in on ``device`` with the default settings (bf16 on CUDA)."""
    return "bf16" if device.type == "cuda" and profile_config("full").train.bf16 else "fp32"


def _matmul_flops(device: torch.device, size: int, precision: str) -> float:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with precision_mode(precision, device):
        return matmul_flops_per_s(device, size=size, dtype=dtype)


def measure_precision(
    device: torch.device, scale: str, precisions: Sequence[str], data: str | None,
) -> dict[str, Any]:
    """lstm at ``full`` sizes per precision: step time, kernel dtype, accuracy after one epoch."""
    sizes = SCALES[scale]
    batch = imdb_like_batch(sizes["batch"], sizes["max_len"], sizes["vocab"])
    hyper = full_model_hyperparams("lstm", scale)
    rows = []
    for precision in precisions:
        torch.manual_seed(0)
        model = create_model("lstm", vocab_size=sizes["vocab"], pad_index=1, **hyper)
        times = time_training_step(
            model, batch, device, precision=precision, warmup=sizes["warmup"], reps=sizes["reps"]
        )
        rows.append({
            "precision": precision, **asdict(times),
            "kernel_input_dtypes": recurrent_kernel_dtypes(model, batch, device, precision=precision),
            "test_accuracy_1_epoch": (
                one_epoch_accuracy(device, scale, precision, data) if data else None
            ),
        })
    return {"model": "lstm", "hyperparams": hyper, "rows": rows}


def one_epoch_accuracy(device: torch.device, scale: str, precision: str, data: str) -> float:
    """Test accuracy of lstm after one epoch of the ``full`` profile (smoke data at small scale)."""
    from bench.run.trainer import Trainer
    from data_pipeline import load_imdb

    config = profile_config("full" if scale == "full" else "smoke")
    imdb = load_imdb(config.data, data, progress=False)
    torch.manual_seed(0)
    model = create_model(
        "lstm", vocab_size=len(imdb.vocab), pad_index=imdb.pad_index,
        **full_model_hyperparams("lstm", scale),
    )
    train_cfg = dataclasses.replace(config.train, epochs=1, bf16=precision == "bf16")
    with precision_mode(precision, device):
        trainer = Trainer(model, train_cfg, config.measure, device, pad_index=imdb.pad_index,
                          progress=False)
        fit = trainer.fit(imdb.train, imdb.val, seed=0)
        model.load_state_dict(fit.best_state)
        return trainer.evaluate(imdb.test).accuracy


def measure_anchor(device: torch.device, scale: str, precisions: Sequence[str]) -> dict[str, Any]:
    """fastrnns' cuDNN LSTM shape: forward and backward ms of one ``nn.LSTM`` layer."""
    sizes = SCALES[scale]
    hidden, seq, batch = sizes["anchor_hidden"], sizes["anchor_seq"], 64
    rows = []
    for precision in precisions:
        torch.manual_seed(0)
        lstm = nn.LSTM(hidden, hidden, batch_first=False).to(device)
        inputs = torch.randn(seq, batch, hidden, device=device, requires_grad=True)
        forward_ms, backward_ms = [], []
        with precision_mode(precision, device) as autocast:
            for i in range(sizes["warmup"] + sizes["reps"]):
                synchronize(device)
                start = time.perf_counter()
                with autocast:
                    output, _ = lstm(inputs)
                synchronize(device)
                mid = time.perf_counter()
                output.float().sum().backward()
                synchronize(device)
                end = time.perf_counter()
                if i >= sizes["warmup"]:
                    forward_ms.append((mid - start) * 1e3)
                    backward_ms.append((end - mid) * 1e3)
        rows.append({
            "precision": precision,
            "forward_ms": statistics.median(forward_ms),
            "backward_ms": statistics.median(backward_ms),
        })
    return {
        "shape": {"seq": seq, "batch": batch, "input": hidden, "hidden": hidden},
        "published": {"forward_ms": 11.2, "backward_ms": 14.3,
                      "source": "pytorch benchmarks/fastrnns README, cuDNN LSTM, older GPU"},
        "rows": rows,
    }


def run_command(
    command: Sequence[str], log_path: Path, *, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int | None, float]:
    """Run ``command`` from the repository root, output to ``log_path``; (exit code, seconds).

    The exit code is None when the command ran past ``timeout_s`` (it is then killed).
    """
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            completed = subprocess.run(
                list(command), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                timeout=max(timeout_s, 1.0), env={**os.environ, **(env or {})}, check=False,
            )
            code: int | None = completed.returncode
        except subprocess.TimeoutExpired:
            log.write(f"\n[gpu_check] timed out after {timeout_s:.0f} s\n")
            code = None
    return code, time.perf_counter() - start


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def pytest_step(name: str, args: Sequence[str], out: Path, timeout_s: float) -> StepResult:
    """A pytest invocation as a step: ok on exit 0, failed otherwise (with the closing lines)."""
    log_path = out / f"{name}.txt"
    code, _ = run_command([sys.executable, "-m", "pytest", *args], log_path, timeout_s=timeout_s)
    if code == 0:
        return StepResult(name, data={"log": log_path.name, "summary": _tail(log_path, 1)})
    reason = "timed out" if code is None else f"pytest exited {code}: {_tail(log_path)}"
    return StepResult(name, status="failed", reason=reason, data={"log": log_path.name})


def grid_step(out: Path, data: str, timeout_s: float, *, profile: str) -> StepResult:
    """``run_all.py`` on ``profile``, one seed, end to end into ``out/grid``."""
    grid_dir = out / "grid"
    command = [sys.executable, "-m", "run_all", "--profile", profile, "--seeds", "1",
               "--data", data, "--out", str(grid_dir), "--overwrite", "--no-progress"]
    code, wall_s = run_command(command, out / "grid.txt", timeout_s=timeout_s)
    if code is None:
        return StepResult("grid", status="failed", reason=f"timed out after {timeout_s:.0f} s")
    runs = [
        {
            "arch": record["arch"],
            "status": record["status"],
            "test_accuracy": record["metrics"].get("test_accuracy"),
            "train_time_s": record["metrics"].get("train_time_s"),
            "train_samples_per_s": record["metrics"].get("train_samples_per_s"),
            "train_peak_mem_mb": record["metrics"].get("train_peak_mem_mb"),
            "efficiency": record["metrics"].get("efficiency"),
        }
        for record in records.load_records(grid_dir)
    ] if (grid_dir / records.RUNS_DIR).is_dir() else []
    data_out = {"profile": profile, "wall_s": wall_s, "exit_code": code, "runs": runs,
                "estimates": wall_time_estimates(runs, wall_s)}
    status = "ok" if code == 0 else "failed"
    reason = "" if code == 0 else f"run_all exited {code}: {_tail(out / 'grid.txt')}"
    return StepResult("grid", status=status, reason=reason, data=data_out)


def cost_step(out: Path, data: str, timeout_s: float, *, cuda: bool) -> StepResult:
    """``run_all.py --suite cost`` into ``out/cost``: the default set at the ``full`` profile's
    series on CUDA, in 7 rounds and one process to fit the step's share of the check (the
    profile's 49 rounds over 4 processes are for figures to quote); on CPU, the smoke series for
    lstm and gru (the plumbing, and the kernels that explain their gap). Records are written
    after the last round, so a timeout keeps none: the summary says so."""
    from bench.results import cost
    from bench.suites.cost import SUITE

    cost_dir = out / "cost_suite"
    command = [sys.executable, "-m", "run_all", "--suite", SUITE, "--profile",
               "full" if cuda else "smoke",
               *(["--reps", "7", "--sittings", "1"] if cuda else ["--archs", "lstm", "gru"]),
               "--data", data, "--out", str(cost_dir), "--overwrite", "--no-progress"]
    code, wall_s = run_command(command, out / "cost_suite.txt", timeout_s=timeout_s)
    points = cost.load_points(cost_dir).points if cost_dir.is_dir() else []
    task = {p["arch"]: p for p in points if p["axis"] == "task" and p["status"] == "ok"}
    rows = [{"arch": arch,
             "train_step_ms": ((point.get("train") or {}).get("step_ms") or {}).get("median"),
             "infer_ms": ((point.get("infer") or {}).get("step_ms") or {}).get("median"),
             "kernels": [k["op"] for k in ((point.get("kernels") or {}).get("train") or
                                           (point.get("kernels") or {}).get("infer") or
                                           {}).get("recurrence", [])][:2]}
            for arch, point in task.items()]  # fmt: skip
    counts = {s: sum(p["status"] == s for p in points) for s in ("ok", "oom", "failed")}
    data_out = {"wall_s": wall_s, "exit_code": code, "points": counts, "rows": rows,
                "summary": f"{counts['ok']} point(s) measured, {counts['oom']} out of memory"}
    if code is None:
        return StepResult("cost_suite", status="failed", data=data_out,
                          reason=f"timed out after {timeout_s:.0f} s ({data_out['summary']})")
    status = "ok" if code == 0 else "failed"
    reason = "" if code == 0 else f"run_all exited {code}: {_tail(out / 'cost_suite.txt')}"
    return StepResult("cost_suite", status=status, reason=reason, data=data_out)


def wall_time_estimates(
    runs: list[dict[str, Any]], grid_wall_s: float, *, seeds: int = 5
) -> dict[str, Any]:
    """Wall time of the same grid with ``seeds`` seeds, on paper, from one seed's measured runs.

    Each run's wall time is its training time plus an equal share of what the grid spent outside
    training loops (data pipeline, process start, evaluation, latency and memory measurement).
    Runs are then scheduled longest first onto the free worker that frees up first (LPT, within
    4/3 of optimal): one GPU runs them one after another; 8 GPUs of one machine run 8 at once; a
    4-node Ray cluster of 8-GPU nodes runs 32 at once (Ray's own scheduling overhead, about a
    second per task, is not included).
    """
    times = [run["train_time_s"] or 0.0 for run in runs]
    if not times:
        return {}
    overhead = max(grid_wall_s - sum(times), 0.0) / len(times)
    per_run = [t + overhead for t in times] * seeds

    def makespan(workers: int) -> float:
        free = [0.0] * workers
        for duration in sorted(per_run, reverse=True):
            heapq.heappush(free, heapq.heappop(free) + duration)
        return max(free)

    return {
        "seeds": seeds, "runs": len(per_run), "overhead_per_run_s": overhead,
        "one_gpu_s": makespan(1), "eight_gpus_s": makespan(8), "ray_4x8_gpus_s": makespan(32),
    }


# --- the check ------------------------------------------------------------------------------

def _median_ms(fn: Callable[[], None], device: torch.device, warmup: int, reps: int) -> float:
    """Median wall time of ``fn`` in milliseconds (the device synchronised around each call)."""
    times = []
    for i in range(warmup + reps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _layer_step(layer: nn.Module, inputs: torch.Tensor, read: Callable[[Any], torch.Tensor]
                ) -> Callable[[], None]:  # fmt: skip
    def step() -> None:
        inputs.grad = None
        layer.zero_grad(set_to_none=True)
        read(layer(inputs)).sum().backward()

    return step


def scan_error(device: torch.device, steps: int, method: str) -> float:
    """The largest relative error norm, over sequences, of the float32 scan on ``device`` against
    the float64 recurrence on the CPU, forward, under weak forgetting (1 - a in [1e-6, 1e-3])."""
    from models.scan import linear_scan, reference_scan

    gen = torch.Generator().manual_seed(0)
    a = 1 - 10 ** (torch.rand(2, steps, 3, dtype=torch.float64, generator=gen) * 3 - 6)
    b = torch.randn(2, steps, 3, dtype=torch.float64, generator=gen)
    reference = reference_scan(a, b)
    h = linear_scan(a.float().to(device), b.float().to(device), method=method).cpu().double()
    return ((h - reference).flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1)).max().item()


def measure_scan(device: torch.device, scale: str) -> dict[str, Any]:
    """The scan's methods, a minGRU layer against ``nn.GRU``, and the modern architectures'
    training steps per scan method, on ``device``."""
    from models.min_rnn import MinGRULayer
    from models.scan import SCAN_METHODS, linear_scan, resolve_method

    sizes = SCALES[scale]
    warmup, reps = sizes["warmup"], sizes["reps"]
    shape = (sizes["scan_batch"], sizes["scan_steps"], sizes["scan_width"])
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=gen).to(device).requires_grad_()
    b = torch.randn(shape, generator=gen).to(device).requires_grad_()
    methods = [m for m in SCAN_METHODS if m != "auto"]
    scans = []
    for method in methods:
        forward = _median_ms(lambda m=method: linear_scan(a, b, method=m), device, warmup, reps)
        both = _median_ms(lambda m=method: linear_scan(a, b, method=m).sum().backward(), device,
                          warmup, reps)  # fmt: skip
        scans.append({"method": method, "forward_ms": forward, "forward_backward_ms": both,
                      "rel_error": scan_error(device, sizes["scan_check_steps"], method)})
    torch.manual_seed(0)
    inputs = torch.randn(shape, generator=gen).to(device).requires_grad_()
    width = sizes["scan_width"]
    layers = {"minGRU": (MinGRULayer(width, width), lambda out: out),
              "nn.GRU": (nn.GRU(width, width, batch_first=True), lambda out: out[0]),
              "nn.LSTM": (nn.LSTM(width, width, batch_first=True), lambda out: out[0])}
    layer_ms = {name: _median_ms(_layer_step(layer.to(device), inputs, read), device, warmup, reps)
                for name, (layer, read) in layers.items()}  # fmt: skip
    batch = imdb_like_batch(sizes["batch"], sizes["max_len"], sizes["vocab"])
    models = []
    for name in ["gru", *list_models("*", family="modern")]:
        if name.endswith("_max"):
            continue  # the readout does not change the recurrence's cost
        hyper = full_model_hyperparams(name, scale)
        for method in (methods if "scan_method" in model_info(name).hyperparams else [None]):
            torch.manual_seed(0)
            extra = {} if method is None else {"scan_method": method}
            model = create_model(name, vocab_size=sizes["vocab"], pad_index=1, **hyper, **extra)
            times = time_training_step(model, batch, device, precision="fp32", warmup=warmup,
                                       reps=reps)  # fmt: skip
            models.append({"model": name, "scan_method": method or "–", "step_ms": times.step_ms,
                           "forward_ms": times.forward_ms, "backward_ms": times.backward_ms})
    return {
        "shape": dict(zip(("batch", "steps", "width"), shape, strict=True)),
        "auto": resolve_method("auto", device),
        "scans": scans,
        "layers_ms": layer_ms,
        "mingru_over_gru": layer_ms["minGRU"] / layer_ms["nn.GRU"],
        "models": models,
        "summary": f"minGRU layer / nn.GRU layer = {layer_ms['minGRU'] / layer_ms['nn.GRU']:.2f}",
    }


def _timed(name: str, fn: Callable[[], dict[str, Any]]) -> StepResult:
    start = time.perf_counter()
    try:
        result = StepResult(name, data=fn())
    except (RuntimeError, ValueError, OSError) as exc:  # a failed measurement is a finding
        result = StepResult(name, status="failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    result.time_s = time.perf_counter() - start
    return result


def run_check(
    out: Path, *, data: str | None, steps: Sequence[str], device: torch.device, scale: str,
    budget_s: float, log: Callable[[str], None] = print,
) -> list[StepResult]:
    """Run ``steps`` in order within ``budget_s`` seconds; every step leaves a result."""
    out.mkdir(parents=True, exist_ok=True)
    cuda = device.type == "cuda"
    precisions = PRECISIONS if cuda else ("fp32",)
    deadline = time.perf_counter() + budget_s
    results: list[StepResult] = []
    for name in steps:
        left = deadline - time.perf_counter()
        log(f"[gpu_check] {name} ({left:.0f} s of the budget left)")
        if left <= 0:
            result = StepResult(name, status="skipped", reason="the time budget ran out")
        elif name == "environment":
            result = _timed(name, lambda: capture(device))
        elif name in ("tests", "bench", "grid") and not cuda:
            result = StepResult(name, status="skipped", reason="no CUDA device")
        elif name == "tests":
            result = pytest_step("tests", ["tests", "-m", "cuda", "-q"], out, timeout_s=left)
        elif name == "bench":
            result = pytest_step(
                "bench", ["tests/benchmarks", "-k", "cuda", "-q",
                          f"--benchmark-json={out / 'bench-cuda.json'}"], out, timeout_s=left)
        elif name == "padding":
            result = _timed(name, lambda: measure_padding(device, scale, precisions))
        elif name == "precision":
            result = _timed(name, lambda: measure_precision(device, scale, precisions, data))
        elif name == "anchor":
            result = _timed(name, lambda: measure_anchor(device, scale, precisions))
        elif name == "scan":
            result = _timed(name, lambda: measure_scan(device, scale))
        elif name == "cost_suite":
            if data is None:
                result = StepResult(name, status="skipped", reason="no data (--data)")
            else:
                result = cost_step(out, data, min(left, COST_BUDGET_S), cuda=cuda)
        elif name == "grid":
            if data is None:
                result = StepResult(name, status="skipped", reason="no data (--data)")
            else:
                result = grid_step(out, data, left, profile="full")
        else:
            raise ValueError(f"unknown step {name!r}")
        log(f"[gpu_check] {name}: {result.status}{': ' + result.reason if result.reason else ''}")
        results.append(result)
        write_summary(out, results, device=device, scale=scale)
    return results


def _fmt(value: Any, spec: str = ".2f", empty: str = "–") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return empty
    return format(value, spec)


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _padding_lines(p: dict[str, Any], device: torch.device) -> list[str]:
    """The padded-vs-packed section of :func:`summary_markdown`."""
    return [
        "", "## Padded vs packed training step",
        "",
        f"Batch {p['batch']} of IMDb-like lengths, padded to {p['max_len']} "
        f"({p['real_tokens']:,} real tokens); forward, BCE, backward, Adam step; median ms. "
        "Efficiency: training FLOP/s (declared forward FLOPs x 3 x real tokens, faster mode) "
        "over a dense matmul's FLOP/s in the same precision ("
        + ", ".join(f"{k}: {v / 1e12:.1f} TFLOP/s" for k, v in p["matmul_flops_per_s"].items())
        + ").",
        "",
        *_table(["model", "precision", "padded ms", "packed ms", "padded / packed", "faster",
                 "efficiency"], [
            [r["model"], r["precision"], _fmt(r["padded_step_ms"]), _fmt(r["packed_step_ms"]),
             _fmt(r["padded_over_packed"]), r["faster"], _fmt(r["efficiency"], ".3f")]
            for r in p["rows"]
        ]),
        "",
        "Faster for most models, per precision: "
        + ", ".join(f"{k}: **{v}**" for k, v in p["auto_should_be"].items())
        + f". `padding_mode=\"auto\"` picks **{p['auto_is']}** on this device type "
        "(`models.recurrent.AUTO_PADDING_MODE`)"
        + ("." if p["auto_should_be"].get(_training_precision(device)) == p["auto_is"] else
           ": **the measurement disagrees for the training precision; change that table**."),
    ]


def _precision_lines(precision: StepResult) -> list[str]:
    """The precision section of :func:`summary_markdown`."""
    return [
        "", f"## Precision: lstm at {precision.data['hyperparams']}", "",
        *_table(["precision", "step ms", "forward ms", "backward ms",
                 "recurrent op input dtypes", "test accuracy after 1 epoch"], [
            [r["precision"], _fmt(r["step_ms"]), _fmt(r["forward_ms"]), _fmt(r["backward_ms"]),
             "; ".join(f"{op}: {', '.join(t)}" for op, t in r["kernel_input_dtypes"].items())
             or "–",
             _fmt(r["test_accuracy_1_epoch"], ".2%")]
            for r in precision.data["rows"]
        ]),
    ]


def _anchor_lines(a: dict[str, Any]) -> list[str]:
    """The fastrnns-anchor section of :func:`summary_markdown`."""
    return [
        "", "## The fastrnns anchor", "",
        f"One `nn.LSTM` layer, seq {a['shape']['seq']}, batch {a['shape']['batch']}, input and "
        f"hidden {a['shape']['hidden']}; median ms. Published: forward {a['published']['forward_ms']}"
        f", backward {a['published']['backward_ms']} ({a['published']['source']}).",
        "",
        *_table(["precision", "forward ms", "backward ms"], [
            [r["precision"], _fmt(r["forward_ms"]), _fmt(r["backward_ms"])] for r in a["rows"]
        ]),
    ]


def _scan_lines(c: dict[str, Any]) -> list[str]:
    """The scan section of :func:`summary_markdown`."""
    shape = c["shape"]
    return [
        "", "## The linear scan and the modern architectures", "",
        f"`linear_scan` at batch {shape['batch']}, T = {shape['steps']:,}, width {shape['width']} "
        f"(median ms; `auto` is `{c['auto']}` here); relative error against the float64 "
        "recurrence under weak forgetting.",
        "",
        *_table(["method", "forward ms", "forward + backward ms", "rel. error"], [
            [r["method"], _fmt(r["forward_ms"]), _fmt(r["forward_backward_ms"]),
             _fmt(r["rel_error"], ".1e")] for r in c["scans"]
        ]),
        "",
        "One layer's training step at that shape (median ms): "
        + ", ".join(f"{name} {_fmt(ms)}" for name, ms in c["layers_ms"].items())
        + f"; minGRU / GRU = {c['mingru_over_gru']:.2f}.",
        "",
        *_table(["model", "scan method", "train step ms", "forward ms", "backward ms"], [
            [r["model"], r["scan_method"], _fmt(r["step_ms"]), _fmt(r["forward_ms"]),
             _fmt(r["backward_ms"])] for r in c["models"]
        ]),
    ]


def _cost_lines(c: dict[str, Any]) -> list[str]:
    """The cost-suite section of :func:`summary_markdown`."""
    return [
        "", "## The cost suite, at the task's own lengths", "",
        f"{c['summary']} in {c['wall_s']:.0f} s, each architecture alone "
        "([report](cost_suite/report.md)).",
        "",
        *_table(["model", "train step ms", "inference ms", "recurrence kernels"], [
            [r["arch"], _fmt(r["train_step_ms"]), _fmt(r["infer_ms"]),
             ", ".join(f"`{k}`" for k in r["kernels"]) or "–"] for r in c["rows"]
        ]),
    ]


def _grid_lines(g: dict[str, Any]) -> list[str]:
    """The end-to-end grid section of :func:`summary_markdown`."""
    lines = [
        "", f"## The default grid, `{g['profile']}` profile, one seed, end to end", "",
        f"Wall time {g['wall_s']:.0f} s, data pipeline and report included "
        "([report](grid/report.md)).",
        "",
        *_table(["model", "status", "test accuracy", "train time (s)", "train samples/s",
                 "train peak MiB", "efficiency"], [
            [r["arch"], r["status"], _fmt(r["test_accuracy"], ".2%"),
             _fmt(r["train_time_s"], ".1f"), _fmt(r["train_samples_per_s"], ",.0f"),
             _fmt(r["train_peak_mem_mb"], ",.0f"), _fmt(r["efficiency"], ".3f")]
            for r in g["runs"]
        ]),
    ]
    est = g.get("estimates") or {}
    if est:
        lines += [
            "",
            f"On paper, {est['seeds']} seeds ({est['runs']} runs; {est['overhead_per_run_s']:.1f} s "
            "per run outside training, from this grid): one GPU "
            f"{est['one_gpu_s'] / 60:.1f} min, 8 GPUs {est['eight_gpus_s'] / 60:.1f} min, "
            f"a 4-node Ray cluster of 8-GPU nodes {est['ray_4x8_gpus_s'] / 60:.1f} min "
            "(longest run first onto the first free GPU; Ray's per-task overhead not included).",
        ]
    return lines


def summary_markdown(results: list[StepResult], *, device: torch.device, scale: str) -> str:
    """The check's findings as markdown: what ran, then one table per measuring step."""
    by_name = {result.name: result for result in results}
    env = by_name["environment"].data if "environment" in by_name else {}
    lines = [
        "# GPU check",
        "",
        f"Device: {env.get('device_name', device.type)}; torch {env.get('torch', torch.__version__)}, "
        f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; commit {env.get('git_commit', '?')}"
        f"{' (dirty)' if env.get('git_dirty') else ''}; {env.get('date_utc', '')}; sizes: {scale}.",
        "",
        "## Steps",
        "",
        *_table(["step", "status", "time (s)", "note"], [
            [r.name, r.status, _fmt(r.time_s, ".1f"), r.reason or r.data.get("summary", "")]
            for r in results
        ]),
    ]
    padding = by_name.get("padding")
    if padding and padding.status == "ok":
        lines += _padding_lines(padding.data, device)
    precision = by_name.get("precision")
    if precision and precision.status == "ok":
        lines += _precision_lines(precision)
    anchor = by_name.get("anchor")
    if anchor and anchor.status == "ok":
        lines += _anchor_lines(anchor.data)
    scan = by_name.get("scan")
    if scan and scan.status == "ok":
        lines += _scan_lines(scan.data)
    cost = by_name.get("cost_suite")
    if cost and cost.data.get("rows"):
        lines += _cost_lines(cost.data)
    grid = by_name.get("grid")
    if grid and grid.data.get("runs"):
        lines += _grid_lines(grid.data)
    return "\n".join(lines) + "\n"


def write_summary(out: Path, results: list[StepResult], *, device: torch.device, scale: str) -> None:
    """``summary.json`` and ``summary.md`` in ``out``, rewritten after every step."""
    payload = {"device": device.type, "scale": scale, "steps": [asdict(r) for r in results]}
    records.write_json_atomic(out / "summary.json", payload)
    records.write_bytes_atomic(
        out / "summary.md", summary_markdown(results, device=device, scale=scale).encode()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_check",
        description="Prove the CUDA paths and measure what decides them, in one folder of results "
        "(about 5 minutes on one GPU). Without CUDA, the CUDA-only steps are skipped and the "
        "measuring steps run at small sizes on the CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--data", default=os.environ.get("RNNBENCH_IMDB"),
                        help="IMDb archive or folder (default: $RNNBENCH_IMDB); without it the "
                        "accuracy and grid steps are skipped")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated steps, in order; from: {', '.join(STEPS)}")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--scale", choices=("auto", *SCALES), default="auto",
                        help="sizes of the measuring steps: auto is full on CUDA, small on CPU")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="total seconds; steps past it are skipped (the grid gets what is left)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        print(f"gpu_check: error: unknown step(s) {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(STEPS)}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    scale = args.scale if args.scale != "auto" else ("full" if device.type == "cuda" else "small")
    if args.data is not None and not Path(args.data).exists():
        print(f"gpu_check: error: --data {args.data} does not exist", file=sys.stderr)
        return 2
    try:
        results = run_check(args.out, data=args.data, steps=steps, device=device, scale=scale,
                            budget_s=args.budget_s)
    except OSError as exc:
        print(f"gpu_check: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    failed = [r.name for r in results if r.status == "failed"]
    print(f"gpu_check: wrote {args.out / 'summary.md'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
