"""The tuned protocol: the grid, the choice on validation loss, test never read, the final specs."""

from __future__ import annotations

import dataclasses
import json

import pytest

import run_all
from bench.grid import tune as bench_tune
from bench.grid.runner import plan_grid
from bench.grid.tune import (
    DROPOUT_KEY,
    LR_KEY,
    TUNING_NAME,
    TuneConfig,
    apply_choices,
    candidate_settings,
    choose,
    tune_grid,
    tuned_keys,
)
from bench.results import records
from bench.run.config import profile_config
from bench.run.trainer import Trainer
from data_pipeline import load_imdb
from tests.factories import small_run_config, synthetic_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return synthetic_archive(tmp_path_factory, n_train=150, n_test=60)


def small_config():
    return small_run_config(epochs=4, vocab_size=300)


def specs_for(archs, archive, seeds=1):
    return plan_grid(archs, seeds, profile="smoke", config=small_config(), device="cpu",
                     threads=1, data_path=str(archive))  # fmt: skip


def test_the_default_grid_is_lr_times_third_one_three_by_dropout_times_one_half():
    config = profile_config("quick", {"train.lr": "3e-3", "model.dropout": "0.3"})
    grid = candidate_settings(config, TuneConfig(), [LR_KEY, DROPOUT_KEY])
    assert grid == [
        {LR_KEY: 0.001, DROPOUT_KEY: 0.3}, {LR_KEY: 0.001, DROPOUT_KEY: 0.15},
        {LR_KEY: 0.003, DROPOUT_KEY: 0.3}, {LR_KEY: 0.003, DROPOUT_KEY: 0.15},
        {LR_KEY: 0.009, DROPOUT_KEY: 0.3}, {LR_KEY: 0.009, DROPOUT_KEY: 0.15},
    ]  # fmt: skip
    assert candidate_settings(config, TuneConfig(), [LR_KEY]) == [
        {LR_KEY: 0.001}, {LR_KEY: 0.003}, {LR_KEY: 0.009}
    ]
    # Without dropout, halving it gives the same value: tried once.
    no_dropout = profile_config("quick", {"train.lr": "3e-3", "model.dropout": "0"})
    assert len(candidate_settings(no_dropout, TuneConfig(), [LR_KEY, DROPOUT_KEY])) == 3
    assert TuneConfig().trial_epochs(config) == 2 and TuneConfig(epochs=1).trial_epochs(config) == 1


def test_only_the_settings_a_model_uses_are_tuned(archive):
    by_arch = {spec.arch: tuned_keys(spec)
               for spec in specs_for(["gru", "bag_of_embeddings", "tfidf_logreg"], archive)}
    assert by_arch == {"gru": [LR_KEY, DROPOUT_KEY], "bag_of_embeddings": [LR_KEY, DROPOUT_KEY],
                       "tfidf_logreg": []}  # fmt: skip


def test_the_choice_is_the_argmin_of_validation_loss_and_failures_never_win():
    trials = [
        {"settings": {LR_KEY: 0.1}, "val_loss": 0.50},
        {"settings": {LR_KEY: 0.2}, "val_loss": None},  # diverged
        {"settings": {LR_KEY: 0.3}, "val_loss": 0.41},
        {"settings": {LR_KEY: 0.4}, "val_loss": 0.41},  # a tie keeps the first
    ]
    assert choose(trials) == {LR_KEY: 0.3}
    assert choose([{"settings": {LR_KEY: 0.2}, "val_loss": None}]) is None


def test_tuning_never_reads_test_and_the_final_specs_carry_the_choice(archive, tmp_path, monkeypatch):
    data = load_imdb(small_config().data, archive, progress=False)
    # No test split at all: any read of it in a trial would fail loudly.
    blind = dataclasses.replace(data, test=None)
    evaluated = []
    real_evaluate = Trainer.evaluate

    def spy(self, split, **kwargs):
        evaluated.append(split.name)
        return real_evaluate(self, split, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", spy)
    specs = specs_for(["bag_of_embeddings", "tfidf_logreg"], archive, seeds=2)
    grid = TuneConfig(lr_factors=(0.2, 1.0, 5.0), dropout_factors=(1.0,), epochs=1)
    chosen = tune_grid(specs, blind, tmp_path, grid, progress=False, log=lambda _: None)
    assert set(evaluated) == {"val"} and len(evaluated) == 3  # three one-epoch trials

    saved = json.loads((tmp_path / TUNING_NAME).read_text())
    trials = saved["trials"]
    assert [t["settings"][LR_KEY] for t in trials] == [0.001, 0.005, 0.025]
    best = min(trials, key=lambda t: t["val_loss"])
    assert chosen == {"bag_of_embeddings": best["settings"]} == saved["chosen"]
    assert all(t["epochs"] == 1 and t["arch"] == "bag_of_embeddings" for t in trials)

    final = apply_choices(specs, chosen)
    for spec in final:
        if spec.arch == "bag_of_embeddings":
            assert spec.config.train.lr == best["settings"][LR_KEY]
            assert spec.config.model.dropout == best["settings"][DROPOUT_KEY]
            assert spec.config.train.epochs == 4  # the final runs keep the profile's epochs
        else:
            assert spec == specs[[s.run_id for s in specs].index(spec.run_id)]

    # A resumed tuning reuses the recorded trials instead of training again.
    monkeypatch.setattr(bench_tune, "run_trial", lambda *a, **k: pytest.fail("trial re-run"))
    assert tune_grid(specs, blind, tmp_path, grid, progress=False, log=lambda _: None) == chosen


def test_run_all_tune_writes_a_tuned_manifest_and_report(capsys, tmp_path, archive):
    out = tmp_path / "res"
    argv = ["--profile", "smoke", "--archs", "bag_of_embeddings,tfidf_logreg", "--data",
            str(archive), "--out", str(out), "--no-progress", "--set", "data.train_limit=none",
            "--set", "data.test_limit=none", "--set", "measure.infer_memory=false",
            "--tune", "--tune-epochs", "1"]  # fmt: skip
    code = run_all.main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    manifest = records.read_manifest(out)
    assert manifest["protocol"] == "tuned"
    chosen = manifest["tuning"]["chosen"]
    assert list(chosen) == ["bag_of_embeddings"] and manifest["tuning"]["trial_epochs"] == 1
    by_arch = {r["arch"]: r for r in records.load_records(out)}
    assert by_arch["bag_of_embeddings"]["spec"]["train"]["lr"] == chosen["bag_of_embeddings"][LR_KEY]
    assert by_arch["bag_of_embeddings"]["spec"]["model"]["dropout"] == (
        chosen["bag_of_embeddings"][DROPOUT_KEY]
    )
    report = (out / "report.md").read_text()
    assert "tuned: hyperparameters chosen per architecture on the validation split" in report
    section = report.split("## Hyperparameters chosen on validation", 1)[1].split("\n## ", 1)[0]
    assert "| `bag_of_embeddings` |" in section and "`--tune` trials" in section
    assert "| `tfidf_logreg` |" in section and "its own fit" in section
    # The folder is tuned: resuming it without --tune is refused rather than mixing protocols.
    code = run_all.main([a for a in argv if a not in ("--tune", "--tune-epochs", "1")]
                        + ["--resume"])  # fmt: skip
    assert code == 2 and "tuned protocol" in capsys.readouterr().err


def test_two_jobs_run_the_trials_of_one_and_choose_the_same(archive, tmp_path):
    # run_all.py --tune --jobs 2: trials in two child processes at once, same numbers
    data = load_imdb(small_config().data, archive, progress=False)
    specs = specs_for(["rnn", "bag_of_embeddings"], archive)
    grid = TuneConfig(lr_factors=(0.2, 1.0), dropout_factors=(1.0,), epochs=1)
    chosen = {}
    saved = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        out.mkdir()
        chosen[jobs] = tune_grid(specs, data, out, grid, progress=False, jobs=jobs, log=lambda _: None)
        saved[jobs] = json.loads((out / TUNING_NAME).read_text())
    assert chosen[1] == chosen[2] and set(chosen[1]) == {"rnn", "bag_of_embeddings"}
    by_jobs = {jobs: [(t["trial_id"], t["val_loss"], t["best_epoch"]) for t in saved[jobs]["trials"]]
               for jobs in (1, 2)}  # fmt: skip
    assert by_jobs[1] == by_jobs[2] and len(by_jobs[1]) == 4  # in grid order, whatever the finish
    assert {t["concurrent_runs"] for t in saved[1]["trials"]} == {1}
    # The first two start together; a later one shares the machine unless both others had ended.
    assert [t["concurrent_runs"] for t in saved[2]["trials"][:2]] == [2, 2]


@pytest.mark.parametrize("content", [
    b'{"trials": [', b"not json", b"\xff\xfe{}", b"[]", b'{"trials": {}}', b'{"trials": [1]}',
    b'{"trials": [{"trial_id": "x", "settings": {"train.lr": 0.01}}]}',
    b'{"trials": [{"trial_id": "x", "settings": {}, "val_loss": "low", "error": null}]}',
    # a failed trial with a loss (choose() would rank it), an error without a type, NaN
    b'{"trials": [{"trial_id": "x", "settings": {}, "val_loss": 0.5, "error": {"type": "oom"}}]}',
    b'{"trials": [{"trial_id": "x", "settings": {}, "val_loss": null, "error": {"type": 3}}]}',
    b'{"trials": [{"trial_id": "x", "settings": {}, "val_loss": NaN, "error": null}]}',
    b'{"trials": [{"trial_id": "x", "settings": {"train.lr": true}, "val_loss": 1, "error": null}]}',
    b'{"trials": [{"trial_id": "x", "settings": {}, "val_loss": 0.5}]}',
])
def test_a_damaged_tuning_file_is_named_with_what_to_do(tmp_path, content):
    from bench.grid.tune import TUNING_NAME, _read_trials
    from bench.results import records

    (tmp_path / TUNING_NAME).write_bytes(content)
    with pytest.raises(records.RecordError, match=f"{TUNING_NAME}.*remove it to run the trials again"):
        _read_trials(tmp_path / TUNING_NAME)


def test_a_tuning_file_as_tuning_writes_it_is_read(tmp_path):
    import json

    from bench.grid.tune import TUNING_NAME, _read_trials

    trials = [{"trial_id": "a", "settings": {"train.lr": 0.01}, "val_loss": 0.5, "error": None},
              {"trial_id": "b", "settings": {"train.lr": 0.03}, "val_loss": None,
               "error": {"type": "diverged", "message": "m"}}]
    (tmp_path / TUNING_NAME).write_text(json.dumps({"trials": trials}))
    assert _read_trials(tmp_path / TUNING_NAME) == {"a": trials[0], "b": trials[1]}


def test_a_damaged_trial_is_named_by_its_place_in_the_file(tmp_path):
    good = {"trial_id": "a", "settings": {"train.lr": 0.01}, "val_loss": 0.5, "error": None}
    bad = {**good, "trial_id": "b", "val_loss": None}  # neither finished nor failed
    (tmp_path / TUNING_NAME).write_text(json.dumps({"trials": [good, bad]}))
    with pytest.raises(records.RecordError, match="damaged \\(trial 2 of 2 lacks"):
        bench_tune._read_trials(tmp_path / TUNING_NAME)


def test_a_trial_whose_settings_are_not_those_of_its_id_stops_tuning_and_the_file_is_kept(
        archive, tmp_path, monkeypatch):
    specs = specs_for(["bag_of_embeddings"], archive)
    grid = TuneConfig(lr_factors=(1.0, 5.0), dropout_factors=(1.0,), epochs=1)
    trials = [{"trial_id": bench_tune.trial_spec(specs[0], settings, grid).run_id,
               "settings": settings, "val_loss": 0.5, "error": None}
              for settings in candidate_settings(specs[0].config, grid, tuned_keys(specs[0]))]
    trials[1]["settings"] = dict(trials[0]["settings"])  # edited by hand: its id says otherwise
    text = json.dumps({"trials": trials})
    (tmp_path / TUNING_NAME).write_text(text)
    monkeypatch.setattr(bench_tune, "run_trial", lambda *a, **k: pytest.fail("trial re-run"))
    with pytest.raises(records.RecordError, match=f"{TUNING_NAME} is damaged .* its id stands for"
                                                  ".*remove it to run the trials again"):
        tune_grid(specs, None, tmp_path, grid, progress=False, log=lambda _: None)
    assert (tmp_path / TUNING_NAME).read_text() == text  # the first trial was not rewritten alone


def test_a_trial_whose_model_cannot_be_allocated_is_an_oom_outcome_and_a_bug_propagates(
        archive, monkeypatch):
    data = load_imdb(small_config().data, archive, progress=False)
    (spec,) = specs_for(["bag_of_embeddings"], archive)

    def too_big(*_args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 9000000000000 bytes.")

    monkeypatch.setattr(bench_tune, "initial_model", too_big)
    trial = bench_tune.run_trial(spec, {"train.lr": 1e-3}, data, progress=False)
    assert trial["error"]["type"] == "oom" and trial["val_loss"] is None
    assert "can't allocate memory" in trial["error"]["message"]

    def bug(*_args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(bench_tune, "initial_model", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        bench_tune.run_trial(spec, {"train.lr": 1e-3}, data, progress=False)
