"""The memory suite: the sweep's decisions (read back from records), and the command end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import run_all
from bench.grid.runner import GridOutcome, plan_grid
from bench.results import records
from bench.run.config import RunSpec, apply_overrides, profile_config
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


#: Where a run beyond its horizon is cut off while still improving (budget-bound) rather than
#: stopped early, and the largest T it solves given twice the epochs (rnn at 4 symbols: still
#: budget-bound beyond 32, and no better).
STILL_LEARNING = {("gru", (16, 2)): 128, ("rnn", (4, 2)): 32}


def learning_run(out: Path, executed: list[RunSpec]):
    """A stand-in for run_grid with budget-bound runs: as :func:`fake_run` (HORIZONS), but a
    failed run of a pair in STILL_LEARNING ends at its epoch cap still improving, and solves up
    to STILL_LEARNING's T when given more epochs than the profile's. It skips a spec whose record
    succeeded, as run_grid does on --resume, and lists those it ran in ``executed``."""
    base_epochs = suite_specs()["gru"].config.train.epochs

    def run(planned: list[RunSpec]) -> GridOutcome:
        ran = []
        for spec in planned:
            path = out / records.RUNS_DIR / spec.run_id / records.RECORD_NAME
            if path.is_file() and records.read_record(path)["status"] == "ok":
                continue
            executed.append(spec)
            ran.append(spec.run_id)
            data, epochs = spec.config.data, spec.config.train.epochs
            key = (spec.arch, (data.alphabet, data.n_signals))
            horizon = HORIZONS.get(key, 0)
            if epochs > base_epochs:
                horizon = max(horizon, STILL_LEARNING.get(key, 0))
            accuracy = 1.0 if data.distance <= horizon else 0.6
            bound = accuracy < 1.0 and key in STILL_LEARNING
            record = make_record(spec.arch, spec.seed, metrics={
                "test_accuracy": accuracy, "best_epoch": epochs if bound else 2})
            record["metrics"]["epochs_run"] = epochs if bound else 2 + spec.config.train.patience
            record.update(run_id=spec.run_id, task="memory", spec=spec.to_dict(),
                          stop_reason="epochs" if bound else "early_stop" if accuracy < 1.0
                          else "target_reached")  # fmt: skip
            records.write_record(out / records.RUNS_DIR / spec.run_id, record)
        return GridOutcome(ran=ran)

    return run


def extensions(executed: list[RunSpec]) -> set[tuple[str, int, int, int, int]]:
    """(arch, alphabet, T, seed, epochs) of each budget extension that ran."""
    return {(s.arch, s.config.data.alphabet, s.config.data.distance, s.seed, s.config.train.epochs)
            for s in executed if s.config.train.extends_epochs}  # fmt: skip


def test_a_budget_bound_failure_is_extended_once_and_its_extension_decides(tmp_path):
    suite = SuiteConfig(loads=((16, 2), (4, 2)), first_distance=16, limit_distance=1024,
                        seeds_at_change=2)  # fmt: skip
    executed: list[RunSpec] = []
    outcome, state = run_suite(suite_specs(), suite, tmp_path, run=learning_run(tmp_path, executed),
                               log=lambda _: None)  # fmt: skip
    base = suite_specs()["gru"].config.train.epochs
    # gru at 2 of 16 fails T = 128 at its epoch cap still improving: run once more at 2x the
    # epochs, it solves 128, and the chain goes on to fail 256 (cut off again: extended once
    # more, at 256 only, and never the extension itself). rnn at 2 of 4: budget-bound beyond 32,
    # where twice the epochs change nothing. rnn at 2 of 16 and gru at 2 of 4 stop early: no
    # extension.
    assert extensions(executed) == {
        ("gru", 16, 128, 0, 2 * base), ("gru", 16, 256, 0, 2 * base), ("rnn", 4, 64, 0, 2 * base),
        # the extra seeds where the result changes, each failing its base run cut off likewise
        ("gru", 16, 128, 1, 2 * base), ("gru", 16, 256, 1, 2 * base), ("rnn", 4, 64, 1, 2 * base),
    }
    assert all(s.config.train.extends_epochs == base for s in executed if s.config.train.extends_epochs)
    assert state.last_solved[((16, 2), "gru")] == 128 and state.first_failed[((16, 2), "gru")] == 256
    assert state.last_solved[((4, 2), "rnn")] == 32 and state.first_failed[((4, 2), "rnn")] == 64
    # stopped early: decided by its own run
    assert state.first_failed[((16, 2), "rnn")] == 32 and state.first_failed[((4, 2), "gru")] == 256
    assert not any(s.arch == "bag_of_embeddings" and s.config.train.extends_epochs for s in executed)
    assert len(state.extended) == 6 and len(outcome.ran) == len(executed)
    # The extension is a run of its own, beside the run it extends, with that run's settings.
    from bench.results.folder import settings_of
    from bench.suites.memory.sweep import at, extension

    spec = at(suite_specs()["gru"], 128, (16, 2))
    longer = extension(spec, suite)
    assert longer.run_id != spec.run_id and longer.config.train.epochs == 2 * base
    assert settings_of(longer.to_dict()) == settings_of(spec.to_dict())
    other = dataclasses.replace(longer, config=apply_overrides(longer.config, {"train.extends_epochs": 5}))
    assert settings_of(other.to_dict())["train.epochs"] == 5  # extends another budget: refused


def test_a_resumed_sweep_runs_no_extension_again(tmp_path):
    suite = SuiteConfig(loads=((16, 2),), first_distance=16, limit_distance=1024, seeds_at_change=2)
    first: list[RunSpec] = []
    run_suite(suite_specs(), suite, tmp_path, run=learning_run(tmp_path, first), log=lambda _: None)
    assert extensions(first)
    again: list[RunSpec] = []
    _, state = run_suite(suite_specs(), suite, tmp_path, run=learning_run(tmp_path, again),
                         log=lambda _: None)  # fmt: skip
    assert again == [] and state.last_solved[((16, 2), "gru")] == 128  # decided from the records
    # Without its extension's record, a resume runs that one alone.
    gone = next(s for s in first if s.config.train.extends_epochs and s.config.data.distance == 128)
    (tmp_path / records.RUNS_DIR / gone.run_id / records.RECORD_NAME).unlink()
    _, state = run_suite(suite_specs(), suite, tmp_path, run=learning_run(tmp_path, again),
                         log=lambda _: None)  # fmt: skip
    assert [s.run_id for s in again] == [gone.run_id] and state.last_solved[((16, 2), "gru")] == 128


def test_no_extension_when_the_suite_declares_none(tmp_path):
    suite = SuiteConfig(loads=((16, 2),), first_distance=16, limit_distance=1024, extension_factor=1)
    executed: list[RunSpec] = []
    _, state = run_suite(suite_specs(), suite, tmp_path, run=learning_run(tmp_path, executed),
                         log=lambda _: None)  # fmt: skip
    assert not extensions(executed) and state.first_failed[((16, 2), "gru")] == 128
    with pytest.raises(ValueError, match="extension factor must be >= 1"):
        SuiteConfig(extension_factor=0)


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
