"""The reports' registry: a task declares what its report branches on, closing sections declare
what they need; a throwaway task registered here renders end to end with no edit elsewhere."""

import ast
import copy
import hashlib
from pathlib import Path

import pytest

from bench.results.records import validate_record
from reports import sections
from reports.render import build_outputs, is_report_output, render_report
from reports.sections import (
    ClosingSection,
    TaskReport,
    closing_section,
    declared_task_report,
    register_closing_section,
    register_task_report,
    unregister_closing_section,
    unregister_task_report,
)
from tests.factories import make_manifest, make_record, write_results

REPO = Path(__file__).resolve().parents[1]
TINY = "tiny_test"
TINY_FACTS = {"name": TINY, "title": "Tiny", "description": "A throwaway test task",
              "citation": "", "example": "item", "text_inputs": False}  # fmt: skip


@pytest.fixture
def registry():
    """The registries as they are, restored after the test (whatever it registered)."""
    saved = [(r, dict(r)) for r in (sections.TASK_REPORTS, sections.CLOSING_SECTIONS, sections.PAYLOADS)]
    yield sections
    for registry_, content in saved:
        registry_.clear()
        registry_.update(content)


def _tiny_record(arch: str, seed: int, width: int, accuracy: float) -> dict:
    record = make_record(arch, seed, metrics={"test_accuracy": accuracy})
    identity = f"{TINY}|{arch}|{seed}|{width}"
    record.update(task=TINY, task_info=dict(TINY_FACTS),
                  run_id=f"{TINY}-{arch}-s{seed}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}")
    record["spec"].update(task=TINY, data={"width": width, "n_train": 100})
    return validate_record(copy.deepcopy(record))


def _tiny_widths(context) -> tuple[str, dict[str, bytes]]:
    """The tiny task's own section: the widest width each architecture reaches 90% at."""
    reached: dict[str, int] = {}
    for record in context.records:
        if record["metrics"]["test_accuracy"] >= 0.9:
            width = record["spec"]["data"]["width"]
            reached[record["arch"]] = max(width, reached.get(record["arch"], 0))
    lines = ["## Tiny widths", "", *(f"- `{a}` reaches 90% up to width {w}" for a, w in reached.items())]
    return "\n".join(lines), {f"{context.plot_prefix}tiny.png": b"\x89PNG fake"}


TINY_RECORDS = [_tiny_record("lstm", 0, 8, 0.95), _tiny_record("lstm", 0, 16, 0.92),
                _tiny_record("gru", 0, 8, 0.91), _tiny_record("gru", 0, 16, 0.6)]  # fmt: skip


def test_a_throwaway_task_renders_its_own_section_settings_and_figure(tmp_path, registry):
    register_task_report(TaskReport(TINY, swept_settings=("width",), section=_tiny_widths,
                                    figures=("tiny.png",)))  # fmt: skip
    built = []
    register_closing_section(ClosingSection("tiny_closing", lambda ctx: built.append(ctx) or (
        "## Tiny closing\n\nafter every task", {}), tasks=(TINY,)))  # fmt: skip
    folder = write_results(tmp_path, TINY_RECORDS, make_manifest(["lstm", "gru"], [0], tasks=[TINY]))
    text = render_report(folder).read_text(encoding="utf-8")
    assert text.startswith("# rnnbench: recurrent text classifiers on Tiny")
    # Its section replaces the per-architecture ones; the smoke caveat follows its heading.
    assert "## Results" not in text and "## Tiny widths\n\n> **This is a `smoke` run**" in text
    assert "- `lstm` reaches 90% up to width 16" in text and "- `gru` reaches 90% up to width 8" in text
    assert text.rstrip().endswith("## Tiny closing\n\n> **This is a `smoke` run**: a check that the "
                                  "whole pipeline works, on a small subsample with tiny models "
                                  "trained for a couple of epochs: the recurrent models barely "
                                  "leave chance, and its accuracies, significance tests and the "
                                  "sentences below are no basis for choosing an architecture: run "
                                  "the `quick` or `full` profile for that.\n\nafter every task")
    assert [list(ctx.tasks) for ctx in built] == [[TINY]]
    assert (folder / "plots" / TINY / "tiny.png").read_bytes() == b"\x89PNG fake"
    # The swept setting keeps each width a row of its own.
    csv = (folder / "summary.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("arch,task,width,") and len(csv) == 5
    # --overwrite removes its figure: the registry says a render writes it.
    assert is_report_output(f"plots/{TINY}/tiny.png", [TINY])
    assert not is_report_output("plots/other/tiny.png", [TINY])
    from reports.render import PLOT_NAMES

    assert "tiny.png" in PLOT_NAMES
    unregister_closing_section("tiny_closing")
    unregister_task_report(TINY)
    assert not is_report_output(f"plots/{TINY}/tiny.png", [TINY])


def test_an_undeclared_task_gets_the_plain_report_and_a_declared_one_its_published_results(
    tmp_path, registry
):
    folder = write_results(tmp_path, TINY_RECORDS, make_manifest(["lstm", "gru"], [0], tasks=[TINY]))
    plain = build_outputs(folder)
    text = plain["report.md"].decode()
    # Nothing declared: the per-architecture sections, its runs averaged over the widths.
    assert "## Results" in text and "## Published results" not in text
    assert len(plain["summary.csv"].decode().splitlines()) == 3
    assert {name for name in plain if name.startswith("plots/")} == {
        f"plots/{TINY}/{name}" for name in ("learning_curves.png", "accuracy_vs_throughput.png",
                                            "memory_and_params.png", "latency.png")}  # fmt: skip
    register_task_report(TaskReport(TINY, published=(("Someone 2020", "their setup", "99%"),),
                                    published_setting="on ten items"))  # fmt: skip
    text = build_outputs(folder)["report.md"].decode()
    assert ("For orientation only: other code, other preprocessing, other hardware, on ten items. "
            "None of these numbers was produced by this run.") in text
    assert "| Someone 2020 | their setup | 99% |" in text


def test_a_section_that_writes_an_undeclared_figure_fails(tmp_path, registry):
    register_task_report(TaskReport(TINY, section=_tiny_widths))
    folder = write_results(tmp_path, TINY_RECORDS, make_manifest(["lstm", "gru"], [0], tasks=[TINY]))
    with pytest.raises(ValueError, match=r"task report 'tiny_test' wrote figure 'tiny_test/tiny.png' "
                                         r"without declaring it \(declared: none\)"):
        build_outputs(folder)


def test_registry_mistakes_fail_loudly(registry):
    with pytest.raises(ValueError, match="task report 'memory' is already registered"):
        register_task_report(TaskReport("memory"))
    with pytest.raises(ValueError, match="closing section 'notebook' is already registered"):
        register_closing_section(ClosingSection("notebook", lambda ctx: (None, {})))
    with pytest.raises(KeyError, match=r"unknown task report 'memroy'; did you mean 'memory'\?"):
        declared_task_report("memroy")
    with pytest.raises(KeyError, match=r"unknown closing section 'notebok'; did you mean 'notebook'"):
        closing_section("notebok")
    with pytest.raises(KeyError, match=r"unknown task \(needed by closing section 'x'\) 'imbd'; did "
                                       r"you mean 'imdb'\?"):
        register_closing_section(ClosingSection("x", lambda ctx: (None, {}), tasks=("imbd",)))
    with pytest.raises(KeyError, match="unknown payload .* 'gradient_flw'; did you mean"):
        register_closing_section(ClosingSection("x", lambda ctx: (None, {}), payloads=("gradient_flw",)))
    with pytest.raises(ValueError, match="needed by closing section 'notebook'"):
        unregister_task_report("memory")
    with pytest.raises(ValueError, match="declares figures but no section draws them"):
        register_task_report(TaskReport(TINY, figures=("x.png",)))
    assert "x" not in sections.CLOSING_SECTIONS and TINY not in sections.TASK_REPORTS


def test_the_declarations_of_imdb_and_memory():
    assert declared_task_report("memory").swept_settings == ("alphabet", "n_signals", "distance")
    assert declared_task_report("memory").prefix == "memory/"
    imdb = declared_task_report("imdb")
    assert imdb.prefix == "" and imdb.swept_settings == () and len(imdb.published) == 6
    every = {"imdb": [], "memory": []}
    assert [s.name for s in sections.closing_sections_for(every, {"gradient_flow": 1, "cost_points": 1})] \
        == ["gradient_flow", "notebook", "cost"]  # declared, whatever the import order
    assert closing_section("notebook").tasks == ("imdb", "memory")
    assert closing_section("gradient_flow").payloads == ("gradient_flow",)


def test_no_report_module_names_a_task_outside_its_own():
    """A task is named only in its own module: the rest reads the registry."""
    names = set(sections.TASK_REPORTS)
    found = []
    for path in sorted((REPO / "reports").glob("*.py")):
        if path.name in ("imdb.py", "memory.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_no_report_function_is_over_80_lines():
    long = []
    for path in sorted((REPO / "reports").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.name}:{node.name}")
    assert long == []
