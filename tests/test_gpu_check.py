"""The GPU check's plumbing on the CPU: what CI can prove without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.dev import gpu_check
from data_pipeline import make_synthetic_archive


def test_cpu_run_skips_cuda_steps_and_measures_the_rest(tmp_path: Path) -> None:
    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=60,
                                     n_per_class_test=30)
    out = tmp_path / "check"
    code = gpu_check.main(["--out", str(out), "--device", "cpu", "--data", str(archive)])
    assert code == 0
    steps = {s["name"]: s for s in json.loads((out / "summary.json").read_text())["steps"]}
    assert list(steps) == list(gpu_check.STEPS)
    for name in ("tests", "bench", "grid"):
        assert steps[name]["status"] == "skipped"
        assert steps[name]["reason"] == "no CUDA device"
    padding = steps["padding"]["data"]
    assert {row["model"] for row in padding["rows"]} == set(gpu_check.padding_choices())
    for row in padding["rows"]:
        assert row["padded_step_ms"] > 0 and row["packed_step_ms"] > 0
        assert row["faster"] in ("padded", "packed")
    precision = steps["precision"]["data"]["rows"]
    assert [row["precision"] for row in precision] == ["fp32"]  # tf32 and bf16 are CUDA's
    assert 0.0 <= precision[0]["test_accuracy_1_epoch"] <= 1.0
    assert any("float" in dtypes for dtypes in precision[0]["kernel_input_dtypes"].values())
    anchor = steps["anchor"]["data"]["rows"][0]
    assert anchor["forward_ms"] > 0 and anchor["backward_ms"] > 0
    scan = steps["scan"]["data"]
    assert steps["scan"]["status"] == "ok", steps["scan"]["reason"]
    assert {row["method"] for row in scan["scans"]} == {"sequential", "tree"}
    assert all(row["rel_error"] <= 1e-5 and row["forward_backward_ms"] > 0 for row in scan["scans"])
    assert scan["auto"] == "sequential" and scan["mingru_over_gru"] > 0
    measured = {(row["model"], row["scan_method"]) for row in scan["models"]}
    assert ("gru", "–") in measured and ("mingru", "tree") in measured and ("hawk", "sequential") in measured
    cost = steps["cost_suite"]["data"]
    assert steps["cost_suite"]["status"] == "ok" and cost["points"]["ok"] >= 2
    kernels = {row["arch"]: row["kernels"] for row in cost["rows"]}
    assert set(kernels) == {"lstm", "gru"} and all(kernels.values())  # what ran, named
    summary = (out / "summary.md").read_text()
    assert "## The cost suite, at the task's own lengths" in summary
    assert "## Padded vs packed training step" in summary
    assert "## The linear scan and the modern architectures" in summary
    assert "| grid | skipped |" in summary


def test_wall_time_estimates_schedule_longest_runs_first() -> None:
    runs = [{"train_time_s": t} for t in (10.0, 20.0, 30.0)]
    # 66 s of grid wall time, 60 s of it training: 2 s per run outside training.
    est = gpu_check.wall_time_estimates(runs, 66.0, seeds=5)
    assert est["overhead_per_run_s"] == pytest.approx(2.0)
    assert est["one_gpu_s"] == pytest.approx(5 * 66.0)
    # Five 32 s runs on five GPUs, three 22 s on the rest, then the other two 22 s and five 12 s
    # fill in: by hand, the last GPU frees at 44 s.
    assert est["eight_gpus_s"] == pytest.approx(44.0)
    assert est["ray_4x8_gpus_s"] == pytest.approx(32.0)


def test_auto_verdict_is_the_majority_per_precision() -> None:
    rows = [
        {"precision": "bf16", "faster": "packed"}, {"precision": "bf16", "faster": "packed"},
        {"precision": "bf16", "faster": "padded"}, {"precision": "fp32", "faster": "padded"},
    ]
    assert gpu_check._auto_verdict(rows) == {"bf16": "packed", "fp32": "padded"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "padding,warp"], "unknown step(s) warp"),
        (["--device", "cuda"], "torch sees no CUDA device"),
        (["--data", "/nonexistent/imdb.tar.gz"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert gpu_check.main(["--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
