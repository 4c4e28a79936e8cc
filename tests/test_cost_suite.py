"""The cost suite: its points, its refusals, its statistics, a smoke run end to end with resume,
and the report section's facts (growth exponents, crossovers) from synthetic points."""

from __future__ import annotations

import json

import pytest
import torch

from bench.results import cost
from bench.suites.cost.measure import PointRun, summarize_times
from bench.suites.cost.peak import LiveTensorBytes
from bench.suites.cost.plan import SERIES, CostPoint, plan_points, series_for
from bench.suites.cost.series import round_order
from data_pipeline import make_synthetic_archive
from reports.cost import cost_facts, crossovers_of, fit_slope, growth_of
from tests.factories import run_cli

pytestmark = pytest.mark.usefixtures("clean_checkout")


def test_the_points_follow_the_profile_and_the_options():
    quick = SERIES["quick"]
    assert quick.lengths == (64, 128, 256, 512, 1024, 2048) and quick.length_batch == 64
    assert quick.batches == (1, 2, 4, 8, 16, 32, 64, 128, 256) and quick.batch_length == 256
    assert max(SERIES["full"].lengths) == 8192 and max(SERIES["full"].batches) == 1024
    points = plan_points(["lstm", "gru"], quick, task_batch=64)
    assert len(points) == 2 * (1 + 6 + 9)
    assert points[0] == CostPoint("lstm", "task", None, 64)
    assert CostPoint("gru", "length", 2048, 64) in points and CostPoint("gru", "batch", 256, 1) in points
    chosen = series_for("smoke", lengths=(32, 8, 8), batches=(2,), reps=9)
    assert chosen.lengths == (8, 32) and chosen.batches == (2,) and chosen.reps == 9
    with pytest.raises(ValueError, match="at least 5"):
        series_for("smoke", reps=4)
    ids = {p.point_id({"profile": "quick"}) for p in points}
    assert len(ids) == len(points) and all(cost.is_point_file(f"{cost.COST_DIR}/{i}.json") for i in ids)
    assert points[0].point_id({"profile": "quick"}) != points[0].point_id({"profile": "smoke"})


@pytest.mark.parametrize("argv, flag", [
    (["--tune"], "--tune"), (["--seeds", "2"], "--seeds"), (["--epochs", "1"], "--epochs"),
    (["--run-id", "gru-s0-00000000"], "--run-id"),
])
def test_options_of_the_training_grid_are_refused_in_one_line(capsys, tmp_path, argv, flag):
    code, _, err = run_cli(capsys, "--suite", "cost", *argv, "--profile", "smoke", "--out",
                           str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and f"drop {flag}" in err, err
    assert not (tmp_path / "o").exists()


def test_the_suite_options_are_its_own_and_checked(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--lengths", "8", "--profile", "smoke", "--out", str(tmp_path))
    assert code == 2 and "--lengths is an option of --suite cost" in err
    code, _, err = run_cli(capsys, "--suite", "cost", "--reps", "3", "--profile", "smoke",
                           "--out", str(tmp_path / "o"))
    assert code == 2 and "--reps must be at least 5" in err and err.count("\n") == 1


def test_the_interval_is_of_measured_times_and_never_below_zero():
    skewed = [0.1, 0.1, 0.1, 0.1, 0.1, 40.0]  # mean - 2 sd is far below zero
    stat = summarize_times(skewed)
    assert stat["low"] == pytest.approx(0.1) and stat["low"] >= 0 and stat["median"] == 0.1
    seven = summarize_times([5, 1, 2, 3, 4, 6, 7])
    assert (seven["low"], seven["median"], seven["high"]) == (1, 4, 7)
    assert seven["coverage"] == pytest.approx(1 - 2 / 128)
    nine = summarize_times(range(1, 10))
    assert (nine["low"], nine["high"]) == (2, 8) and nine["coverage"] >= 0.95


def test_rounds_visit_every_point_in_turn_and_an_ended_point_no_more():
    assert round_order("abc", 0) == ["a", "b", "c"] and round_order("abc", 1) == ["c", "b", "a"]
    run = PointRun(bench=None, point=CostPoint("gru", "length", 8, 2), inputs=[])
    run.train = {"status": "oom", "step_ms": None, "error": "out of memory"}
    assert run.ended and run.visit() is None and not run.infer_ms  # never touches its bench
    assert not PointRun(None, CostPoint("gru", "task", None, 2), []).ended


def test_the_rounds_split_into_sittings_as_evenly_as_they_divide():
    from dataclasses import replace

    from bench.suites.cost.series import sitting_rounds

    quick = SERIES["quick"]
    assert [len(r) for r in sitting_rounds(quick)] == [12, 12, 12, 13]
    assert [r.start for r in sitting_rounds(quick)] == [0, 12, 24, 36]
    assert sitting_rounds(SERIES["smoke"]) == [range(0, 6)]
    assert len(sitting_rounds(replace(quick, reps=5, sittings=9))) == 5  # never an empty one


def test_only_a_points_first_visit_warms_up_and_counts_its_peak(monkeypatch):
    from types import SimpleNamespace

    from bench.suites.cost import measure

    calls = {"train": 0, "infer": 0, "peak": 0}

    def count(name, result=None):
        def call(*_):
            calls[name] += 1
            return result
        return call

    monkeypatch.setattr(measure, "_train_rep", count("train", (0.001, 0.002, 0.003)))
    monkeypatch.setattr(measure, "_infer_rep", count("infer"))
    monkeypatch.setattr(measure, "held_tensors", lambda *_: 0)
    monkeypatch.setattr(measure, "phase_peak", lambda rep, *_: (rep(), count("peak")(), {})[2])
    model = SimpleNamespace(train=lambda: None, eval=lambda: None)
    bench = SimpleNamespace(self_fit=False, model=model, device=torch.device("cpu"),
                            trainer=SimpleNamespace(optimizer=None),
                            series=SimpleNamespace(warmup=2))
    run = PointRun(bench, CostPoint("gru", "length", 8, 2), inputs=[(torch.zeros(2, 8),) * 3])
    run.visit()  # a counted repetition, two warm-ups, the timed one: per phase
    assert calls == {"train": 4, "infer": 4, "peak": 2}
    run.visit()
    run.visit()  # later visits: the timed repetition alone
    assert calls == {"train": 6, "infer": 6, "peak": 2}
    assert len(run.train_ms) == 3 and len(run.infer_ms) == 3
    # A later sitting (a fresh process) carries the point on: it warms up again, counts no peak.
    later = PointRun(bench, run.point, run.inputs)
    later.absorb(run.state())
    later.visit()
    assert calls == {"train": 9, "infer": 9, "peak": 2} and len(later.train_ms) == 4


def test_counted_peak_memory_repeats_to_the_byte():
    x = torch.randn(256, 256)  # 256 KiB

    def step() -> None:
        y = x @ x
        z = y.relu()
        del y
        (z * 2).sum()

    peaks = []
    for _ in range(3):
        with LiveTensorBytes([x]) as counted:
            step()
        peaks.append(counted.peak)
    # x, z, z * 2 and the 4-byte sum at once (y was freed first): nothing else, every time
    assert peaks == [3 * 256 * 256 * 4 + 4] * 3


def _point(arch, axis, size, train_ms, memory_mb=10.0, status="ok"):
    stat = {"median": train_ms, "low": train_ms * 0.9, "high": train_ms * 1.1, "coverage": 0.98,
            "times": [train_ms]}  # fmt: skip
    phase = ({"status": "ok", "step_ms": stat, "peak_mb": memory_mb, "samples_per_s": 1.0}
             if status == "ok" else {"status": "oom", "step_ms": None})
    return {"arch": arch, "axis": axis, "length_T": None if axis == "task" else
            (size if axis == "length" else 256), "batch": size if axis == "batch" else 64,
            "device": "cpu", "environment": {"cpu_model": "test CPU"}, "status": status,
            "train": phase, "infer": phase, "kernels": None, "efficiency": {}}  # fmt: skip


def test_the_growth_fit_finds_a_known_exponent():
    slope, low, high = fit_slope([64, 128, 256, 512], [3 * t**1.5 for t in (64, 128, 256, 512)])
    assert slope == pytest.approx(1.5) and low <= 1.5 <= high
    noisy = [_point("gru", "length", t, 0.01 * t * (1.05 if i % 2 else 0.95))
             for i, t in enumerate((64, 128, 256, 512, 1024))]
    (growth,) = [g for g in growth_of(noisy, ["gru"]) if g.quantity == "train_time"]
    assert growth.low < 1.0 < growth.high and abs(growth.slope - 1.0) < 0.1 and growth.points == 5


def test_crossovers_and_out_of_memory_points_are_facts_of_the_records():
    points = [_point("lstm", "length", t, 0.001 * t**2) for t in (64, 128, 256, 512)]
    points += [_point("gru", "length", t, 0.1 * t) for t in (64, 128, 256, 512)]
    points.append(_point("gru", "length", 1024, 0, status="oom"))
    (crossing,) = [c for c in crossovers_of(points, ["lstm", "gru"]) if c.quantity == "train_time"]
    # lstm: 4.1, 16.4, 65.5, 262 ms; gru: 6.4, 12.8, 25.6, 51.2 ms
    assert (crossing.size, crossing.ahead, crossing.behind) == (128, "gru", "lstm")
    # Medians that swap within overlapping intervals are noise, not a crossover.
    close = [_point("rnn", "length", t, 10.0 + (0.5 if t > 128 else -0.5)) for t in (64, 128, 256, 512)]
    close += [_point("gru", "length", t, 10.0) for t in (64, 128, 256, 512)]
    assert crossovers_of(close, ["rnn", "gru"]) == []
    (facts,) = cost_facts(points, ["lstm", "gru"])
    assert facts.device == "cpu: test CPU" and facts.oom == [("gru", "length", 1024)]


def test_a_smoke_cost_run_measures_every_point_resumes_and_renders(capsys, tmp_path):
    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=60,
                                     n_per_class_test=20)  # fmt: skip
    out = tmp_path / "res"
    argv = ["--suite", "cost", "--profile", "smoke", "--archs", "bag_of_embeddings", "gru",
            "--lengths", "8,16", "--batches", "1,2", "--data", str(archive), "--out", str(out),
            "--no-progress"]  # fmt: skip
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    points = cost.load_points(out).points
    assert len(points) == 2 * (1 + 2 + 2) and {p["status"] for p in points} == {"ok"}
    gru_task = next(p for p in points if p["arch"] == "gru" and p["axis"] == "task")
    assert gru_task["kernels"]["train"]["recurrence"], gru_task["kernels"]
    assert gru_task["train"]["step_ms"]["low"] > 0 and len(gru_task["train"]["step_ms"]["times"]) == 6
    latency = next(p for p in points if p["arch"] == "gru" and p["axis"] == "batch" and p["batch"] == 1)
    assert latency["infer"]["latency_p95_ms"] is not None and len(latency["infer"]["step_ms"]["times"]) == 72
    summary = json.loads((out / "manifest.json").read_text())["cost_suite"]
    assert summary["measured_alone"] and len(summary["round_matmul_flops_per_s"]) == 6
    assert "cost: round 6/6: 10 point(s)" in err and "round 7/" not in err, err
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# rnnbench: what each architecture costs, measured alone (`smoke`, `cpu`)")
    assert "| **Code** | git " in report and "keeps the memory a step frees" in report
    assert "## Cost" in report and "`aten::gru`" in report and (out / "plots/cost_time_vs_T.png").is_file()
    # The smoke warning in the section's own words (its models are untrained: no word of epochs).
    from reports.cost import SMOKE_NOTE

    assert f"works, {SMOKE_NOTE} are no basis" in report and "trained for a couple" not in report
    # Resumed, nothing is measured again; --report-only renders the same report.
    code, _, err = run_cli(capsys, *argv, "--resume")
    assert code == 0 and "10 point(s) already measured, 0 to go" in err, err
    report = (out / "report.md").read_text(encoding="utf-8")
    # The header lists both commands in order, each with its commit and time; the manifest keeps them.
    invocations = json.loads((out / "manifest.json").read_text())["invocations"]
    assert [i["argv"][-1] for i in invocations] == ["--no-progress", "--resume"]
    assert all(isinstance(i["wall_time_s"], float) for i in invocations)
    row = next(line for line in report.splitlines() if line.startswith("| **Commands, in order**"))
    assert row.count("`run_all.py --suite cost") == 2 and "2. `run_all.py" in row and " min)" in row
    code, _, err = run_cli(capsys, "--report-only", "--out", str(out))
    assert code == 0 and (out / "report.md").read_text(encoding="utf-8") == report
    # A removed point is measured again on --resume, here in two fresh processes (sittings) that
    # pool their rounds: every repetition, the peak counted in the first; --overwrite removes
    # them all first.
    (out / cost.COST_DIR / f"{latency['point_id']}.json").unlink()
    code, _, err = run_cli(capsys, *argv, "--resume", "--sittings", "2")
    assert code == 0 and "9 point(s) already measured, 1 to go" in err, err
    assert "cost: sitting 2/2 (a fresh process): rounds 4-6 of 6" in err, err
    again = next(p for p in cost.load_points(out).points if p["point_id"] == latency["point_id"])
    assert len(again["infer"]["step_ms"]["times"]) == 72 and again["infer"]["peak_mb"] > 0
    assert again["train"]["peak_mb"] == latency["train"]["peak_mb"]  # counted to the byte
    summary = json.loads((out / "manifest.json").read_text())["cost_suite"]
    assert summary["series"]["sittings"] == 2 and len(summary["round_matmul_flops_per_s"]) == 6
    code, _, err = run_cli(capsys, *argv[:-3], "--lengths", "8", "--batches", "1", "--out",
                           str(out), "--no-progress", "--overwrite")  # fmt: skip
    assert code == 0, err
    assert len(cost.load_points(out).points) == 2 * 3


def test_a_folder_with_the_cost_suite_quotes_its_speed_and_memory_not_the_runs(capsys, tmp_path):
    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=60,
                                     n_per_class_test=20)  # fmt: skip
    out = tmp_path / "res"
    common = ["--profile", "smoke", "--archs", "bag_of_embeddings", "gru", "--data", str(archive),
              "--out", str(out), "--no-progress"]  # fmt: skip
    code, _, err = run_cli(capsys, *common, "--jobs", "2")
    assert code == 0, err
    grid_report = (out / "report.md").read_text(encoding="utf-8")
    # The grid alone: accuracy in the main table, its runs' speed and memory in their own, marked.
    results = grid_report.split("## Results", 1)[1].split("###", 1)[0]
    assert "Test acc %" in results and "samples/s" not in results and "†" not in results
    assert "### Speed and memory of the training runs" in grid_report
    assert "Train samples/s" in grid_report.split("### Speed and memory of the training runs")[1]
    code, _, err = run_cli(capsys, "--suite", "cost", *common, "--lengths", "8", "--batches", "1,2",
                           "--resume")  # fmt: skip
    assert code == 0, err
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "### Speed and memory of the training runs" not in report
    assert "### Speed and memory\n\nMeasured alone: the cost suite's" in report
    points = {p["arch"]: p for p in cost.load_points(out).points if p["axis"] == "task"}
    recommendation = report.split("## Which one should I use?", 1)[1].split("\n## ", 1)[0]
    assert "†" not in recommendation
    if "Most training samples/s" in recommendation:  # its figure is the cost suite's
        fastest = recommendation.split("**Most training samples/s: `", 1)[1].split("`", 1)[0]
        from reports.table import format_number

        samples = points[fastest]["train"]["samples_per_s"]
        assert f"`{fastest}`**, {format_number(samples, 'sig3')} samples/s" in recommendation
    assert "at batch 1, T = 16, measured alone" in recommendation
    # summary.csv keeps the training runs' own figures.
    assert "train_samples_per_s_mean" in (out / "summary.csv").read_text(encoding="utf-8")
