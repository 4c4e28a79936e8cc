"""The environment a run happened in: code version, software, hardware.

Every record carries this, so a number can always be traced to the commit, library versions and
machine that produced it (lm-evaluation-harness and nanoGPT keep the same facts).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # bench/run/environment.py -> the checkout

_PACKAGES = (
    "torch", "numpy", "pandas", "scikit-learn", "matplotlib", "seaborn", "tabulate", "tqdm",
    "portalocker", "pytest-benchmark",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


#: Where committed results live: a change there changes no number a run produces, so it does not
#: make the code dirty, and commits that differ only there run the same code.
NOT_CODE = ("docs",)


@lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the project's checkout, or (None, None) outside a git checkout. Dirty
    means uncommitted changes to tracked files outside :data:`NOT_CODE` (the code)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){path}" for path in NOT_CODE))
    return commit, bool(status)


@lru_cache(maxsize=32)
def code_hash(commit: str = "HEAD") -> str | None:
    """A hash of the code at ``commit``: every tracked file outside :data:`NOT_CODE`. Two commits
    with one hash run the same code (results folders are under ``docs/``, or ignored by git, or
    outside the project). None outside a git checkout, or for a commit it does not have."""
    listing = _git("ls-tree", "-r", "--full-tree", commit)
    if listing is None:
        return None
    skip = tuple(f"{path}/" for path in NOT_CODE)
    kept = [line for line in listing.splitlines() if not line.split("\t", 1)[-1].startswith(skip)]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info() -> str | None:
    # torch's build configuration names its BLAS; keep the one line that says which.
    config = torch.__config__.show()
    match = re.search(r"BLAS_INFO=(\w+)", config)
    lapack = re.search(r"LAPACK_INFO=(\w+)", config)
    parts = [m.group(1) for m in (match, lapack) if m]
    return "/".join(parts) or None


def _onednn_info() -> str | None:
    match = re.search(r"(?:oneDNN|MKLDNN)[^\n]*?v(\d+(?:\.\d+)*)", torch.__config__.show())
    if match:
        return match.group(1)
    return "available" if torch.backends.mkldnn.is_available() else None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_name(device: torch.device) -> str:
    """A human-readable name of the compute device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def capture(device: torch.device) -> dict[str, Any]:
    """The environment block of a record."""
    commit, dirty = git_state()
    cuda = torch.version.cuda if torch.cuda.is_available() else None
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": cuda,
        "cudnn": cudnn,
        "device": device.type,
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "blas": _blas_info(),
        "onednn": _onednn_info(),
        "packages": package_versions(),
    }
