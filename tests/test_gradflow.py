"""The gradient-flow probe: a known answer, padding, a probe that changes nothing, batch selection,
every registered recurrent model, a real run's probe, the JSON file and the report section."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.results import records
from bench.run.config import RunSpec
from bench.run.execute import execute_run, load_task_data
from bench.suites.memory.gradflow import (
    FLOOR,
    GradientProfile,
    ProbeError,
    decay_per,
    embedding_gradient_norms,
    find_embedding,
    gradient_flow_payload,
    imdb_probe_batch,
    probe_run,
    sequence_probe_batch,
)
from data_pipeline import EncodedSplit
from models import create_model, list_models, model_info
from models.base import TextClassifier
from reports.gradients import GRADIENT_PLOT, format_decay, gradient_section
from tests.factories import small_run_config, synthetic_archive

ROOT = Path(__file__).resolve().parent.parent
A = 0.9  # the known model's recurrent weight


class ScalarReluRNN(TextClassifier):
    """h_t = relu(a h_{t-1} + e_t), logit = w h_last + b, with embedding dimension 1 and positive
    embeddings: h stays positive, so relu is the identity and d logit / d e_t = w a^(last - t)."""

    def __init__(self, a: float = A, vocab_size: int = 6, pad_index: int = 1) -> None:
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        self.embedding = nn.Embedding(vocab_size, 1, padding_idx=pad_index)
        self.rnn = nn.RNN(1, 1, nonlinearity="relu", bias=False, batch_first=True)
        self.head = nn.Linear(1, 1)
        with torch.no_grad():
            self.embedding.weight.copy_(0.5 + 0.1 * torch.arange(vocab_size, dtype=torch.float32)[:, None])
            self.embedding.weight[pad_index] = 0.0
            self.rnn.weight_ih_l0.fill_(1.0)
            self.rnn.weight_hh_l0.fill_(a)
            self.head.weight.fill_(0.02)
            self.head.bias.fill_(-0.5)

    def classify(self, tokens, lengths):
        outputs, _ = self.rnn(self.embedding(tokens))
        return self.head(outputs[torch.arange(len(lengths)), lengths - 1]).squeeze(1)


def random_tokens(rows: int, width: int, *, vocab_size: int = 6, seed: int = 0) -> torch.Tensor:
    """Token ids in [2, vocab_size): never <unk> or <pad>."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab_size, (rows, width), generator=generator)


def test_a_scalar_relu_rnn_gives_an_exactly_geometric_profile_and_its_decay():
    model = ScalarReluRNN()
    tokens = random_tokens(8, 250)
    lengths = torch.full((8,), 250)
    labels = torch.tensor([0.0, 1.0] * 4)
    profile = embedding_gradient_norms(model, tokens, lengths, labels)
    assert profile.distance.tolist() == list(range(250)) and profile.count.tolist() == [8] * 250
    # The gradient of the batch-mean loss at distance d: mean |sigmoid(z) - y| / B * w * a^d.
    with torch.no_grad():
        residual = (torch.sigmoid(model(tokens, lengths)) - labels).abs().double()
    expected = float(residual.mean()) / 8 * 0.02 * A ** np.arange(250)
    np.testing.assert_allclose(profile.grad_norm, expected, rtol=1e-5)
    assert decay_per(profile, span=50) == pytest.approx(A**50, rel=1e-4)
    assert decay_per(profile, span=1) == pytest.approx(A, rel=1e-5)
    # The fit covers the near half only: a profile that rises past the middle decays the same.
    bent = dataclasses.replace(profile, grad_norm=np.where(profile.distance > 124, 1.0, profile.grad_norm))
    assert decay_per(bent, span=50) == pytest.approx(A**50, rel=1e-4)


def test_padding_is_ignored_and_each_distance_averages_the_sequences_that_reach_it():
    model = ScalarReluRNN()
    long, short = random_tokens(1, 100, seed=1), random_tokens(1, 60, seed=2)
    labels = torch.tensor([1.0])
    alone_long = embedding_gradient_norms(model, long, torch.tensor([100]), labels)
    alone_short = embedding_gradient_norms(model, short, torch.tensor([60]), labels)
    # The short sequence padded to 100 columns gives its own profile.
    padded = torch.cat([short, torch.full((1, 40), model.pad_index)], dim=1)
    with_padding = embedding_gradient_norms(model, padded, torch.tensor([60]), labels)
    assert with_padding.distance.tolist() == list(range(60))
    np.testing.assert_array_equal(with_padding.grad_norm, alone_short.grad_norm)
    # Together: a batch mean (so each gradient halves), averaged over whoever reaches a distance.
    both = embedding_gradient_norms(model, torch.cat([long, padded]), torch.tensor([100, 60]),
                                    torch.tensor([1.0, 1.0]))  # fmt: skip
    assert both.count.tolist() == [2] * 60 + [1] * 40
    expected = np.concatenate([(alone_long.grad_norm[:60] + alone_short.grad_norm) / 4,
                               alone_long.grad_norm[60:] / 2])  # fmt: skip
    np.testing.assert_allclose(both.grad_norm, expected, rtol=1e-6)


def test_the_probe_leaves_the_model_as_it_was():
    model = create_model("lstm", vocab_size=30, pad_index=1, embedding_dim=8, hidden_dim=8,
                         num_layers=2, dropout=0.5)  # fmt: skip
    model.train()
    model.encoder.eval()  # a caller's mixed modes come back as they were
    for index, param in enumerate(model.parameters()):
        param.grad = torch.full_like(param, float(index))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    tokens, lengths = random_tokens(4, 20, vocab_size=30), torch.tensor([20, 17, 9, 3])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    first = embedding_gradient_norms(model, tokens, lengths, labels)
    second = embedding_gradient_norms(model, tokens, lengths, labels)
    # Dropout 0.5 in training mode would make two passes differ: the probe ran in evaluation mode.
    np.testing.assert_array_equal(first.grad_norm, second.grad_norm)
    assert model.training and model.dropout.training and not model.encoder.training
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    assert not find_embedding(model)._forward_hooks


RECURRENT = [n for n in list_models() if model_info(n).recurrent and model_info(n).training == "gradient"]


@pytest.mark.parametrize("arch", RECURRENT)
def test_every_registered_recurrent_model_gives_finite_positive_norms_at_every_distance(arch):
    # A max-pooled readout sends gradient only to steps at or before some unit's peak: with 8
    # units over 40 steps the last steps may get none, so the pooled models get 32 (as
    # tests/test_models.py's pooled-gradient test does).
    width = 32 if arch.endswith("_max") else 8
    small = {"embedding_dim": width, "hidden_dim": width, "num_layers": 1, "dropout": 0.0}
    hyperparams = {k: v for k, v in small.items() if k in model_info(arch).hyperparams}
    torch.manual_seed(0)
    model = create_model(arch, vocab_size=30, pad_index=1, **hyperparams)
    tokens, lengths = random_tokens(4, 40, vocab_size=30), torch.tensor([40, 40, 31, 12])
    profile = embedding_gradient_norms(model, tokens, lengths, torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert profile.distance.tolist() == list(range(40))
    assert profile.count.tolist() == [4] * 12 + [3] * 19 + [2] * 9
    assert np.isfinite(profile.grad_norm).all() and (profile.grad_norm > FLOOR).all()
    assert 0 < decay_per(profile) < np.inf
    # Padding changes nothing at a sequence's real distances, for the registered models too.
    one = embedding_gradient_norms(model, tokens[3:, :12], lengths[3:], torch.tensor([1.0]))
    padded = embedding_gradient_norms(
        model, torch.cat([tokens[3:, :12], torch.ones(1, 28, dtype=torch.long)], 1), lengths[3:],
        torch.tensor([1.0]))  # fmt: skip
    np.testing.assert_allclose(padded.grad_norm, one.grad_norm, rtol=1e-5)


def test_a_model_without_an_embedding_is_refused():
    model = create_model("tfidf_logreg", vocab_size=30, pad_index=1)
    with pytest.raises(ProbeError, match="exactly one nn.Embedding"):
        embedding_gradient_norms(model, random_tokens(1, 5), torch.tensor([5]), torch.tensor([1.0]))


def profile_of(norms):
    norms = np.asarray(norms, dtype=np.float64)
    return GradientProfile(np.arange(len(norms)), np.maximum(norms, FLOOR), np.ones(len(norms), np.int64))


def test_decay_leaves_out_norms_at_the_floor_and_says_when_nothing_is_left():
    # A gradient that halves each step, then falls below float32's range at distance 4.
    norms = [1.0, 0.5, 0.25, 0.125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert decay_per(profile_of(norms), span=1) == pytest.approx(0.5)
    assert decay_per(profile_of([1.0, 0, 0, 0, 0])) == 0.0  # vanished within one step
    assert np.isnan(decay_per(profile_of([0.0, 0, 0, 0])))  # no gradient at all
    with pytest.raises(ProbeError, match="at least two distances"):
        decay_per(profile_of([1.0, 0.5]))  # near half: distance 0 only
    assert decay_per(profile_of([1.0, 0.5]), span=1, fit_until=1) == pytest.approx(0.5)


def toy_split(lengths, labels=None) -> EncodedSplit:
    reviews = [list(range(2 + i, 2 + i + n)) for i, n in enumerate(lengths)]
    split = EncodedSplit.unlabeled("test", reviews)
    if labels is None:
        return split
    return dataclasses.replace(split, labels=torch.tensor(labels))


def test_imdb_batch_takes_the_first_long_enough_reviews_cut_to_the_length():
    split = toy_split([5, 12, 3, 15, 12, 20], [0, 1, 0, 1, 0, 1])
    batch = imdb_probe_batch(split, length=12, n=3)
    assert batch.index.tolist() == [1, 3, 4] and batch.lengths.tolist() == [12, 12, 12]
    assert batch.tokens.shape == (3, 12) and batch.labels.tolist() == [1.0, 1.0, 0.0]
    assert batch.tokens[1].tolist() == list(range(5, 17))  # review 3's first 12 ids
    with pytest.raises(ProbeError, match=r"has 4 sequences of at least 12 tokens \(its longest has "
                                         r"20\), fewer than the 5"):
        imdb_probe_batch(split, length=12, n=5)
    with pytest.raises(ProbeError, match="labels are not all 0 or 1"):
        imdb_probe_batch(toy_split([5, 12]), length=5, n=2)


def test_sequence_batch_takes_the_first_sequences_as_they_are():
    split = toy_split([5, 12, 3, 15, 12, 20], [0, 1, 0, 1, 0, 1])
    batch = sequence_probe_batch(split, n=4, pad_index=1)
    assert batch.index.tolist() == [0, 1, 2, 3] and batch.lengths.tolist() == [5, 12, 3, 15]
    assert batch.tokens.shape == (4, 15) and batch.tokens[2].tolist() == [4, 5, 6] + [1] * 12
    with pytest.raises(ProbeError, match="has 6 sequences, fewer than the 7"):
        sequence_probe_batch(split, n=7)


# --- a real run ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    archive = synthetic_archive(tmp_path_factory, n_train=150, n_test=60)
    config = small_run_config(epochs=2, **{"measure.infer_memory": False})  # not what is probed
    spec = RunSpec("gru", 0, "smoke", "cpu", 1, config, data_path=str(archive))
    run_dir = tmp_path_factory.mktemp("runs") / spec.run_id
    record = execute_run(spec, run_dir, progress=False, log_epochs=False)
    assert record["status"] == "ok", record["error"]
    batch = imdb_probe_batch(load_task_data(spec, progress=False).test, length=30, n=8)
    return run_dir, record, batch


def test_probe_run_measures_the_runs_start_and_its_checkpoint(trained_run):
    run_dir, record, batch = trained_run
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    probe = probe_run(run_dir, record, batch)
    # Rebuilding the run's start reseeds the generators; the caller's draws are untouched.
    assert torch.equal(torch.rand(3), expected_next)
    assert probe["task"] == "imdb" and probe["arch"] == "gru" and probe["run_id"] == record["run_id"]
    assert probe["setting"] == "30-token reviews" and probe["sequences"] == 8
    assert probe["distance_T"] is None and probe["alphabet"] is None and probe["n_signals"] is None
    init, trained = probe["init"], probe["trained"]
    assert init["distance"] == trained["distance"] == list(range(30))
    assert init["count"] == [8] * 30
    assert not np.allclose(init["grad_norm"], trained["grad_norm"])  # training changed the flow
    assert init["decay_per_span"] > 0 and trained["decay_per_span"] > 0
    assert trained["epochs"] == record["metrics"]["best_epoch"]
    assert trained["test_accuracy"] == record["metrics"]["test_accuracy"]
    # The start is the run's own: the same every time it is rebuilt.
    assert probe_run(run_dir, record, batch)["init"] == init


def test_probe_run_refuses_what_it_cannot_probe(trained_run, tmp_path):
    run_dir, record, batch = trained_run
    with pytest.raises(ProbeError, match="is not the folder of run"):
        probe_run(run_dir.parent, record, batch)
    with pytest.raises(ProbeError, match="did not succeed"):
        probe_run(run_dir, {**record, "status": "failed"}, batch)
    outside = dataclasses.replace(batch, tokens=batch.tokens + 10_000)
    with pytest.raises(ProbeError, match=r"outside run .* vocabulary of \d+"):
        probe_run(run_dir, record, outside)
    copy = tmp_path / record["run_id"]
    shutil.copytree(run_dir, copy)
    (copy / "model.pt").unlink()
    with pytest.raises(ProbeError, match="has no model.pt"):
        probe_run(copy, record, batch)


def test_the_gradient_flow_file_round_trips_and_a_bad_one_is_named(trained_run, tmp_path):
    run_dir, record, batch = trained_run
    payload = gradient_flow_payload([probe_run(run_dir, record, batch)])
    assert records.read_gradient_flow(tmp_path) is None  # no probes yet
    path = records.write_gradient_flow(tmp_path, payload)
    assert path == tmp_path / "gradient_flow.json"
    assert records.read_gradient_flow(tmp_path) == json.loads(json.dumps(payload))
    broken = {**payload, "probes": [{**payload["probes"][0], "trained": {"distance": []}}]}
    with pytest.raises(records.RecordError, match="trained is missing 'grad_norm'"):
        records.write_gradient_flow(tmp_path, broken)
    path.write_text('{"schema": 1, "span": 50}')
    with pytest.raises(records.RecordError, match=r"gradient_flow.json: .*'probes' must be a list"):
        records.read_gradient_flow(tmp_path)


# --- the report section -------------------------------------------------------------------------


def hand_made_probe(arch, task, setting, init_decay, trained_decay, length, **task_fields):
    def block(decay):
        norms = [max(decay ** (d / 50), 1.2e-38) for d in range(length)]
        return {"distance": list(range(length)), "grad_norm": norms, "count": [64] * length,
                "decay_per_span": decay}  # fmt: skip

    return {"task": task, "arch": arch, "run_id": f"{task}-{arch}-s0-0000", "seed": 0,
            "setting": setting, "distance_T": None, "alphabet": None, "n_signals": None,
            "sequences": 64, **task_fields, "init": block(init_decay),
            "trained": {**block(trained_decay), "epochs": 3, "test_accuracy": 0.8125}}  # fmt: skip


def test_gradient_section_renders_a_table_and_a_figure():
    memory = {"distance_T": 64, "alphabet": 16, "n_signals": 2}
    payload = records.validate_gradient_flow({"schema": 1, "span": 50, "probes": [
        hand_made_probe("lstm", "imdb", "250-token reviews", 0.5, 0.25, 250),
        hand_made_probe("rnn", "imdb", "250-token reviews", 1e-6, 0.0, 250),
        hand_made_probe("lstm", "memory", "T = 64, 16 symbols x 2", 0.9, 0.8, 90, **memory),
    ]})  # fmt: skip
    markdown, figures = gradient_section(payload, arch_order=["rnn", "lstm", "gru"])
    assert markdown.startswith("## Gradient flow\n")
    assert "| Architecture | Task | Batch | Decay per 50 steps, at initialisation |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "Architecture" not in line]
    # Ordered by panel (task and batch), then the report's architecture order.
    assert [row.split(" | ")[0] for row in rows] == ["| rnn", "| lstm", "| lstm"]
    assert rows[0].split(" | ")[3:5] == ["1.0e-06", "0 (vanished)"]
    assert rows[1].split(" | ")[3:5] == ["0.5", "0.25"]
    assert "81.2% (epoch 3)" in rows[2] and "T = 64, load 2 of 16" in rows[2]  # from its fields, not its setting words
    assert f"](plots/{GRADIENT_PLOT})" in markdown and set(figures) == {GRADIENT_PLOT}
    assert figures[GRADIENT_PLOT].startswith(b"\x89PNG")
    assert gradient_section(payload, arch_order=["rnn", "lstm", "gru"])[1] == figures  # same bytes


def test_gradient_section_is_nothing_without_probes():
    assert gradient_section(None) == (None, {})
    assert gradient_section({"schema": 1, "span": 50, "probes": []}) == (None, {})


def test_decays_are_formatted_for_a_table():
    assert [format_decay(v) for v in (0.934, 1.0, 0.00512, 5e-12, 0.0, None, float("nan"))] == [
        "0.934", "1", "0.00512", "5.0e-12", "0 (vanished)", "—", "—"]


def test_the_report_section_does_not_import_torch():
    code = "import sys, reports.gradients; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
