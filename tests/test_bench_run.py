"""The trainer, the executor and the grid runner, end to end on a small generated archive."""


import numpy as np
import pytest
import torch

from bench.grid.runner import plan_grid, run_grid
from bench.predict import Predictor
from bench.results import records
from bench.results.metrics import METRICS
from bench.results.records import write_manifest
from bench.run import execute as bench_executor
from bench.run.config import RunSpec
from bench.run.execute import cpu_inference_peak_mb, execute_run
from bench.run.trainer import DivergedError, Trainer
from data_pipeline import EncodedSplit, load_imdb
from models import create_model, model_info
from models.bag_of_embeddings import BagOfEmbeddings
from tests.factories import small_run_config, synthetic_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return synthetic_archive(tmp_path_factory, n_train=300, n_test=150)


def small_config(**overrides):
    return small_run_config(epochs=3, **overrides)


def small_trainer(archive, arch="gru", clock=None, **overrides):
    """A seeded small model of ``arch`` with its trainer, and the data, under ``small_config``."""
    cfg = small_config(**overrides)
    data = load_imdb(cfg.data, archive, progress=False)
    torch.manual_seed(0)
    model = create_model(arch, vocab_size=len(data.vocab), pad_index=data.pad_index,
                         embedding_dim=16, hidden_dim=16, num_layers=1, dropout=0.0)
    extra = {"clock": clock} if clock is not None else {}
    trainer = Trainer(model, cfg.train, cfg.measure, torch.device("cpu"),
                      pad_index=data.pad_index, progress=False, **extra)
    return trainer, data, cfg


def test_trainer_learns_the_synthetic_task_and_selects_on_validation(archive):
    trainer, data, _ = small_trainer(archive)
    model = trainer.model
    fit = trainer.fit(data.train, data.val, seed=0)
    assert fit.epochs_run == len(fit.history) == 3
    best = min(fit.history, key=lambda h: h["val_loss"])
    assert fit.best_epoch == best["epoch"]
    assert fit.history[-1]["train_loss"] < fit.history[0]["train_loss"]
    model.load_state_dict(fit.best_state)
    test = trainer.evaluate(data.test)
    assert test.accuracy > 0.8  # the generated reviews carry learnable sentiment words
    assert test.probs.shape == (len(data.test),) and test.probs.dtype == np.float32
    # probabilities come back in split order: check against a direct forward pass on review 0
    tokens, lengths = data.test.pad([0], data.pad_index)
    with torch.inference_mode():
        direct = torch.sigmoid(model.eval()(tokens, lengths)).item()
    assert test.probs[0] == pytest.approx(direct, abs=1e-5)
    assert fit.train_samples_per_s > 0 and fit.steady_tokens > fit.steady_samples


def test_early_stopping_stops_after_patience_epochs_without_improvement(archive):
    cfg = small_config(**{"train.epochs": "10", "train.patience": "1", "train.lr": "0.5"})
    data = load_imdb(cfg.data, archive, progress=False)
    torch.manual_seed(0)
    model = create_model("bag_of_embeddings", vocab_size=len(data.vocab), pad_index=data.pad_index)
    fit = Trainer(model, cfg.train, cfg.measure, torch.device("cpu"), pad_index=data.pad_index,
                  progress=False).fit(data.train, data.val, seed=0)
    losses = [h["val_loss"] for h in fit.history]
    assert fit.stop_reason in ("early_stop", "epochs")
    if fit.stop_reason == "early_stop":
        assert losses[-1] >= min(losses[:-1])
        assert fit.epochs_run < 10


@pytest.mark.parametrize("target", ["0.0", "0.05"])
def test_a_target_accuracy_stops_training_once_validation_reaches_it(archive, target):
    cfg = small_config(**{"train.epochs": "4", "train.patience": "4",
                          "train.target_accuracy": target})
    data = load_imdb(cfg.data, archive, progress=False)
    torch.manual_seed(0)
    model = create_model("bag_of_embeddings", vocab_size=len(data.vocab), pad_index=data.pad_index)
    fit = Trainer(model, cfg.train, cfg.measure, torch.device("cpu"), pad_index=data.pad_index,
                  progress=False).fit(data.train, data.val, seed=0)
    if target == "0.0":  # disabled: every epoch runs
        assert (fit.stop_reason, fit.epochs_run) == ("epochs", 4)
    else:  # any model beats 5% accuracy on balanced labels after one epoch
        assert (fit.stop_reason, fit.epochs_run) == ("target_reached", 1)


def test_a_diverging_loss_raises(archive):
    cfg = small_config()
    data = load_imdb(cfg.data, archive, progress=False)
    model = create_model("bag_of_embeddings", vocab_size=len(data.vocab), pad_index=data.pad_index)
    with torch.no_grad():
        model.get_parameter(next(n for n, _ in model.named_parameters())).fill_(float("nan"))
    trainer = Trainer(model, cfg.train, cfg.measure, torch.device("cpu"), pad_index=data.pad_index,
                      progress=False)
    with pytest.raises(DivergedError, match="loss became nan"):
        trainer.fit(data.train, data.val, seed=0)


def test_execute_run_writes_a_complete_record_and_a_loadable_checkpoint(archive, tmp_path):
    spec = RunSpec("lstm", 0, "smoke", "cpu", 1, small_config(), data_path=str(archive))
    record = execute_run(spec, tmp_path / spec.run_id, progress=False)
    assert record["status"] == "ok", record["error"]
    saved = records.read_record(tmp_path / spec.run_id / "record.json")
    assert saved["run_id"] == spec.run_id
    assert saved["spec"]["model"]["recurrent"] is True and saved["spec"]["model"]["training"] == "gradient"
    assert saved["spec"]["model"]["flops_per_token"] == model_info("lstm").declared_flops_per_token(
        **{k: saved["spec"]["model"][k] for k in model_info("lstm").hyperparams})
    m = saved["metrics"]
    assert 0.5 < m["test_accuracy"] <= 1 and 0 < m["test_roc_auc"] <= 1
    assert m["param_count"] > 0 and m["train_tokens_per_s"] > m["train_samples_per_s"] > 0
    assert m["latency_ms_p95"] >= m["latency_ms_p50"] > 0
    assert 0 < m["efficiency"] < 1
    assert set(METRICS) <= set(m)  # every registered metric is computed
    assert m["infer_peak_mem_with_weights_mb"] > 0
    assert saved["data"]["n_test"] == 300 and saved["environment"]["torch"] == torch.__version__
    probs = np.load(tmp_path / spec.run_id / "test_probs.npy")
    labels = np.load(tmp_path / spec.run_id / "test_labels.npy")
    assert probs.shape == labels.shape == (300,)
    assert ((probs > 0.5) == labels).mean() == pytest.approx(m["test_accuracy"])
    # The run learned the generated sentiment words, so the predictor, which re-tokenizes raw text
    # with the run's vocabulary, must get reviews made of them right.
    assert m["test_accuracy"] > 0.8
    predictions = Predictor(tmp_path / spec.run_id).predict(
        ["great wonderful excellent superb " * 5, "awful terrible boring worst " * 5]
    )
    assert [p.label for p in predictions] == ["positive", "negative"]
    assert predictions[0].probability > 0.5 > predictions[1].probability


def test_a_nan_run_is_recorded_as_failed_and_the_grid_goes_on(archive, tmp_path, monkeypatch):
    real_fit = Trainer.fit

    def diverge_for_bag(self, *args, **kwargs):
        if isinstance(self.model, BagOfEmbeddings):
            raise DivergedError("training loss became nan in epoch 1")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", diverge_for_bag)
    # No CPU inference-memory process per run (seconds each; measured in the test above).
    specs = plan_grid(["bag_of_embeddings", "gru"], 1, profile="smoke",
                      config=small_config(**{"measure.infer_memory": False}), device="cpu",
                      threads=1, data_path=str(archive))  # fmt: skip
    write_manifest(tmp_path, {"profile": "smoke"})
    outcome = run_grid(specs, tmp_path, progress=False, in_process=True, log=lambda m: None)
    loaded = {r["arch"]: r for r in records.load_records(tmp_path)}
    assert outcome.ran == [s.run_id for s in specs]
    assert loaded["bag_of_embeddings"]["status"] == "failed"
    assert loaded["bag_of_embeddings"]["error"] == {
        "type": "nan_loss", "message": "DivergedError: training loss became nan in epoch 1"}
    assert outcome.failed == {specs[0].run_id: "nan_loss"}
    assert loaded["gru"]["status"] == "ok"
    # resume retries the failed run, never the successful one
    monkeypatch.setattr(Trainer, "fit", real_fit)
    logged = []
    again = run_grid(specs, tmp_path, resume=True, progress=False, in_process=True, log=logged.append)
    assert again.ran == [specs[0].run_id] and again.skipped == [specs[1].run_id]
    assert again.failed == {}
    assert f"1 to go, retrying {specs[0].run_id} (nan_loss)" in logged[0]
    assert records.read_record(tmp_path / "runs" / specs[0].run_id / "record.json")["status"] == "ok"


def test_a_child_that_dies_leaves_a_crash_record(archive, tmp_path, monkeypatch):
    spec = RunSpec("gru", 0, "smoke", "cpu", 1, small_config(), data_path=str(archive))
    from bench.grid import runner

    runner.write_failure_record(spec, tmp_path / spec.run_id, runner.crash_error(-9), 2)
    record = records.read_record(tmp_path / spec.run_id / "record.json")
    assert record["concurrent_runs"] == 2
    # killed, not "oom": nothing says it ran out of memory, and --resume must retry it
    assert record["status"] == "failed" and record["error"]["type"] == "killed"
    assert "signal 9 (SIGKILL)" in record["error"]["message"]


def test_a_run_with_no_timed_batches_fails_before_writing_artifacts(archive, tmp_path, monkeypatch):
    real_fit = Trainer.fit

    def untimed(self, *args, **kwargs):
        fit = real_fit(self, *args, **kwargs)
        fit.steady_time_s = 0.0  # as if the train split had no batch after the warm-up
        return fit

    monkeypatch.setattr(Trainer, "fit", untimed)
    spec = RunSpec("bag_of_embeddings", 0, "smoke", "cpu", 1, small_config(**{"train.epochs": 1}),
                   data_path=str(archive))
    record = execute_run(spec, tmp_path / spec.run_id, progress=False)
    assert record["status"] == "failed" and "no steady-state" in record["error"]["message"]
    assert sorted(p.name for p in (tmp_path / spec.run_id).iterdir()) == ["record.json"]
    assert record["artifacts"] == {}


@pytest.mark.parametrize(("lr", "message"), [
    (1e6, "exceeds 10x the first batch's"),  # trains, but to losses in the millions
    (1e38, "makes Adam's first step"),  # torch would raise an overflow error inside Adam
])
def test_a_diverging_loss_is_caught_by_the_bound_not_only_by_nan(archive, lr, message):
    trainer, data, _ = small_trainer(archive, "rnn", **{"train.lr": lr, "train.epochs": 1})
    with pytest.raises(DivergedError, match=message) as caught:
        trainer.fit(data.train, data.val, seed=0)
    assert caught.value.kind == "diverged"
    assert bench_executor.error_of(caught.value)["type"] == "diverged"


def test_the_bound_is_checked_at_the_running_loss_the_progress_bar_reads(archive):
    # A clock that moves a second per reading makes the trainer read the running loss each batch.
    ticks = iter(range(1_000_000))
    trainer, data, cfg = small_trainer(archive, "rnn", clock=lambda: float(next(ticks)),
                                       **{"train.lr": 1e6, "train.epochs": 1})
    steps = 0
    real_step = trainer.train_step

    def counted(*args):
        nonlocal steps
        steps += 1
        return real_step(*args)

    trainer.train_step = counted
    with pytest.raises(DivergedError, match="in epoch 1 exceeds"):
        trainer.fit(data.train, data.val, seed=0)
    batches = -(-len(data.train) // cfg.train.batch_size)
    assert steps < batches  # stopped mid-epoch, not at its end


def test_cpu_inference_memory_is_measured_in_its_own_process_with_the_weights_once():
    # A bag of embeddings whose weights are 50,000 x 64 float32 = 12.2 MiB, on 200 short reviews.
    hyperparams = {"embedding_dim": 64, "dropout": 0.0}
    vocab_size = 50_000
    torch.manual_seed(0)
    model = create_model("bag_of_embeddings", vocab_size=vocab_size, pad_index=1, **hyperparams)
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    generator = torch.Generator().manual_seed(0)
    reviews = [torch.randint(2, vocab_size, (n,), generator=generator).tolist()
               for n in torch.randint(5, 60, (200,), generator=generator).tolist()]  # fmt: skip
    test = EncodedSplit.unlabeled("test", reviews)
    spec = RunSpec("bag_of_embeddings", 0, "smoke", "cpu", 1, small_config())
    peak = cpu_inference_peak_mb(spec, hyperparams, test, vocab_size, 1, model.state_dict())
    # The weights are in it, once (not the initial values plus the loaded copy).
    assert weights_mb <= peak < 1.6 * weights_mb, (peak, weights_mb)


def test_the_cpu_allocator_s_failure_is_an_oom_not_a_crash():
    from bench.run.execute import error_of

    exc = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 40000000000000000 bytes.")
    assert error_of(exc)["type"] == "oom"
    assert error_of(RuntimeError("shape mismatch"))["type"] == "crash"


def test_a_split_too_small_to_warm_up_says_so_once(archive, capsys):
    # run_all.py --set train.batch_size=100000: one training batch, the cold first, is timed
    trainer, data, _ = small_trainer(archive, **{"train.batch_size": 100000, "train.epochs": 2,
                                                 "train.eval_batch_size": 100000})
    trainer.fit(data.train, data.val, seed=0)
    trainer.evaluate(data.test)  # not the pass a record reports: says nothing
    [note] = trainer.timing_notes
    assert note == ("training throughput includes the cold first batch: the train split makes "
                    "1 batch(es) of 100000 samples, so none of the 2 warm-up batch(es) could be "
                    "left out of the timing; lower train.batch_size for a steady-state figure")
    trainer.evaluate(data.test, measured=True)
    assert trainer.timing_notes[1].startswith("inference throughput includes the cold first "
                                              "batch: the test split makes 1 batch(es)")
    assert "lower train.eval_batch_size" in trainer.timing_notes[1]
    err = capsys.readouterr().err
    assert err.count(note) == 1 and err.count("note: ") == 2  # once, not once per epoch


def test_a_warm_up_longer_than_the_split_is_shortened_and_said(archive):
    import re

    trainer, data, _ = small_trainer(archive, **{"measure.warmup_batches": 1000, "train.epochs": 1})
    trainer.fit(data.train, data.val, seed=0)
    [note] = trainer.timing_notes
    found = re.match(r"training throughput is timed after (\d+) warm-up batch\(es\), not the 1000 "
                     r"configured: the train split makes (\d+) batch\(es\) of 64 samples", note)
    assert found and int(found[1]) == int(found[2]) - 1 >= 1, note
    # The default warm-up fits in the same split: nothing to say.
    trainer, data, _ = small_trainer(archive, **{"train.epochs": 1})
    trainer.fit(data.train, data.val, seed=0)
    assert trainer.timing_notes == []
