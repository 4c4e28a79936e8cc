"""The command line: bad input gets one clear line and exit code 2; a smoke grid runs end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_all
from bench.results import records
from bench.run import environment
from data_pipeline import make_synthetic_archive

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_checkout(monkeypatch):
    # --resume refuses a checkout with uncommitted changes; these tests are about other things.
    monkeypatch.setattr(environment, "git_state", lambda: ("f" * 40, False))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_synthetic_archive(
        tmp_path_factory.mktemp("data") / "imdb.tar.gz", n_per_class_train=150, n_per_class_test=60
    )


def run_cli(capsys, *argv):
    code = run_all.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--archs", "lsmt"], "did you mean 'lstm'"),
        (["--archs", "zz*"], "matches no architecture"),
        (["--archs", "family:novel"], "unknown family 'novel'; families: classic, modern, floor"),
        (["--set", "train.lr=-1"], "train.lr must be > 0"),
        (["--set", "train.batch_size=0"], "train.batch_size must be >= 1"),
        (["--set", "data.max_len=0"], "max_len"),
        (["--set", "lr"], "--set expects KEY=VALUE"),
        (["--set", "nonsense=1"], "unknown setting 'nonsense'"),
        (["--set", "train.lr=inf"], "train.lr must be a finite number, got 'inf'"),
        (["--set", "train.lr=nan"], "train.lr must be a finite number, got 'nan'"),
        (["--set", "model.dropout=nan"], "model.dropout must be a finite number"),
        (["--archs", ""], "--archs names no architecture"),
        (["--archs", " , "], "--archs names no architecture"),
        (["--set", "lstm.nonsense=1"], "model 'lstm' has no hyperparameter 'nonsense'"),
        (["--set", "lstm.hidden_dim=wide"], "lstm.hidden_dim expects int, got 'wide'"),
        (["--set", "tfidf_logreg.min_df=0"], "min_df must be >= 1"),
        (["--set", "tfidf_logreg.c_grid=1,-2"], "c_grid must hold positive values"),
        (["--archs", "lstm", "--set", "gru.hidden_dim=8"], "gru is not among the architectures"),
    ],
)
def test_bad_settings_give_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(tmp_path / "o"), *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("run_all.py: error:")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--seeds", "0"], "must be at least 1"), (["--profile", "fast"], "invalid choice"),
     (["--bogus"], "unrecognized arguments")],
)
def test_argparse_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        run_all.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_out_that_is_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(target))
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"


def test_existing_folder_needs_resume_or_overwrite_and_foreign_folders_are_never_deleted(capsys, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(foreign))
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(foreign), "--overwrite")
    assert code == 2 and "not an rnnbench results folder" in err
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(foreign), "--resume")
    assert code == 2 and "not an rnnbench results folder" in err
    assert (foreign / "notes.txt").read_text() == "precious"


def test_missing_data_gives_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--profile", "smoke", "--out", str(tmp_path / "o"),
                           "--data", str(tmp_path / "nowhere.tar.gz"))
    assert code == 2 and err.count("\n") == 1 and "nowhere.tar.gz" in err


def test_list_archs_comes_from_the_registry(capsys):
    from models import list_models

    code, out, _ = run_cli(capsys, "--list-archs")
    assert code == 0
    for name in list_models():
        assert f" {name} " in out
    assert "min_df=2" in out and "c_grid=(0.25, 1.0, 4.0, 16.0, 64.0)" in out
    # Grouped by family, each under its header: a modern model listed after the modern header.
    assert out.index("family classic") < out.index(" lstm ") < out.index("family modern")
    assert out.index("family modern") < out.index(" mingru ") < out.index("family floor")


def test_a_listing_piped_into_a_reader_that_leaves_early_is_not_an_error():
    # `python run_all.py --list-archs | head -1`, the reader gone before the listing is written
    # (it is closed before the command has even imported the registry).
    listing = subprocess.Popen([sys.executable, str(ROOT / "run_all.py"), "--list-archs"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    listing.stdout.close()
    _, err = listing.communicate(timeout=120)
    assert listing.returncode == 0 and b"Traceback" not in err, err.decode()


def test_smoke_grid_end_to_end_then_report_only_reproduces_the_report(capsys, tmp_path, archive):
    out = tmp_path / "res"
    argv = ["--profile", "smoke", "--archs", "gru,bag_of_embeddings", "--data", str(archive),
            "--out", str(out), "--no-progress", "--set", "data.train_limit=none",
            "--set", "data.test_limit=none"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    loaded = records.load_records(out)
    assert sorted(r["arch"] for r in loaded) == ["bag_of_embeddings", "gru"]
    assert all(r["status"] == "ok" for r in loaded)
    manifest = records.read_manifest(out)
    assert manifest["archs"] == ["gru", "bag_of_embeddings"] and manifest["wall_time_s"] > 0
    report = (out / "report.md").read_bytes()
    assert b"`gru`" in report and (out / "summary.csv").is_file()
    assert "report:" in stdout
    # re-rendering from the records gives the same bytes
    (out / "report.md").unlink()
    code, _, err = run_cli(capsys, "--report-only", "--out", str(out))
    assert code == 0, err
    assert (out / "report.md").read_bytes() == report
    # the same grid again is refused without --resume, and with --resume nothing re-runs
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "already exists" in err
    code, _, err = run_cli(capsys, *argv, "--resume")
    assert code == 0 and "2 run(s) already succeeded, 0 to go" in err
    # files get the user's umask, not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.md", "summary.csv", "manifest.json", f"runs/{loaded[0]['run_id']}/record.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_help_explains_every_option():
    result = subprocess.run([sys.executable, str(ROOT / "run_all.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--profile", "--archs", "--seeds", "--epochs", "--set", "--threads", "--device",
                   "--data", "--out", "--resume", "--overwrite", "--list-archs", "--report-only",
                   "--allow-other-commit", "--task", "--list-tasks"):
        assert option in result.stdout
    assert "failed runs" in result.stdout and "are run again" in result.stdout  # --resume retries
