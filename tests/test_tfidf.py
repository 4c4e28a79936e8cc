"""The linear floor ``tfidf_logreg``: its features, its validation-chosen C, and its path through
the same executor, records, report and predictor as every other model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bench.grid.runner import plan_grid, run_grid
from bench.predict import Predictor
from bench.results import records
from bench.results.records import write_manifest
from data_pipeline import load_imdb
from models import SelfFitting, create_model, list_models, model_info
from reports import render_report
from tests.factories import small_run_config, synthetic_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return synthetic_archive(tmp_path_factory, n_train=300, n_test=150)


def small_config(**overrides):
    return small_run_config(epochs=2, **overrides)


@pytest.fixture(scope="module")
def data(archive):
    return load_imdb(small_config().data, archive, progress=False)


def fitted(data, **overrides):
    model = create_model(
        "tfidf_logreg", vocab_size=len(data.vocab), pad_index=data.pad_index, **overrides
    )
    return model, model.fit(data.train, data.val, seed=0)


def probabilities(model, split, pad_index):
    tokens, lengths = split.pad(np.arange(len(split)), pad_index)
    with torch.inference_mode():
        return torch.sigmoid(model.eval()(tokens, lengths)).numpy()


def test_registered_last_in_the_default_set_and_fits_itself():
    assert list_models()[-1] == list_models(default_only=True)[-1] == "tfidf_logreg"
    model = create_model("tfidf_logreg", vocab_size=50, pad_index=1)
    assert isinstance(model, SelfFitting) and model_info("tfidf_logreg").training == "self_fit"
    assert "dropout" not in model_info("tfidf_logreg").hyperparams
    assert model_info("tfidf_logreg").recurrent is False


def test_fit_beats_chance_and_reports_one_epoch(data):
    model, result = fitted(data)
    accuracy = ((probabilities(model, data.test, data.pad_index) > 0.5) == data.test.labels.numpy())
    assert accuracy.mean() > 0.9  # the generated reviews carry learnable sentiment words
    assert [entry["epoch"] for entry in result.history] == [1]
    assert result.chosen["C"] in model.c_grid and result.timed_s > 0
    # Parameters: one weight per kept feature, plus the bias; bigrams are among the features.
    n_features = model.feature_keys.numel()
    assert sum(p.numel() for p in model.parameters()) == n_features + 1
    assert int((model.feature_keys >= model.vocab_size).sum()) > 0


def test_c_is_the_argmin_of_validation_loss_and_follows_the_validation_split(data):
    model, result = fitted(data)
    # Each C fitted alone gives its validation loss; the grid must keep the lowest.
    losses = {c: fitted(data, c_grid=(c,))[1].history[0]["val_loss"] for c in model.c_grid}
    assert result.chosen["C"] == min(losses, key=losses.get)
    assert result.history[0]["val_loss"] == min(losses.values())
    # Flip the validation labels: the most confident fit becomes the worst, so the choice moves to
    # the strongest regularisation. Only the validation split can have caused that.
    flipped = dataclasses.replace(data.val, labels=1 - data.val.labels)
    flipped_result = model.fit(data.train, flipped, seed=0)
    assert flipped_result.chosen["C"] == min(model.c_grid) != result.chosen["C"]


def test_features_and_fit_agree_with_scikit_learn_on_the_same_ids(data):
    # scikit-learn's own TfidfVectorizer over the id sequences (one "word" per id) is the reference.
    model, result = fitted(data, c_grid=(4.0,))

    def texts(split):
        return [" ".join(f"w{i}" for i in split.tokens[split.offsets[r]:split.offsets[r + 1]].tolist())
                for r in range(len(split))]  # fmt: skip

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, token_pattern=r"\S+", lowercase=False)
    x_train = vectorizer.fit_transform(texts(data.train))
    assert x_train.shape[1] == model.feature_keys.numel()
    reference = LogisticRegression(C=4.0, solver="liblinear", random_state=0).fit(
        x_train, data.train.labels.numpy()
    )
    expected = reference.predict_proba(vectorizer.transform(texts(data.test)))[:, 1]
    np.testing.assert_allclose(probabilities(model, data.test, data.pad_index), expected, atol=2e-3)


def test_a_grid_with_the_floor_records_reports_and_predicts_like_any_other_row(archive, tmp_path):
    config = small_config()
    # The floor's inference memory is measured in a process of its own, as any row's; the bag
    # beside it skips that process (seconds).
    specs = [*plan_grid(["bag_of_embeddings"], 1, profile="smoke", device="cpu", threads=1,
                        config=small_config(**{"measure.infer_memory": False}),
                        data_path=str(archive)),
             *plan_grid(["tfidf_logreg"], 1, profile="smoke", config=config, device="cpu",
                        threads=1, data_path=str(archive))]  # fmt: skip
    write_manifest(tmp_path, {"profile": "smoke", "device": "cpu", "protocol": "fixed",
                              "archs": ["bag_of_embeddings", "tfidf_logreg"], "seeds": 1})  # fmt: skip
    outcome = run_grid(specs, tmp_path, progress=False, in_process=True, log=lambda _: None)
    assert outcome.failed == {}
    run_dir = tmp_path / records.RUNS_DIR / specs[1].run_id
    record = records.read_record(run_dir / records.RECORD_NAME)
    m = record["metrics"]
    assert record["spec"]["model"]["recurrent"] is False
    assert record["selected_hyperparams"]["C"] in model_info("tfidf_logreg").hyperparams["c_grid"]
    assert m["efficiency"] is None and m["epochs_run"] == m["best_epoch"] == 1
    assert len(record["history"]) == 1 and record["history"][0]["epoch"] == 1
    assert m["test_accuracy"] > 0.9 and m["train_time_s"] > 0
    assert m["train_tokens_per_s"] > m["train_samples_per_s"] > 0 and m["infer_samples_per_s"] > 0
    assert m["latency_ms_p95"] >= m["latency_ms_p50"] > 0
    assert m["infer_peak_mem_with_weights_mb"] > 0
    report = render_report(tmp_path).read_text()
    row = next(line for line in report.splitlines() if line.startswith("| `tfidf_logreg` |"))
    assert "FAIL" not in row and f"{m['test_accuracy'] * 100:.2f}" in row
    assert "## Hyperparameters chosen on validation" in report
    assert "(non-recurrent)" in report.split("`tfidf_logreg`: ", 1)[1].splitlines()[0]
    # The checkpoint reloads (weights_only) into a fresh model that gives the recorded test probs.
    predictor = Predictor(run_dir)
    data = load_imdb(config.data, archive, progress=False)
    np.testing.assert_allclose(
        probabilities(predictor.model, data.test, data.pad_index),
        np.load(run_dir / records.TEST_PROBS_NAME), atol=1e-6,
    )
    labels = [p.label for p in predictor.predict(["great wonderful superb", "awful terrible bad"])]
    assert all(label in ("positive", "negative") for label in labels)
