"""Shared test setup. Every test gets its own cache folder and can never reach the network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


def _closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


# A download attempted by mistake fails at once (connection refused) instead of fetching 84 MB.
UNREACHABLE_URL = f"http://127.0.0.1:{_closed_local_port()}/aclImdb_v1.tar.gz"


@pytest.fixture(autouse=True)
def _isolated_data_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the dataset cache at a per-test folder and the download URL at a closed local port.

    The cache folder is not inside ``tmp_path``: other tools (matplotlib) write there too, and a
    test may check that its own ``tmp_path`` holds only what it wrote.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.setenv("RNNBENCH_IMDB_URL", UNREACHABLE_URL)
    monkeypatch.delenv("RNNBENCH_IMDB_MD5", raising=False)


@pytest.fixture
def real_imdb() -> Path:
    """The real IMDb archive named by $RNNBENCH_IMDB; skips the test when it is not available."""
    path = os.environ.get("RNNBENCH_IMDB")
    if not path or not Path(path).exists():
        pytest.skip("set RNNBENCH_IMDB to the IMDb archive to run tests on the real data")
    return Path(path)


@pytest.fixture
def clean_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean checkout at a fixed commit: --resume refuses a checkout with uncommitted changes,
    and the tests that use this are about other things."""
    from bench.run import environment

    monkeypatch.setattr(environment, "git_state", lambda: ("f" * 40, False))

