"""CUDA paths: the same contracts as on the CPU, on a GPU. Skipped where torch sees no CUDA device.

``python -m bench.gpu_check`` runs these (``pytest -m cuda``) on a GPU machine. What they prove:
both exact padding modes agree with each other and with the CPU on CUDA (TF32 off, so fp32 means
fp32), padding never changes a review's logit there, a bf16-autocast training step keeps fp32
weights and gives every parameter a finite gradient, the peak-memory meter reads CUDA's allocator,
and a smoke grid runs end to end on the GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.run.instruments import PeakMemory
from models import list_models, model_info
from tests import model_contracts
from tests.model_contracts import make_batch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

NO_DROPOUT = {"dropout": 0.0}
REPO_ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _strict_fp32():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def build(name: str, **extra: object) -> nn.Module:
    torch.manual_seed(0)
    return model_contracts.build(name, **{**NO_DROPOUT, **extra})


GRADIENT_MODELS = [n for n in list_models() if model_info(n).training == "gradient"]
PADDING_MODELS = [n for n in list_models() if "padding_mode" in model_info(n).hyperparams]


@pytest.mark.parametrize("name", PADDING_MODELS)
def test_padded_and_packed_agree_with_each_other_and_with_the_cpu(name: str) -> None:
    tokens, lengths = make_batch([7, 3, 5, 1], 9)
    cpu = build(name, padding_mode="padded").eval()
    with torch.no_grad():
        expected = cpu(tokens, lengths)
        for mode in ("padded", "packed"):
            model = build(name, padding_mode=mode).to(CUDA).eval()
            got = model(tokens.to(CUDA), lengths).cpu()
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=f"{name} {mode}")


@pytest.mark.parametrize(
    ("name", "mode"),
    [(name, mode) for name in GRADIENT_MODELS
     for mode in (("padded", "packed") if name in PADDING_MODELS else ("auto",))],
)
def test_padding_never_changes_a_logit_on_cuda(name: str, mode: str) -> None:
    model_contracts.check_padding_invariance(build(name, padding_mode=mode).to(CUDA), CUDA)


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_bf16_autocast_step_keeps_fp32_weights_and_finite_gradients(name: str) -> None:
    model = build(name).to(CUDA).train()
    tokens, lengths = make_batch([9, 4, 7, 2], 9)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(tokens.to(CUDA), lengths)
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits.float(), torch.tensor([1.0, 0.0, 1.0, 0.0], device=CUDA)
    )
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.dtype == torch.float32, pname
        if param.requires_grad and pname != "embedding.weight":
            assert param.grad is not None and torch.isfinite(param.grad).all(), pname


def test_peak_memory_reads_the_cuda_allocator() -> None:
    with PeakMemory(CUDA) as meter:
        block = torch.empty(64 * 2**20 // 4, device=CUDA)  # 64 MiB of float32
        del block
    assert meter.peak_mb is not None and meter.peak_mb >= 64


def test_smoke_grid_runs_end_to_end_on_cuda(tmp_path: Path) -> None:
    from data_pipeline import make_synthetic_archive

    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=200,
                                     n_per_class_test=100)
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "run_all.py", "--profile", "smoke", "--device", "cuda",
         "--archs", "lstm,bilstm", "--data", str(archive), "--out", str(out), "--no-progress"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    run_records = [json.loads(p.read_text()) for p in out.glob("runs/*/record.json")]
    assert {r["arch"] for r in run_records} == {"lstm", "bilstm"}
    for record in run_records:
        assert record["status"] == "ok"
        assert record["spec"]["device"] == "cuda"
        assert record["environment"]["cuda"]
        assert record["metrics"]["train_peak_mem_mb"] > 0
