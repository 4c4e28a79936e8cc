"""The benchmark gate's logic on hand-made pytest-benchmark JSON: no timing anywhere."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench import gate

MODELS = "tests/benchmarks/test_bench_models.py"


def bench(
    name: str,
    min_s: float,
    *,
    kind: str = "train_step",
    model: str | None = "lstm",
    device: str = "cpu",
    matmul_s: float = 0.001,
    python_s: float = 0.002,
    normalise_by: str = "matmul",
    threads: int = 1,
) -> dict[str, Any]:
    """One entry of a pytest-benchmark JSON run, as calibration.timed writes it."""
    return {
        "fullname": name,
        "stats": {"min": min_s, "median": min_s * 1.1, "rounds": 5},
        "extra_info": {
            "kind": kind,
            "model": model,
            "device": device,
            "threads": threads,
            "clock": "process_time",
            "torch_version": "2.13.0+cpu",
            "calibration": {
                "matmul_s": matmul_s,
                "python_s": python_s,
                "samples": 12,
                "normalise_by": normalise_by,
            },
        },
    }


def run_of(*benchmarks: dict[str, Any]) -> dict[str, Any]:
    return {"machine_info": {"node": "ci"}, "benchmarks": list(benchmarks)}


LSTM_TRAIN = f"{MODELS}::test_train_step[cpu-lstm]"
GRU_TRAIN = f"{MODELS}::test_train_step[cpu-gru]"


@pytest.fixture
def baseline() -> dict[str, Any]:
    # lstm: 60 ms over a 1 ms matmul = 60; gru: 100 ms / 1 ms = 100.
    return gate.make_baseline(
        [run_of(bench(LSTM_TRAIN, 0.060), bench(GRU_TRAIN, 0.100, model="gru"))]
    )


def statuses(result: gate.GateResult) -> dict[str, str]:
    return {f.name: f.status for f in result.findings}


def test_normalised_figure_divides_by_the_chosen_calibration() -> None:
    entry = bench("x", 0.060, matmul_s=0.002, python_s=0.008)
    assert gate.figure_of(entry).normalised == pytest.approx(30.0)
    assert gate.figure_of(entry, "python").normalised == pytest.approx(7.5)
    assert gate.figure_of(entry, "mixed").normalised == pytest.approx(0.060 / 0.004)


def test_unchanged_run_passes(baseline: dict[str, Any]) -> None:
    result = gate.run_gate(
        run_of(bench(LSTM_TRAIN, 0.060), bench(GRU_TRAIN, 0.100, model="gru")), baseline
    )
    assert not result.failed
    assert statuses(result) == {LSTM_TRAIN: gate.OK, GRU_TRAIN: gate.OK}


def test_slower_machine_is_not_a_regression(baseline: dict[str, Any]) -> None:
    # Everything 3x slower, calibration included: the normalised figures do not move.
    run = run_of(
        bench(LSTM_TRAIN, 0.180, matmul_s=0.003, python_s=0.006),
        bench(GRU_TRAIN, 0.300, model="gru", matmul_s=0.003, python_s=0.006),
    )
    assert not gate.run_gate(run, baseline).failed


def test_regression_fails_and_names_benchmark_figures_and_threshold(
    baseline: dict[str, Any],
) -> None:
    # lstm twice as slow relative to the same calibration: 120 against a baseline of 60.
    run = run_of(bench(LSTM_TRAIN, 0.120), bench(GRU_TRAIN, 0.100, model="gru"))
    result = gate.run_gate(run, baseline)
    assert result.failed
    [finding] = result.by_status(gate.REGRESSION)
    assert finding.name == LSTM_TRAIN
    assert "normalised 120" in finding.message
    assert "baseline 60" in finding.message
    assert "ratio 2.00x" in finding.message
    assert f"threshold {gate.REGRESSION_THRESHOLD:.2f}x" in finding.message
    report = gate.format_report(result)
    assert report.splitlines()[0].strip().startswith("REGRESSION")
    assert "FAILED" in report.splitlines()[-1]


def test_just_under_threshold_passes(baseline: dict[str, Any]) -> None:
    slower = 0.060 * (gate.REGRESSION_THRESHOLD - 0.01)
    run = run_of(bench(LSTM_TRAIN, slower), bench(GRU_TRAIN, 0.100, model="gru"))
    assert not gate.run_gate(run, baseline).failed


def test_much_faster_is_reported_not_failed(baseline: dict[str, Any]) -> None:
    run = run_of(bench(LSTM_TRAIN, 0.020), bench(GRU_TRAIN, 0.100, model="gru"))
    result = gate.run_gate(run, baseline)
    assert not result.failed
    assert statuses(result)[LSTM_TRAIN] == gate.FASTER


def test_new_benchmark_is_reported_and_passes(baseline: dict[str, Any]) -> None:
    new = f"{MODELS}::test_train_step[cpu-new_model]"
    run = run_of(
        bench(LSTM_TRAIN, 0.060), bench(GRU_TRAIN, 0.100, model="gru"),
        bench(new, 5.0, model="new_model"),
    )
    result = gate.run_gate(run, baseline)
    assert not result.failed
    [finding] = result.by_status(gate.NEW)
    assert finding.name == new
    assert "new, no baseline" in finding.message


def test_benchmark_missing_from_run_is_reported_and_passes(baseline: dict[str, Any]) -> None:
    result = gate.run_gate(run_of(bench(LSTM_TRAIN, 0.060)), baseline)
    assert not result.failed
    assert [f.name for f in result.by_status(gate.MISSING)] == [GRU_TRAIN]


def test_missing_calibration_fails(baseline: dict[str, Any]) -> None:
    entry = bench(LSTM_TRAIN, 0.060)
    del entry["extra_info"]["calibration"]
    result = gate.run_gate(run_of(entry, bench(GRU_TRAIN, 0.100, model="gru")), baseline)
    assert result.failed
    [finding] = result.by_status(gate.ERROR)
    assert finding.name == LSTM_TRAIN
    assert "calibration" in finding.message


def test_partial_calibration_fails(baseline: dict[str, Any]) -> None:
    entry = bench(LSTM_TRAIN, 0.060)
    entry["extra_info"]["calibration"]["python_s"] = None
    result = gate.run_gate(run_of(entry, bench(GRU_TRAIN, 0.100, model="gru")), baseline)
    assert [f.name for f in result.by_status(gate.ERROR)] == [LSTM_TRAIN]
    assert "python_s" in result.by_status(gate.ERROR)[0].message


def test_other_thread_count_is_not_comparable(baseline: dict[str, Any]) -> None:
    run = run_of(bench(LSTM_TRAIN, 0.060, threads=2), bench(GRU_TRAIN, 0.100, model="gru"))
    result = gate.run_gate(run, baseline)
    assert result.failed
    assert "not comparable" in result.by_status(gate.ERROR)[0].message


def test_other_clock_is_not_comparable(baseline: dict[str, Any]) -> None:
    entry = bench(LSTM_TRAIN, 0.060)
    entry["extra_info"]["clock"] = "perf_counter"
    result = gate.run_gate(run_of(entry, bench(GRU_TRAIN, 0.100, model="gru")), baseline)
    assert [f.name for f in result.by_status(gate.ERROR)] == [LSTM_TRAIN]
    assert "perf_counter" in result.by_status(gate.ERROR)[0].message


def test_other_normaliser_is_not_comparable(baseline: dict[str, Any]) -> None:
    run = run_of(
        bench(LSTM_TRAIN, 0.060, normalise_by="python"), bench(GRU_TRAIN, 0.100, model="gru")
    )
    assert [f.name for f in gate.run_gate(run, baseline).by_status(gate.ERROR)] == [LSTM_TRAIN]


def test_baseline_takes_the_median_and_records_spread() -> None:
    runs = [run_of(bench(LSTM_TRAIN, t)) for t in (0.050, 0.060, 0.090)]
    entry = gate.make_baseline(runs)["benchmarks"][LSTM_TRAIN]
    assert entry["normalised"] == pytest.approx(60.0)
    assert entry["spread"] == pytest.approx(1.8)
    assert entry["runs"] == 3


def test_wrong_schema_is_refused(baseline: dict[str, Any]) -> None:
    stale = copy.deepcopy(baseline)
    stale["schema"] = 0
    with pytest.raises(gate.GateInputError, match="make bench-baseline"):
        gate.run_gate(run_of(bench(LSTM_TRAIN, 0.060)), stale)


def _alternative(model: str, min_s: float) -> dict[str, Any]:
    return bench(
        f"{MODELS}::test_train_step_alternative_padding[cpu-{model}]", min_s,
        kind="train_step_alternative_padding", model=model,
    )


def test_padding_default_must_not_be_slower(baseline: dict[str, Any]) -> None:
    run = run_of(
        bench(LSTM_TRAIN, 0.060), _alternative("lstm", 0.300),
        bench(GRU_TRAIN, 0.100, model="gru"), _alternative("gru", 0.080),
    )
    result = gate.run_gate(run, baseline)
    assert [f.name for f in result.by_status(gate.CHECK_FAILED)] == ["padding gru cpu"]
    assert [f.name for f in result.by_status(gate.CHECK_OK)] == ["padding lstm cpu"]
    assert result.failed


def test_padding_check_tolerates_noise_within_tolerance(baseline: dict[str, Any]) -> None:
    run = run_of(bench(LSTM_TRAIN, 0.060), _alternative("lstm", 0.060 / (gate.PADDING_TOLERANCE - 0.01)))
    assert not gate.run_gate(run, baseline).failed


def test_fused_must_beat_scratch(baseline: dict[str, Any]) -> None:
    scratch = f"{MODELS}::test_train_step[cpu-lstm_scratch]"
    ok = gate.check_invariants(gate.run_figures(run_of(
        bench(LSTM_TRAIN, 0.060), bench(scratch, 0.400, model="lstm_scratch",
                                        normalise_by="mixed"),
    ))[0])
    assert [f.status for f in ok] == [gate.CHECK_OK]
    # The ratio puts both over the same calibration, whatever each one's own normaliser.
    bad = gate.check_invariants(gate.run_figures(run_of(
        bench(LSTM_TRAIN, 0.060), bench(scratch, 0.050, model="lstm_scratch",
                                        normalise_by="mixed"),
    ))[0])
    assert [f.status for f in bad] == [gate.CHECK_FAILED]
    assert "lstm / lstm_scratch = 1.200" in bad[0].message


@pytest.mark.parametrize(
    ("trainer_s", "status", "verdict"),
    [(0.51, gate.CHECK_OK, "meets"), (0.55, gate.CHECK_OK, "misses"),
     (0.70, gate.CHECK_FAILED, "misses")],
)
def test_trainer_overhead_goal_and_limit(trainer_s: float, status: str, verdict: str) -> None:
    trainer = bench("t::test_trainer_epoch[cpu]", trainer_s, kind="trainer_epoch")
    trainer["extra_info"]["bare_epoch_min_s"] = 0.50
    figures, _ = gate.run_figures(run_of(trainer))
    [finding] = gate.check_invariants(figures)
    assert finding.name == "trainer overhead cpu"
    assert finding.status == status
    assert f"{verdict} the {gate.TRAINER_OVERHEAD_GOAL:.2f} goal" in finding.message


def test_cli_exit_codes(tmp_path: Path, baseline: dict[str, Any], capsys) -> None:
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps(baseline))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(run_of(bench(LSTM_TRAIN, 0.060), bench(GRU_TRAIN, 0.1, model="gru"))))
    bad.write_text(json.dumps(run_of(bench(LSTM_TRAIN, 0.200), bench(GRU_TRAIN, 0.1, model="gru"))))
    assert gate.main(["check", str(good), "--baseline", str(baseline_path)]) == 0
    assert gate.main(["check", str(bad), "--baseline", str(baseline_path)]) == 1
    assert f"REGRESSION  {LSTM_TRAIN}" in capsys.readouterr().out
    assert gate.main(["check", str(good), "--baseline", str(tmp_path / "none.json")]) == 1
    written = tmp_path / "new_baseline.json"
    assert gate.main(["baseline", str(good), str(bad), "--output", str(written)]) == 0
    assert json.loads(written.read_text())["benchmarks"][LSTM_TRAIN]["runs"] == 2
