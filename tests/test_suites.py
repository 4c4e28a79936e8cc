"""Suites as a registry: a new suite, with its own option, task and report section, is one
test-only module (tests/throwaway_suite.py) and runs end to end; the registry fails loudly."""

from __future__ import annotations

import pytest

import run_all
from bench.results import records
from bench.suites import UnknownSuiteError, list_suites, register_suite, suite_info
from tests import throwaway_suite as echo
from tests.factories import run_cli

pytestmark = pytest.mark.usefixtures("clean_checkout")


def test_the_builtin_suites_are_registered_and_the_default_comes_first():
    assert list_suites()[:3] == ["compare", "cost", "memory"] and echo.SUITE in list_suites()
    assert suite_info("compare").default and not suite_info("memory").default
    with pytest.raises(UnknownSuiteError, match="did you mean memory"):
        suite_info("memroy")
    with pytest.raises(ValueError, match="already registered"):
        register_suite("memory", description="again", run=lambda command: 0)
    with pytest.raises(ValueError, match="is the default already"):
        register_suite("second_default", description="x", run=lambda command: 0, default=True)
    with pytest.raises(ValueError, match="one line"):
        register_suite("two_lines", description="a\nb", run=lambda command: 0)


def test_list_suites_and_help_come_from_the_registry(capsys):
    code, out, _ = run_cli(capsys, "--list-suites")
    assert code == 0
    assert out.startswith("* compare ") and "\n  memory " in out and f"\n  {echo.SUITE} " in out
    assert "options: --loads, --max-distance" in out and "options: --echo-length" in out
    with pytest.raises(SystemExit):
        run_all.main(["--help"])
    help_text = capsys.readouterr().out
    assert f"{{compare,cost,memory,{echo.SUITE}}}" in help_text.replace("\n", "").replace(" ", "")
    assert f"options of --suite {echo.SUITE}" in help_text and "--echo-length N" in help_text


@pytest.mark.parametrize("argv, flag, owner", [
    (["--loads", "2/4"], "--loads", "memory"),
    (["--suite", echo.SUITE, "--max-distance", "64"], "--max-distance", "memory"),
    (["--echo-length", "5"], "--echo-length", echo.SUITE),
    (["--suite", "memory", "--echo-length", "5"], "--echo-length", echo.SUITE),
])
def test_an_option_of_another_suite_stops_with_one_line(capsys, tmp_path, argv, flag, owner):
    code, _, err = run_cli(capsys, *argv, "--profile", "smoke", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1, err
    assert f"{flag} is an option of --suite {owner}; add --suite {owner} or drop {flag}" in err
    assert not (tmp_path / "o").exists()


def test_a_throwaway_suite_runs_end_to_end_with_its_option_task_and_section(capsys, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = run_cli(capsys, "--suite", echo.SUITE, "--echo-length", "5", "--archs",
                                "bag_of_embeddings", "--profile", "smoke", "--out", str(out),
                                "--no-progress")
    assert code == 0, err
    (record,) = records.load_records(out)
    assert record["status"] == "ok" and records.task_of(record) == echo.TASK
    assert record["spec"]["data"]["length"] == 5  # the suite's own option reached the run
    assert record["data"]["n_test"] == 40
    manifest = records.read_manifest(out)
    assert manifest["tasks"] == [echo.TASK] and manifest["archs"] == ["bag_of_embeddings"]
    report = (out / "report.md").read_text(encoding="utf-8")
    section = report[report.index(echo.SECTION_HEADING):]
    solved = record["metrics"]["test_accuracy"] >= 0.9
    assert f"{int(solved)} of 1 run(s) reached 90% test accuracy at length 5." in section
    # Resumed, nothing runs again; another length is another setting, refused in one line.
    code, _, err = run_cli(capsys, "--suite", echo.SUITE, "--echo-length", "5", "--archs",
                           "bag_of_embeddings", "--profile", "smoke", "--out", str(out),
                           "--no-progress", "--resume")
    assert code == 0 and "1 run(s) already succeeded, 0 to go" in err, err
    code, _, err = run_cli(capsys, "--suite", echo.SUITE, "--echo-length", "7", "--archs",
                           "bag_of_embeddings", "--profile", "smoke", "--out", str(out),
                           "--no-progress", "--resume")
    assert code == 2 and "data.length is 5 there, 7 here" in err, err
