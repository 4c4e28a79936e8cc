"""Locating the dataset: explicit path, $RNNBENCH_IMDB, cache, and a verified download."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_pipeline import DataError, default_cache_dir, make_synthetic_archive, resolve_source
from data_pipeline import source as source_module
from data_pipeline.source import ARCHIVE_NAME, folder_fingerprint

SIZES = {"n_per_class_train": 5, "n_per_class_test": 5}


def _cache_leftovers(cache_dir: Path) -> list[str]:
    """Everything in the cache folder except the (empty) lock files."""
    if not cache_dir.exists():
        return []
    return sorted(
        str(p.relative_to(cache_dir))
        for p in cache_dir.rglob("*")
        if p.is_file() and p.parent.name != "locks"
    )


class _Server:
    """A local HTTP server: /ok serves the payload, /cut sends half of it and hangs up, /stall
    never answers."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer.requests.append(self.path)
                if self.path.startswith("/stall"):
                    time.sleep(3)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                if self.path.startswith("/cut"):
                    self.wfile.write(outer.payload[: len(outer.payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                time.sleep(0.2)  # long enough for a concurrent client to queue on the lock
                self.wfile.write(outer.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return make_synthetic_archive(tmp_path / "data" / "synthetic.tar.gz", **SIZES)


@pytest.fixture
def server(archive: Path) -> Iterator[_Server]:
    served = _Server(archive.read_bytes())
    yield served
    served.close()


def test_default_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "rnnbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "rnnbench"


def test_explicit_path_wins_over_env_and_cache(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_synthetic_archive(tmp_path / "other.tar.gz", seed=9, **SIZES)
    monkeypatch.setenv("RNNBENCH_IMDB", str(other))
    (default_cache_dir()).mkdir(parents=True)
    (default_cache_dir() / ARCHIVE_NAME).write_bytes(b"cached")
    source = resolve_source(archive)
    assert (source.path, source.kind, source.origin) == (archive, "archive", "explicit")
    assert source.checksum == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    assert resolve_source().origin == "env"
    assert resolve_source().path == other
    monkeypatch.delenv("RNNBENCH_IMDB")
    assert resolve_source().origin == "cache"


def test_missing_paths_name_their_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        DataError, match=r"--data .*missing\.tar\.gz does not exist; .*RNNBENCH_IMDB"
    ):
        resolve_source(tmp_path / "missing.tar.gz")
    monkeypatch.setenv("RNNBENCH_IMDB", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"RNNBENCH_IMDB .*gone does not exist"):
        resolve_source()


def test_folder_source_and_fingerprint(tmp_path: Path) -> None:
    folder = make_synthetic_archive(tmp_path / "x", layout="folder", **SIZES)
    source = resolve_source(folder.parent)
    assert (source.path, source.kind) == (folder, "folder")
    assert source.checksum == f"fingerprint:{folder_fingerprint(folder)}"
    review = next((folder / "train" / "pos").iterdir())
    review.write_bytes(review.read_bytes() + b" more")
    assert resolve_source(folder).checksum != source.checksum
    (folder / "README").write_text("not a review: does not count")
    assert resolve_source(folder).checksum == resolve_source(folder).checksum


def test_download_success(server: _Server, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setenv("RNNBENCH_IMDB_URL", server.url("/ok/aclImdb_v1.tar.gz"))
    monkeypatch.setenv("RNNBENCH_IMDB_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    source = resolve_source(progress=False)
    assert source.origin == "download"
    assert source.path == default_cache_dir() / ARCHIVE_NAME
    assert source.path.read_bytes() == archive.read_bytes()
    assert source.checksum == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    assert _cache_leftovers(default_cache_dir()) == [ARCHIVE_NAME]
    # The next call finds it in the cache without asking the server again.
    assert resolve_source(progress=False).origin == "cache"
    assert len(server.requests) == 1


def test_concurrent_downloads_fetch_once(
    server: _Server, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setenv("RNNBENCH_IMDB_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    results = []

    def fetch() -> None:
        results.append(resolve_source(url=server.url("/ok"), progress=False))

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.origin for r in results) == ["cache", "cache", "download"]
    assert len(server.requests) == 1
    assert _cache_leftovers(default_cache_dir()) == [ARCHIVE_NAME]


def test_checksum_mismatch_leaves_nothing(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    # No MD5 override: the synthetic archive cannot have the canonical archive's MD5.
    with pytest.raises(
        DataError, match=r"has MD5 [0-9a-f]{32}, expected 7c2ac02c03563afcf9b574c7e56c153a"
    ):
        resolve_source(url=server.url("/ok"), progress=False)
    assert _cache_leftovers(default_cache_dir()) == []


def test_interrupted_transfer_leaves_nothing(
    server: _Server, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setenv("RNNBENCH_IMDB_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(DataError, match=r"interrupted|IncompleteRead"):
        resolve_source(url=server.url("/cut"), progress=False)
    assert _cache_leftovers(default_cache_dir()) == []


def test_offline_fails_fast_with_how_to_supply_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)  # the URL is a closed local port (conftest)
    start = time.perf_counter()
    with pytest.raises(
        DataError, match=r"could not download .*--data PATH or set RNNBENCH_IMDB=PATH"
    ) as info:
        resolve_source(progress=False)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(info.value)
    assert _cache_leftovers(default_cache_dir()) == []


def test_unresponsive_server_times_out(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setattr(source_module, "DOWNLOAD_TIMEOUT_S", 0.5)
    with pytest.raises(DataError, match="timed out"):
        resolve_source(url=server.url("/stall"), progress=False)
    assert _cache_leftovers(default_cache_dir()) == []


def test_download_timeout_is_30_seconds() -> None:
    assert source_module.DOWNLOAD_TIMEOUT_S == 30


def test_cache_dir_argument_is_used(
    server: _Server, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setenv("RNNBENCH_IMDB_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    source = resolve_source(cache_dir=tmp_path / "elsewhere", url=server.url("/ok"), progress=False)
    assert source.path == tmp_path / "elsewhere" / ARCHIVE_NAME
    assert not (default_cache_dir() / ARCHIVE_NAME).exists()
    assert os.listdir(tmp_path / "elsewhere" / "locks") == ["download.lock"]
