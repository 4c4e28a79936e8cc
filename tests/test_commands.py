"""Every documented command answers ``--help``: exit 0, a usage line, in seconds.

The commands are collected when the tests are collected, from the files that document them
(README.md, docs/*.md, the Makefile, .ci/run): a command newly written into a guide is checked
with no edit here. A command with subcommands (``python -m bench.gate run``) has each
subcommand's ``--help`` run too, the subcommands read from its own usage line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: A command that takes longer than this to print its help is not "quick" (it imports torch at
#: most: about 2 s on a quiet 2-core machine, 10 s while the test suite runs beside it).
HELP_TIMEOUT_S = 60

_PYTHON = r"(?:\S*python[\d.]*|\$\(PY\)|\"?\$\{?py\}?\"?)"
_MODULE = re.compile(_PYTHON + r"\s+-m\s+([A-Za-z_][\w.]*)(?:[ \t]+([a-z][\w-]*)\b)?")
_SCRIPT = re.compile(_PYTHON + r"\s+((?:[\w.-]+/)*[\w-]+\.py)\b")
#: ``{run,check} ...``: argparse's usage for subcommands (a choice option has no ``...``).
_SUBCOMMANDS = re.compile(r"\{([\w,-]+)\} \.\.\.")


def documenting_files() -> list[Path]:
    """Where commands are documented: the README, the guides, the Makefile and CI's script."""
    files = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("**/*.md")),
             REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run"]  # fmt: skip
    return [path for path in files if path.is_file()]


def project_top_levels() -> set[str]:
    """The project's own importable names: its packages (source tree) and its one module."""
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")}
    return (packages - {"tests"}) | {"run_all"}


def documented_commands() -> dict[str, tuple[list[str], str, set[str]]]:
    """{command as written: (argv after the interpreter, first file naming it, the words written
    right after it: a subcommand's name where it has subcommands)}.

    ``python -m NAME`` counts when NAME is the project's (``-m pytest``, ``-m pip`` are not
    ours); ``python PATH.py`` counts when PATH is a file of the checkout outside ``.ci/``
    (CI's own helper scripts take positional arguments, not ``--help``).
    """
    ours = project_top_levels()
    found: dict[str, tuple[list[str], str, set[str]]] = {}
    for path in documenting_files():
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(REPO_ROOT))
        for module, word in _MODULE.findall(text):
            module = module.rstrip(".")
            if module.split(".")[0] in ours:
                entry = found.setdefault(f"python -m {module}", (["-m", module], where, set()))
                entry[2].update([word] if word else [])
        for script in _SCRIPT.findall(text):
            if script.startswith(".ci/") or not (REPO_ROOT / script).is_file():
                continue
            found.setdefault(f"python {script}", ([script], where, set()))
    return found


COMMANDS = documented_commands()


def _help(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv, "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=HELP_TIMEOUT_S)  # fmt: skip


def _assert_usage(result: subprocess.CompletedProcess[str], command: str) -> None:
    assert result.returncode == 0, f"{command} --help exited {result.returncode}:\n{result.stderr}"
    assert result.stdout.lstrip().startswith("usage:"), f"{command} --help:\n{result.stdout}"


def test_the_documented_commands_are_found() -> None:
    """The collection itself works: the commands issue 22 names are all among those found."""
    expected = {
        "python run_all.py", "python -m bench.predict", "python -m bench.gate",
        "python -m bench.gpu_check", "python -m bench.metrics", "python -m bench.config",
        "python -m data_pipeline", "python -m reports",
    }  # fmt: skip
    assert expected <= set(COMMANDS), sorted(expected - set(COMMANDS))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_documented_command_answers_help(command: str) -> None:
    argv, where, written_after = COMMANDS[command]
    result = _help(argv)
    _assert_usage(result, f"{command} (documented in {where})")
    usage = result.stdout.split("\n\n", 1)[0]
    subcommands = [sub for group in _SUBCOMMANDS.findall(usage) for sub in group.split(",")]
    for sub in subcommands:
        _assert_usage(_help([*argv, sub]), f"{command} {sub}")
    if subcommands:  # a documented subcommand exists (the docs name no retired one)
        unknown = sorted(written_after - set(subcommands))
        assert not unknown, f"{command} has no subcommand {unknown}; it has {subcommands}"


def test_ci_script_parses() -> None:
    """``.ci/run`` is valid bash (a syntax error would show only at the end of a 20-minute run)."""
    result = subprocess.run(["bash", "-n", str(REPO_ROOT / ".ci" / "run")], capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
