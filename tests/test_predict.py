"""``python -m bench.predict``: bad input and damaged run folders give one line and exit 2."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.predict import PredictError, Predictor, main
from bench.run.config import RunSpec, profile_config
from bench.run.execute import VOCAB_NAME, execute_run
from data_pipeline import make_synthetic_archive

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    archive = make_synthetic_archive(tmp_path_factory.mktemp("data") / "imdb.tar.gz",
                                     n_per_class_train=100, n_per_class_test=40)
    config = profile_config("smoke", {"data.vocab_size": 300, "data.train_limit": None,
                                      "data.test_limit": None, "train.epochs": 1,
                                      "measure.latency_reps": 3, "measure.infer_memory": False})
    spec = RunSpec("bag_of_embeddings", 0, "smoke", "cpu", 1, config, data_path=str(archive))
    folder = tmp_path_factory.mktemp("runs") / spec.run_id
    record = execute_run(spec, folder, progress=False, log_epochs=False)
    assert record["status"] == "ok", record["error"]
    return folder


def _predict(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("text", ["", "   ", ";;: ::"])
def test_text_without_words_is_refused_not_classified(capsys, run_dir, text):
    # python -m bench.predict RUN_DIR ""
    code, out, err = _predict(capsys, run_dir, "a fine film", text)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "has no words to classify" in err
    with pytest.raises(PredictError):
        Predictor(run_dir).predict([text])


@pytest.mark.parametrize("content", ["", "\n", "<unk>\n<unk>\nfilm\n"])
def test_an_empty_or_garbage_vocabulary_gives_one_line(capsys, tmp_path, run_dir, content):
    # python -m bench.predict RUN_DIR "text" with runs/<id>/vocab.txt emptied or garbled
    damaged = tmp_path / "run"
    damaged.mkdir()
    for item in run_dir.iterdir():
        (damaged / item.name).write_bytes(item.read_bytes())
    (damaged / VOCAB_NAME).write_text(content)
    code, out, err = _predict(capsys, damaged, "a fine film")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("predict: error:") and "vocab" in err


def test_file_dash_reads_standard_input(run_dir):
    # printf 'a fine film\n\nawful\n' | python -m bench.predict RUN_DIR --file -
    result = subprocess.run(
        [sys.executable, "-m", "bench.predict", str(run_dir), "--file", "-"],
        input="a fine film\n\nawful stuff\n", capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("\ta fine film") and lines[1].endswith("\tawful stuff")
    assert all(line.split("\t")[0] in ("positive", "negative") for line in lines)
    assert all(0.0 <= float(line.split("\t")[1]) <= 1.0 for line in lines)
    # a smoke run's answers are near chance, and it says so (stderr: stdout stays parseable)
    assert "is a smoke run" in result.stderr and result.stderr.count("\n") == 1


def test_a_missing_file_gives_one_line(capsys, tmp_path, run_dir):
    code, _, err = _predict(capsys, run_dir, "--file", tmp_path / "nope.txt")
    assert code == 2 and err.count("\n") == 1 and "cannot read --file" in err


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[1, 2]", b'"a string"', b'{"arch": 3}'])
def test_a_config_that_is_not_utf8_or_not_a_spec_gives_one_line(capsys, tmp_path, run_dir, content):
    # python -m bench.predict RUN_DIR "text" with runs/<id>/config.json damaged
    damaged = tmp_path / "run"
    damaged.mkdir()
    for item in run_dir.iterdir():
        (damaged / item.name).write_bytes(item.read_bytes())
    (damaged / "config.json").write_bytes(content)
    code, out, err = _predict(capsys, damaged, "a fine film")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and "config.json is not a valid run config" in err


def _damaged_copy(tmp_path, run_dir, name, content):
    damaged = tmp_path / "run"
    damaged.mkdir()
    for item in run_dir.iterdir():
        (damaged / item.name).write_bytes(item.read_bytes())
    (damaged / name).write_bytes(content)
    return damaged


def test_a_config_without_a_field_names_it_and_says_to_re_run(capsys, tmp_path, run_dir):
    damaged = _damaged_copy(tmp_path, run_dir, "config.json", b'{"arch": "rnn"}')
    code, out, err = _predict(capsys, damaged, "a fine film")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "has no field 'seed'" in err and "re-run it (run_all.py --run-id run)" in err


def test_a_vocabulary_that_is_not_utf8_gives_one_line(capsys, tmp_path, run_dir):
    damaged = _damaged_copy(tmp_path, run_dir, VOCAB_NAME, b"\xff\xfe<unk>\n")
    code, out, err = _predict(capsys, damaged, "a fine film")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot read vocabulary file" in err and "utf-8" in err and "re-run it" in err


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("content", "reason"), [
    (b"garbage", "not a file of saved weights"),  # torch: UnpicklingError
    (b"", "EOFError: the file is truncated"),
    (b"PK\x03\x04junk", "PytorchStreamReader failed reading zip archive"),  # RuntimeError
    (_saved([1, 2]), "Expected state_dict to be dict-like"),  # TypeError
    (_saved({"embedding.weight": torch.zeros(2, 2)}), "Error(s) in loading state_dict"),
])
def test_a_damaged_checkpoint_gives_one_line(capsys, tmp_path, run_dir, content, reason):
    # python -m bench.predict RUN_DIR "text" with runs/<id>/model.pt damaged or another model's
    damaged = _damaged_copy(tmp_path, run_dir, "model.pt", content)
    code, out, err = _predict(capsys, damaged, "a fine film")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("predict: error: cannot load checkpoint") and reason in err, err
    assert "re-run it" in err
