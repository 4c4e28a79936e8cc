"""The built wheel installs into a fresh environment and every module imports from it.

An editable install (``pip install -e .``, what ``make`` does) finds any folder of the checkout,
so a sub-package left out of ``pyproject.toml``'s package list would pass every other test and
break only for someone installing the wheel. This test builds the wheel from a copy of the
checkout's sources (so the build writes nothing into the shared working tree), installs it with
``--no-deps`` into a temporary venv, and imports every module of the source tree from a folder
outside the checkout, checking that each one was loaded from the wheel. The dependencies (torch
and the rest) come from this interpreter's site-packages through ``PYTHONPATH``, whose ``.pth``
files (the editable install's finder among them) Python does not run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The top-level modules the wheel installs beside the packages (pyproject's ``py-modules``).
TOP_LEVEL_MODULES = ("run_all",)
#: The sub-packages of bench the reorganisation of issue 22 created: each must be in the wheel.
BENCH_SUBPACKAGES = ("bench.run", "bench.grid", "bench.results", "bench.suites", "bench.dev")

_IMPORT_ALL = """
import importlib, json, sys
loaded, failed = {}, {}
for name in sys.argv[1:]:
    try:
        loaded[name] = importlib.import_module(name).__file__
    except Exception as exc:  # every failure named, not only the first
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"loaded": loaded, "failed": failed}))
"""


def _copy_sources(dest: Path) -> list[str]:
    """Copy what a build reads (the top-level files and the packages) into ``dest``; return the
    Python files of the packages and :data:`TOP_LEVEL_MODULES` (``bench/run/config.py``,
    ``run_all.py``), relative to ``dest``."""
    dest.mkdir()
    for path in sorted(REPO_ROOT.iterdir()):
        if path.is_file():
            shutil.copy2(path, dest / path.name)
        elif (path / "__init__.py").is_file() and path.name != "tests":
            shutil.copytree(path, dest / path.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    sources = [path.relative_to(dest).as_posix() for path in dest.glob("*/**/*.py")]
    return sorted(sources) + [f"{module}.py" for module in TOP_LEVEL_MODULES]


def _module_name(source: str) -> str:
    parts = Path(source).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _has_build_backend(sources: Path) -> bool:
    """Whether this interpreter's setuptools meets pyproject's ``setuptools>=N`` (a fresh venv
    of Python 3.11 holds setuptools 65, too old for the SPDX ``license`` string)."""
    wanted = re.search(r'"setuptools>=(\d+)', (sources / "pyproject.toml").read_text())
    try:
        have = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return wanted is None or have >= int(wanted.group(1))


def _build_wheel(sources: Path, dist: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist)]
    if _has_build_backend(sources):
        command.append("--no-build-isolation")  # no index needed; else pip fetches setuptools
    result = subprocess.run([*command, str(sources)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = dist.glob("rnnbench-*.whl")
    return wheel


def _venv_with(wheel: Path, venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return Path(out.stdout.strip()).resolve()


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build, install and import: the wheel's file names, the modules expected, and the import
    outcome ({"loaded": {name: file}, "failed": {name: error}}) with the venv's site-packages."""
    root = tmp_path_factory.mktemp("wheel")
    sources = _copy_sources(root / "src")
    modules = [_module_name(source) for source in sources]
    wheel = _build_wheel(root / "src", root / "dist")
    python = _venv_with(wheel, root / "venv")
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")}  # fmt: skip
    env.update(PYTHONPATH=os.pathsep.join(sorted(deps)), MPLBACKEND="Agg")
    outside = root / "elsewhere"  # the working folder: no checkout above it to shadow the wheel
    outside.mkdir()
    result = subprocess.run([str(python), "-c", _IMPORT_ALL, *modules], cwd=outside, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    return {"names": names, "sources": sources, "modules": modules, "site": _site_packages(python),
            **json.loads(result.stdout.splitlines()[-1])}  # fmt: skip


def test_wheel_holds_every_source_file(installed_wheel: dict) -> None:
    names = installed_wheel["names"]
    for package in BENCH_SUBPACKAGES:
        assert f"{package.replace('.', '/')}/__init__.py" in names, f"{package} is not in the wheel"
    missing = [source for source in installed_wheel["sources"] if source not in names]
    assert not missing, f"source files not in the wheel: {missing}"
    assert not any(name.startswith("tests/") for name in names), "the tests are in the wheel"


def test_every_module_imports_from_the_wheel(installed_wheel: dict) -> None:
    assert not installed_wheel["failed"], installed_wheel["failed"]
    site = installed_wheel["site"]
    loaded = installed_wheel["loaded"]
    assert set(loaded) == set(installed_wheel["modules"])
    elsewhere = {name: file for name, file in loaded.items()
                 if not Path(file).resolve().is_relative_to(site)}  # fmt: skip
    assert not elsewhere, f"imported from outside the wheel's install: {elsewhere}"
    for top in ("bench", "models", "data_pipeline", "reports", "run_all"):
        assert top in loaded, f"{top} was not imported"
