"""``python -m data_pipeline``: output, and a one-line error with exit status 2 for bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from data_pipeline import make_synthetic_archive
from data_pipeline.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _cache_files() -> list[Path]:
    cache = Path(os.environ["XDG_CACHE_HOME"])
    return (
        [p for p in cache.rglob("*") if p.is_file() and p.parent.name != "locks"]
        if cache.exists()
        else []
    )


def test_inspect_cold_then_warm(tmp_path: Path) -> None:
    archive = make_synthetic_archive(
        tmp_path / "a.tar.gz", n_per_class_train=30, n_per_class_test=20, n_invalid_utf8=1
    )
    cold = _run(
        "--data", str(archive), "--vocab-size", "100", "--max-len", "30", "--val-fraction", "0.2"
    )
    assert cold.returncode == 0, cold.stderr
    assert "origin: explicit" in cold.stdout
    assert "train split      48 reviews   pos 24 / neg 24" in cold.stdout
    assert "val   split      12 reviews   pos 6 / neg 6" in cold.stdout
    assert "test  split      40 reviews" in cold.stdout
    assert "vocabulary   100 tokens" in cold.stdout
    assert "before truncation" in cold.stdout
    assert "decode errs  1 reviews" in cold.stdout
    assert "cold (no cache entry)" in cold.stdout and "tokenize" in cold.stdout
    warm = _run(
        "--data", str(archive), "--vocab-size", "100", "--max-len", "30", "--val-fraction", "0.2"
    )
    assert warm.returncode == 0, warm.stderr
    assert "warm (cache hit)" in warm.stdout and "cache_read" in warm.stdout
    assert "tokenize" not in warm.stdout


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (arguments, extra environment, expected message fragment). The checksum mismatch
    needs a server: see test_checksum_mismatch_cli."""
    good = make_synthetic_archive(tmp_path / "good.tar.gz", n_per_class_train=5, n_per_class_test=5)
    (tmp_path / "plain.txt").write_text("not an archive " * 100)
    (tmp_path / "cut.tar.gz").write_bytes(good.read_bytes()[:-200])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("aclImdb/train/pos/1_8.txt")
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "partial.tar.gz").write_bytes(gzip.compress(buffer.getvalue()))
    return {
        "missing path": (["--data", str(tmp_path / "nope.tar.gz")], {}, "does not exist"),
        "not gzip or tar": (
            ["--data", str(tmp_path / "plain.txt")],
            {},
            "neither a gzip nor a tar",
        ),
        "truncated": (["--data", str(tmp_path / "cut.tar.gz")], {}, "truncated"),
        "no aclImdb layout": (
            ["--data", str(tmp_path / "partial.tar.gz")],
            {},
            "no reviews under train/neg",
        ),
        "offline": ([], {"RNNBENCH_IMDB": ""}, "could not download"),
    }


@pytest.mark.parametrize(
    "case", ["missing path", "not gzip or tar", "truncated", "no aclImdb layout", "offline"]
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    args, env, fragment = _bad_inputs(tmp_path)[case]
    result = _run(*args, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert result.stdout == ""
    assert _cache_files() == []


def test_checksum_mismatch_cli(tmp_path: Path) -> None:
    from tests.test_data_source import _Server

    archive = make_synthetic_archive(
        tmp_path / "good.tar.gz", n_per_class_train=5, n_per_class_test=5
    )
    server = _Server(archive.read_bytes())
    try:
        result = _run(
            "--no-progress",
            env={
                "RNNBENCH_IMDB": "",
                "RNNBENCH_IMDB_URL": server.url("/ok"),
                "RNNBENCH_IMDB_MD5": "0" * 32,
            },
        )
    finally:
        server.close()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: download from") and "expected 00000000" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _cache_files() == []
    assert hashlib.md5(archive.read_bytes()).hexdigest() != "0" * 32


def test_unknown_option_exits_2() -> None:
    result = _run("--vocab-sise", "5")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "unrecognized arguments: --vocab-sise" in result.stderr
    assert "Traceback" not in result.stderr


def test_out_of_range_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--max-len", "0"])
    assert exit_info.value.code == 2
    assert "max_len must be an integer >= 1" in capsys.readouterr().err


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--data",
        "--vocab-size",
        "--max-len",
        "--val-fraction",
        "--split-seed",
        "--train-limit",
        "--test-limit",
        "--cache-dir",
        "--no-progress",
        "RNNBENCH_IMDB",
    ):
        assert option in text
