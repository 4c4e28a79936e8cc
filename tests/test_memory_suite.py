"""The memory suite: the sweep's decisions (read back from records), and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run_all
from bench.grid.runner import GridOutcome, plan_grid
from bench.results import records
from bench.run.config import RunSpec, profile_config
from bench.suites.memory.sweep import SUITE_DELTAS, SuiteConfig, run_suite, suite_overrides
from data_pipeline import make_synthetic_archive
from tests.factories import make_record

#: The largest T each (architecture, load) solves in the fake sweep below.
HORIZONS = {("rnn", (16, 2)): 16, ("gru", (16, 2)): 64, ("rnn", (4, 2)): 32, ("gru", (4, 2)): 128}
ARCHS = ["rnn", "gru", "bag_of_embeddings"]


def suite_specs() -> dict[str, RunSpec]:
    config = profile_config("quick", suite_overrides("quick", {}), task="memory")
    return {s.arch: s for s in plan_grid(ARCHS, 1, profile="quick", config=config, device="cpu",
                                          threads=1, task="memory")}


def fake_run(out: Path, planned_log: list[list[RunSpec]]):
    """A stand-in for run_grid: writes an ok record per spec whose test accuracy is 1.0 up to the
    architecture's horizon (HORIZONS) and 0.5 beyond it (floors: always 0.5)."""

    def run(planned: list[RunSpec]) -> GridOutcome:
        planned_log.append(planned)
        for spec in planned:
            data = spec.config.data
            horizon = HORIZONS.get((spec.arch, (data.alphabet, data.n_signals)), 0)
            record = make_record(spec.arch, spec.seed,
                                 metrics={"test_accuracy": 1.0 if data.distance <= horizon else 0.5})
            record.update(run_id=spec.run_id, task="memory", spec=spec.to_dict())
            records.write_record(out / records.RUNS_DIR / spec.run_id, record)
        return GridOutcome(ran=[s.run_id for s in planned])

    return run


def points(planned: list[RunSpec]) -> set[tuple[str, int, int, int]]:
    return {(s.arch, s.config.data.alphabet, s.config.data.distance, s.seed) for s in planned}


def test_each_architecture_leaves_the_sweep_at_its_first_failure(tmp_path):
    suite = SuiteConfig(loads=((16, 2), (4, 2)), first_distance=16, limit_distance=1024)
    planned: list[list[RunSpec]] = []
    outcome, state = run_suite(suite_specs(), suite, tmp_path, run=fake_run(tmp_path, planned),
                               log=lambda _: None)
    stages = [points(p) for p in planned]
    # T = 16: both recurrent models at both loads, and the floor at the first T.
    assert stages[0] == {(a, alpha, 16, 0) for a in ("rnn", "gru", "bag_of_embeddings")
                         for alpha in (16, 4)}
    # The series doubles while anything still solves: gru at 4 symbols solves 128, fails 256.
    assert state.distances == [16, 32, 64, 128, 256]
    assert ("rnn", 16, 64, 0) not in set().union(*stages[:-1])  # rnn failed 32 at 16 symbols
    assert state.last_solved == {((16, 2), "rnn"): 16, ((16, 2), "gru"): 64,
                                 ((4, 2), "rnn"): 32, ((4, 2), "gru"): 128}
    assert state.first_failed == {((16, 2), "rnn"): 32, ((16, 2), "gru"): 128,
                                  ((4, 2), "rnn"): 64, ((4, 2), "gru"): 256}
    # Last: seeds 1 and 2 at every change point, the floor at the last T, and what the gradient
    # probe reads (T = 64 of the first load) where the sweep did not get there: rnn's.
    changes = {(a, alpha, t) for (alpha, _), a, t in state.change_points()}
    assert stages[-1] == ({(a, alpha, t, seed) for a, alpha, t in changes for seed in (1, 2)}
                          | {("bag_of_embeddings", alpha, 256, 0) for alpha in (16, 4)}
                          | {("rnn", 16, 64, 0)})
    # Nothing runs twice.
    assert sum(map(len, stages)) == len(set().union(*stages))
    assert len(outcome.ran) == sum(map(len, planned)) and not outcome.failed


def test_the_sweep_stops_at_its_limit_and_when_nothing_solves(tmp_path):
    suite = SuiteConfig(loads=((4, 2),), first_distance=16, limit_distance=64)
    planned: list[list[RunSpec]] = []
    _, state = run_suite(suite_specs(), suite, tmp_path, run=fake_run(tmp_path, planned),
                         log=lambda _: None)
    assert state.distances == [16, 32, 64]  # gru still solves 64; the limit ends the series
    assert ((4, 2), "gru") not in state.first_failed
    nothing = SuiteConfig(loads=((16, 2),), first_distance=256, limit_distance=1024)
    _, state = run_suite(suite_specs(), nothing, tmp_path / "b", run=fake_run(tmp_path / "b", []),
                         log=lambda _: None)
    assert state.distances == [256]


def test_a_replayed_sweep_asks_for_the_same_runs(tmp_path):
    """--resume replays the sweep from the records: the same specs in the same stages (run_grid
    then skips those that succeeded)."""
    suite = SuiteConfig(loads=((16, 2),), first_distance=16, limit_distance=1024)
    first: list[list[RunSpec]] = []
    second: list[list[RunSpec]] = []
    run_suite(suite_specs(), suite, tmp_path, run=fake_run(tmp_path, first), log=lambda _: None)
    run_suite(suite_specs(), suite, tmp_path, run=fake_run(tmp_path, second), log=lambda _: None)
    assert [points(p) for p in first] == [points(p) for p in second]


@pytest.mark.parametrize(("argv", "message"), [
    (["--tune"], "drop --tune"),
    (["--seeds", "2"], "drop --seeds"),
    (["--task", "other"], "drop --task other"),
    (["--loads", "2-16"], "--loads expects N/A pairs"),
    (["--loads", "3/2"], "memory load 3 of 2"),
    (["--task", "imdb"], "drop --task imdb"),
    (["--loads", "2/4,2/8,2/4"], "--loads names 2/4 more than once"),
    (["--max-distance", "2"], "--max-distance 2 is below the suite's first T (4 in profile smoke)"),
])
def test_bad_suite_options_stop_with_one_line(capsys, tmp_path, argv, message):
    code = run_all.main(["--suite", "memory", "--profile", "smoke", "--out", str(tmp_path / "r"),
                         *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_the_smoke_suite_runs_end_to_end_and_resumes(capsys, tmp_path):
    out = tmp_path / "r"
    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=200,
                                     n_per_class_test=100)
    # An IMDb run first, so the gradient probe also reads IMDb and the notebook's table renders.
    assert run_all.main(["--profile", "smoke", "--archs", "gru", "--data", str(archive), "--out",
                         str(out), "--no-progress", "--set", "data.test_limit=none",
                         "--set", "data.max_len=40"]) == 0  # the probe reads 40-token reviews
    argv = ["--suite", "memory", "--profile", "smoke", "--archs", "gru,bag_of_embeddings",
            "--out", str(out), "--no-progress", "--jobs", "2", "--data", str(archive),
            "--allow-other-commit"]  # a test runs from a checkout with changes
    capsys.readouterr()
    assert run_all.main([*argv, "--resume"]) == 0
    # each run's log line names its T and load
    assert "gru seed 0 at T = 4, load 2 of 4 (" in capsys.readouterr().err
    manifest = json.loads((out / records.MANIFEST_NAME).read_text())
    held = records.load_folder(out).records
    suite = manifest["memory_suite"]
    assert manifest["tasks"] == ["imdb", "memory"] and suite["distances"][0] == 4
    assert suite["target_accuracy"] == SUITE_DELTAS["smoke"]["train.target_accuracy"]
    memory = [r for r in held if r.get("task") == "memory"]
    assert {r["spec"]["data"]["alphabet"] for r in memory} == {4, 8}
    assert {r["arch"] for r in memory} == {"gru", "bag_of_embeddings"}
    # The gradient probe read gru's run at the probe T (4) of the first load, and its IMDb run;
    # each at its start and trained.
    probes = {p["task"]: p for p in records.read_gradient_flow(out)["probes"]}
    assert (probes["memory"]["arch"], probes["memory"]["distance_T"]) == ("gru", 4)
    assert probes["imdb"]["arch"] == "gru" and probes["imdb"]["distance_T"] is None
    for probe in probes.values():
        assert probe["init"]["grad_norm"] != probe["trained"]["grad_norm"]
    report = (out / "report.md").read_text()
    assert "### Memory horizons" in report and "## Gradient flow" in report
    assert "The notebook's table, measured" in report
    # a smoke folder says so in each section that draws conclusions: IMDb's recommendation, the
    # horizons, the gradient flow and the notebook's table
    assert report.count("**This is a `smoke` run**") == 4
    capsys.readouterr()
    # Resumed, the sweep replays from the records and runs nothing again.
    assert run_all.main([*argv, "--resume"]) == 0
    assert len(records.load_folder(out).records) == len(held)
    assert "0 to go" in capsys.readouterr().err
    # A corrupt record of the sweep: the line says what happens to it, and it happens.
    damaged = next(r for r in memory if r["arch"] == "bag_of_embeddings")["run_id"]
    (out / records.RUNS_DIR / damaged / records.RECORD_NAME).write_text("{")
    assert run_all.main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"runs/{damaged}/record.json" in err and "the sweep runs it again if it plans" in err
    assert f"({damaged})" in err  # its start line: it ran again
    assert records.read_record(out / records.RUNS_DIR / damaged / records.RECORD_NAME)["status"] == "ok"
