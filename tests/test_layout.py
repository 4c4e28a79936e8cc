"""The code's shape, checked over its syntax trees: tasks and suites are named only where they are
registered, ``run_all.py`` only dispatches, and functions stay short enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.suites import list_suites, suite_info
from data_pipeline import list_tasks, task_info

ROOT = Path(__file__).resolve().parent.parent
#: Where a task or suite name may not be written except in its own modules.
CHECKED = ("bench", "reports", "run_all.py")
#: The one default: the task of records written before tasks existed (bench.results.records).
DEFAULT_DECLARATION = ("bench/results/records.py", "DEFAULT_TASK")
#: Functions that are declarative tables (argument definitions), exempt from the length limit.
TABLES = {("run_all.py", "build_parser")}
MAX_FUNCTION_LINES = 80


def _python_files() -> list[Path]:
    files: list[Path] = []
    for name in CHECKED:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_path(module: str) -> str:
    """``bench.suites.compare`` -> ``bench/suites/compare`` (a module file or a package folder)."""
    return module.replace(".", "/")


def _own(path: str, name: str, registering: set[str]) -> bool:
    """Whether ``path`` is one of ``name``'s own modules: the module (or a module of the package)
    that registered it, or its report module ``reports/<name>.py``."""
    stem = path.removesuffix(".py")
    return (any(stem == m or stem.startswith(m + "/") for m in registering)
            or stem == f"reports/{name}")


def _registered_names() -> dict[str, set[str]]:
    """Every task and suite name, with the modules that registered it."""
    names: dict[str, set[str]] = {}
    for task in list_tasks():
        names.setdefault(task, set()).add(_module_path(task_info(task).module))
    for suite in list_suites():
        module = _module_path(suite_info(suite).module)
        names.setdefault(suite, set()).add(module.removesuffix("/__init__"))
    return names


def _default_assignment(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> str | None:
    """The name a constant is assigned to at module level, if it is."""
    parent = parents.get(node)
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        target = parent.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(parent, ast.AnnAssign) and isinstance(parent.target, ast.Name):
        return parent.target.id
    return None


def test_no_task_or_suite_name_is_written_outside_its_own_modules():
    names = _registered_names()
    assert {"imdb", "memory", "compare"} <= set(names)  # the test sees what it means to check
    found = []
    for path in _python_files():
        relative = _relative(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if node.value not in names or _own(relative, node.value, names[node.value]):
                continue
            if (relative, _default_assignment(node, parents)) == DEFAULT_DECLARATION:
                continue
            found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert not found, "task or suite names written outside their own modules:\n" + "\n".join(found)


def test_the_check_would_find_a_name_written_elsewhere():
    tree = ast.parse('if task == "memory":\n    pass\n')
    constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert "memory" in constants and not _own("reports/render.py", "memory", {"data_pipeline/memory"})
    assert _own("bench/suites/memory/sweep.py", "memory", {"bench/suites/memory"})
    assert _own("reports/memory.py", "memory", set())
    assert not _own("bench/suites/cost/memory.py", "memory", {"bench/suites/memory"})
    assert _own("bench/suites/compare.py", "compare", {"bench/suites/compare"})


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_run_all_parses_and_dispatches_only():
    imported = _imports(ROOT / "run_all.py")
    results = sorted(name for name in imported if name.startswith(("bench.results", "bench.grid")))
    assert not results, f"run_all.py imports results-folder or record modules: {results}"
    assert "bench.suites.command" in imported  # what it dispatches to


def test_reports_import_nothing_that_trains():
    """DESIGN.md: reports read the results contract (bench.results) and nothing else of bench."""
    offenders = []
    for path in sorted((ROOT / "reports").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("bench") and not name.startswith("bench.results"):
                offenders.append(f"{_relative(path)}: {name}")
    assert not offenders, offenders


@pytest.mark.parametrize("path", _python_files(), ids=_relative)
def test_no_function_is_over_80_lines(path):
    relative = _relative(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, from line {node.lineno})"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
            and (relative, node.name) not in TABLES]
    assert not long, f"{relative}: split these functions: {', '.join(long)}"


def test_the_modules_that_find_the_checkout_find_this_one():
    """Moving a module deeper must not move the folder it runs git and pytest in."""
    from bench.dev import gpu_check
    from bench.run import environment

    assert environment.PROJECT_ROOT == ROOT and gpu_check.REPO_ROOT == ROOT
