"""The benchmark gate's logic on hand-made pytest-benchmark JSON and throwaway git repositories.

Nothing is timed: the few benchmarks the A/B plumbing test runs are a no-op, and no assertion
reads their times.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bench.dev import abrun, gate

MODELS = "tests/benchmarks/test_bench_models.py"
LSTM_TRAIN = f"{MODELS}::test_train_step[cpu-lstm]"
GRU_TRAIN = f"{MODELS}::test_train_step[cpu-gru]"
LSTM_INFER = f"{MODELS}::test_infer_step[cpu-lstm]"
TRAINER = "tests/benchmarks/test_bench_trainer.py::test_trainer_epoch[cpu]"


def bench(
    name: str,
    min_s: float,
    *,
    kind: str = "train_step",
    model: str | None = "lstm",
    matmul_s: float = 0.001,
    python_s: float = 0.002,
    normalise_by: str = "matmul",
    calibrated: bool = True,
) -> dict[str, Any]:
    """One entry of a pytest-benchmark JSON run, as calibration.timed writes it."""
    entry: dict[str, Any] = {
        "fullname": name,
        "stats": {"min": min_s, "median": min_s * 1.1, "rounds": 5},
        "extra_info": {"kind": kind, "model": model, "device": "cpu", "threads": 1},
    }
    if calibrated:
        entry["extra_info"]["calibration"] = {
            "matmul_s": matmul_s, "python_s": python_s, "samples": 12, "normalise_by": normalise_by,
        }
    return entry


def run_of(*benchmarks: dict[str, Any]) -> dict[str, Any]:
    return {"machine_info": {"node": "ci"}, "benchmarks": list(benchmarks)}


def passes(times: dict[str, list[float]], **kwargs: Any) -> list[dict[str, Any]]:
    """One run per pass from {name: [fastest round of pass 1, pass 2, ...]}."""
    count = len(next(iter(times.values())))
    return [run_of(*(bench(name, t[i], **kwargs) for name, t in times.items())) for i in range(count)]


def statuses(result: gate.GateResult) -> dict[str, str]:
    return {f.name: f.status for f in result.findings}


BASE = {LSTM_TRAIN: [0.060, 0.062, 0.061], GRU_TRAIN: [0.100, 0.098, 0.101]}


def test_unchanged_candidate_passes() -> None:
    result = gate.run_gate(passes(BASE), passes(BASE))
    assert not result.failed
    assert statuses(result) == {LSTM_TRAIN: gate.OK, GRU_TRAIN: gate.OK}


def test_slow_down_fails_and_names_benchmark_ratio_and_threshold() -> None:
    slow = {LSTM_TRAIN: [2 * t for t in BASE[LSTM_TRAIN]], GRU_TRAIN: BASE[GRU_TRAIN]}
    result = gate.run_gate(passes(BASE), passes(slow))
    assert result.failed
    [finding] = result.by_status(gate.REGRESSION)
    assert finding.name == LSTM_TRAIN
    assert "B/A 2.00x (calibrated; pairs 2.00, 2.00, 2.00)" in finding.message
    assert f"threshold {gate.DEFAULT_THRESHOLD:.2f}x" in finding.message
    report = gate.format_report(result)
    assert report.splitlines()[0].strip().startswith("REGRESSION")
    assert "FAILED" in report.splitlines()[-1]


def test_verdict_is_the_median_over_pass_pairs() -> None:
    # One disturbed pass pair (3x) does not decide; two do.
    one = {LSTM_TRAIN: [0.060, 0.180, 0.060]}
    two = {LSTM_TRAIN: [0.180, 0.180, 0.060]}
    flat = {LSTM_TRAIN: [0.060, 0.060, 0.060]}
    assert not gate.run_gate(passes(flat), passes(one)).failed
    assert gate.run_gate(passes(flat), passes(two)).failed


def test_pairs_are_taken_in_order_so_drift_cancels() -> None:
    # The machine slows down pass after pass, on both sides alike: every pair reads 1.0.
    drifting = {LSTM_TRAIN: [0.060, 0.090, 0.120]}
    result = gate.run_gate(passes(drifting), passes(drifting))
    assert "pairs 1.00, 1.00, 1.00" in result.findings[0].message


@pytest.mark.parametrize(
    ("name", "ratio", "failed"),
    [(LSTM_TRAIN, gate.DEFAULT_THRESHOLD - 0.01, False), (LSTM_TRAIN, gate.DEFAULT_THRESHOLD + 0.01, True),
     (TRAINER, gate.THRESHOLDS["test_trainer_epoch"] - 0.01, False),
     (TRAINER, gate.THRESHOLDS["test_trainer_epoch"] + 0.01, True)],
)
def test_per_benchmark_thresholds(name: str, ratio: float, failed: bool) -> None:
    base = {name: [0.5, 0.5, 0.5]}
    cand = {name: [0.5 * ratio] * 3}
    assert gate.run_gate(passes(base, calibrated=False), passes(cand, calibrated=False)).failed is failed


def test_slower_within_threshold_is_named_and_passes() -> None:
    ratio = (gate.SLOWER_NOTICE + gate.DEFAULT_THRESHOLD) / 2
    slower = {LSTM_TRAIN: [t * ratio for t in BASE[LSTM_TRAIN]], GRU_TRAIN: BASE[GRU_TRAIN]}
    result = gate.run_gate(passes(BASE), passes(slower))
    assert not result.failed
    assert statuses(result) == {LSTM_TRAIN: gate.SLOWER, GRU_TRAIN: gate.OK}
    assert gate.format_report(result).splitlines()[0].strip().startswith(f"slower  {LSTM_TRAIN}")


def test_threshold_lookup_reads_the_test_function_and_the_round_length() -> None:
    assert gate.threshold_for(TRAINER, 0.1) == gate.THRESHOLDS["test_trainer_epoch"]
    assert gate.threshold_for(LSTM_INFER, 0.003) == gate.DEFAULT_THRESHOLD
    assert gate.threshold_for("tests/benchmarks/test_bench_data.py::test_vocab_fast", 0.01) == gate.DEFAULT_THRESHOLD
    assert gate.threshold_for(LSTM_INFER, gate.SHORT_ROUND_S / 2) == gate.SHORT_THRESHOLD


def test_sub_millisecond_benchmark_fails_only_above_the_short_threshold() -> None:
    base = {LSTM_INFER: [0.0003] * 3}
    noisy = {LSTM_INFER: [0.0003 * (gate.SHORT_THRESHOLD - 0.1)] * 3}
    slow = {LSTM_INFER: [0.0003 * (gate.SHORT_THRESHOLD + 0.1)] * 3}
    assert not gate.run_gate(passes(base), passes(noisy)).failed
    assert gate.run_gate(passes(base), passes(slow)).failed


def test_much_faster_is_reported_not_failed() -> None:
    fast = {LSTM_TRAIN: [t / 2 for t in BASE[LSTM_TRAIN]], GRU_TRAIN: BASE[GRU_TRAIN]}
    result = gate.run_gate(passes(BASE), passes(fast))
    assert not result.failed
    assert statuses(result)[LSTM_TRAIN] == gate.FASTER


def test_new_benchmark_is_reported_and_passes() -> None:
    new = f"{MODELS}::test_train_step[cpu-new_model]"
    result = gate.run_gate(passes(BASE), passes({**BASE, new: [5.0, 5.0, 5.0]}))
    assert not result.failed
    [finding] = result.by_status(gate.NEW)
    assert finding.name == new
    assert "not in the baseline commit's suite" in finding.message


def test_benchmark_only_in_the_baseline_is_reported_and_passes() -> None:
    result = gate.run_gate(passes(BASE), passes({LSTM_TRAIN: BASE[LSTM_TRAIN]}))
    assert not result.failed
    assert [f.name for f in result.by_status(gate.MISSING)] == [GRU_TRAIN]


def test_an_older_suite_without_calibration_is_compared_on_fastest_rounds() -> None:
    slow = {LSTM_TRAIN: [2 * t for t in BASE[LSTM_TRAIN]], GRU_TRAIN: BASE[GRU_TRAIN]}
    result = gate.run_gate(passes(BASE, calibrated=False), passes(slow))
    assert statuses(result) == {LSTM_TRAIN: gate.REGRESSION, GRU_TRAIN: gate.OK}
    assert "B/A 2.00x (raw; pairs" in result.by_status(gate.REGRESSION)[0].message


def test_calibration_cancels_a_pass_slowed_as_a_whole() -> None:
    # Candidate pass 2 ran while the machine was 1.8x slower: its calibration says so too.
    base = passes(BASE)
    cand = passes(BASE)
    for entry in cand[1]["benchmarks"]:
        entry["stats"]["min"] *= 1.8
        entry["extra_info"]["calibration"]["matmul_s"] *= 1.8
    cand[2] = copy.deepcopy(cand[1])
    result = gate.run_gate(base, cand)
    assert statuses(result) == {LSTM_TRAIN: gate.OK, GRU_TRAIN: gate.OK}
    # Read raw, two of three pairs are 1.8x slower and the median fails.
    for run in (*base, *cand):
        for entry in run["benchmarks"]:
            del entry["extra_info"]["calibration"]
    assert gate.run_gate(base, cand).failed


def test_uncalibrated_candidate_is_noted_not_failed() -> None:
    result = gate.run_gate(passes(BASE), passes(BASE, calibrated=False))
    assert not result.failed
    assert {f.name for f in result.by_status(gate.NOTE)} == {LSTM_TRAIN, GRU_TRAIN}


def test_unpaired_passes_are_refused() -> None:
    with pytest.raises(gate.GateInputError, match="same number"):
        gate.run_gate(passes(BASE), passes(BASE)[:2])
    with pytest.raises(gate.GateInputError, match="same number"):
        gate.run_gate([], [])


def test_entry_without_stats_is_refused() -> None:
    entry = bench(LSTM_TRAIN, 0.06)
    del entry["stats"]
    with pytest.raises(gate.GateInputError, match="stats.min"):
        gate.pass_timings(run_of(entry))


def _alternative(model: str, min_s: float) -> dict[str, Any]:
    return bench(f"{MODELS}::test_train_step_alternative_padding[cpu-{model}]", min_s,
                 kind="train_step_alternative_padding", model=model)


def _checks(*runs: dict[str, Any]) -> list[gate.Finding]:
    figures, _ = gate.merged_figures(runs)
    return gate.check_invariants(figures)


def test_padding_default_must_not_be_slower() -> None:
    findings = _checks(run_of(
        bench(LSTM_TRAIN, 0.060), _alternative("lstm", 0.300),
        bench(GRU_TRAIN, 0.100, model="gru"), _alternative("gru", 0.080),
    ))
    assert {f.name: f.status for f in findings} == {
        "padding lstm cpu": gate.CHECK_OK, "padding gru cpu": gate.CHECK_FAILED}


def test_padding_check_tolerates_noise_within_tolerance() -> None:
    [finding] = _checks(run_of(bench(LSTM_TRAIN, 0.060),
                               _alternative("lstm", 0.060 / (gate.PADDING_TOLERANCE - 0.01))))
    assert finding.status == gate.CHECK_OK


def test_in_run_checks_read_the_fastest_round_over_all_candidate_passes() -> None:
    # Pass 1 caught the default path in a disturbed moment; pass 2 did not.
    findings = _checks(
        run_of(bench(LSTM_TRAIN, 0.500), _alternative("lstm", 0.300)),
        run_of(bench(LSTM_TRAIN, 0.060), _alternative("lstm", 0.310)),
    )
    assert [(f.status, "0.20" in f.message) for f in findings] == [(gate.CHECK_OK, True)]


def test_fused_must_beat_scratch() -> None:
    scratch = f"{MODELS}::test_train_step[cpu-lstm_scratch]"
    ok = _checks(run_of(bench(LSTM_TRAIN, 0.060),
                        bench(scratch, 0.400, model="lstm_scratch", normalise_by="mixed")))
    assert [f.status for f in ok] == [gate.CHECK_OK]
    # The ratio puts both over the same calibration, whatever each one's own normaliser.
    bad = _checks(run_of(bench(LSTM_TRAIN, 0.060),
                         bench(scratch, 0.050, model="lstm_scratch", normalise_by="mixed")))
    assert [f.status for f in bad] == [gate.CHECK_FAILED]
    assert "lstm / lstm_scratch = 1.200" in bad[0].message


@pytest.mark.parametrize(
    ("trainer_s", "status", "verdict"),
    [(0.51, gate.CHECK_OK, "meets"), (0.55, gate.CHECK_OK, "misses"),
     (0.70, gate.CHECK_FAILED, "misses")],
)
def test_trainer_overhead_goal_and_limit(trainer_s: float, status: str, verdict: str) -> None:
    trainer = bench(TRAINER, trainer_s, kind="trainer_epoch")
    trainer["extra_info"]["bare_epoch_min_s"] = 0.50
    [finding] = _checks(run_of(trainer))
    assert finding.name == "trainer overhead cpu"
    assert finding.status == status
    assert f"{verdict} the {gate.TRAINER_OVERHEAD_GOAL:.2f} goal" in finding.message


@pytest.mark.parametrize(("epoch_s", "status"), [(0.30, gate.CHECK_OK), (0.45, gate.CHECK_FAILED)])
def test_speedup_over_the_notebook(epoch_s: float, status: str) -> None:
    entry = bench("n::test_trainer_vs_notebook_loop[cpu]", epoch_s, kind="notebook_comparison")
    entry["extra_info"].update(reference="the notebook's loop", reference_min_s=0.40, speedup_goal=1.25)
    [finding] = _checks(run_of(entry))
    assert finding.status == status
    assert finding.name == "speed-up over the notebook's loop cpu"


@pytest.mark.parametrize(("mingru_s", "status", "verdict"),
                         [(0.09, gate.CHECK_OK, "meets"), (0.11, gate.CHECK_OK, "misses"),
                          (0.12, gate.CHECK_FAILED, "misses")])  # fmt: skip
def test_a_speedup_limit_below_one_and_the_figures_beside_it(mingru_s, status, verdict) -> None:
    # The scan benchmark: goal 1.0 (minGRU no slower than GRU), failing only below 1 / 1.15.
    entry = bench("s::test_mingru_layer_vs_gru_layer[cpu]", mingru_s, kind="scan_layer")
    entry["extra_info"].update(reference="nn.GRU", reference_min_s=0.10, speedup_goal=1.0,
                               speedup_limit=1 / 1.15, beside_min_s={"nn.LSTM": 0.12},
                               elementwise_pass_min_s=0.001)  # fmt: skip
    [finding] = _checks(run_of(entry))
    assert finding.status == status
    assert f"{verdict} the 1.00x goal; gate limit 0.87x; nn.LSTM takes" in finding.message
    assert "element-wise passes" in finding.message


def _write(path: Path, run: dict[str, Any]) -> str:
    path.write_text(json.dumps(run))
    return str(path)


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [_write(tmp_path / f"A{i}.json", r) for i, r in enumerate(passes(BASE))]
    same = [_write(tmp_path / f"B{i}.json", r) for i, r in enumerate(passes(BASE))]
    slow = {LSTM_TRAIN: [3 * t for t in BASE[LSTM_TRAIN]], GRU_TRAIN: BASE[GRU_TRAIN]}
    slower = [_write(tmp_path / f"S{i}.json", r) for i, r in enumerate(passes(slow))]
    assert gate.main(["check", "--baseline", *base, "--candidate", *same]) == 0
    assert gate.main(["check", "--baseline", *base, "--candidate", *slower]) == 1
    assert f"REGRESSION  {LSTM_TRAIN}" in capsys.readouterr().out
    (tmp_path / "broken.json").write_text("{not json")
    assert gate.main(["check", "--baseline", str(tmp_path / "broken.json"), "--candidate", same[0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench gate: cannot read") and err.count("\n") == 1
    (tmp_path / "other.json").write_text("{}")
    assert gate.main(["check", "--baseline", str(tmp_path / "other.json"), "--candidate", same[0]]) == 2
    assert "no 'benchmarks' list" in capsys.readouterr().err


# --- the A/B runner: baseline commit, selection, import isolation --------------------------------


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    commit_files(path, files, "first")
    return path


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_baseline_commit_file_skips_comments(tmp_path: Path) -> None:
    (tmp_path / abrun.BASELINE_COMMIT_FILE).parent.mkdir(parents=True)
    (tmp_path / abrun.BASELINE_COMMIT_FILE).write_text("# why\n\nabc123 trailing words\n# more\n")
    assert abrun.read_baseline_commit(tmp_path) == "abc123"
    (tmp_path / abrun.BASELINE_COMMIT_FILE).write_text("# nothing\n")
    with pytest.raises(abrun.AbRunError, match="names no commit"):
        abrun.read_baseline_commit(tmp_path)


def test_committed_baseline_commit_file_names_a_revision() -> None:
    root = Path(__file__).resolve().parents[1]
    revision = abrun.read_baseline_commit(root)
    assert len(revision) == 40 and int(revision, 16) >= 0


def test_unknown_commit_and_shallow_clone_say_what_to_do(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "1"})
    second = commit_files(repo, {"a.txt": "2"}, "second")
    assert abrun.resolve_commit(repo, "HEAD") == second
    with pytest.raises(abrun.AbRunError, match=r"baseline commit 0123abcd is not in this clone; fetch"):
        abrun.resolve_commit(repo, "0123abcd")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    first = git(repo, "rev-parse", "HEAD~1")
    with pytest.raises(abrun.AbRunError, match="shallow: run `git fetch --unshallow`"):
        abrun.resolve_commit(shallow, first)


def test_cli_run_outside_git_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / abrun.BASELINE_COMMIT_FILE).parent.mkdir(parents=True)
    (tmp_path / abrun.BASELINE_COMMIT_FILE).write_text("abc123\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert gate.main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a git checkout" in err


def test_ci_selection_keeps_the_named_models_and_the_loops() -> None:
    patterns = abrun.selection_patterns("ci", ["lstm", "lstm_scratch"])

    def selected(node: str) -> bool:
        return any(fnmatch.fnmatchcase(node, p) for p in patterns)

    assert selected(LSTM_TRAIN) and selected(LSTM_INFER) and selected(TRAINER)
    assert selected(f"{MODELS}::test_train_step[cpu-lstm_scratch]")
    assert selected(f"{MODELS}::test_train_step_alternative_padding[cuda-lstm]")
    assert selected("tests/benchmarks/test_bench_notebook.py::test_trainer_vs_notebook_loop[cpu]")
    assert selected("tests/benchmarks/test_bench_data.py::test_vocab_fast")
    assert not selected(f"{MODELS}::test_train_step[cpu-bilstm]")
    assert not selected(GRU_TRAIN)
    assert abrun.selection_patterns("all", ["lstm"]) == []
    with pytest.raises(abrun.AbRunError, match="unknown selection"):
        abrun.selection_patterns("some", [])


def test_ci_models_are_the_default_set_and_lstm_scratch() -> None:
    from models import list_models

    assert abrun.ci_models() == list_models(default_only=True) + ["lstm_scratch"]


def _tree(version: str) -> dict[str, str]:
    """A miniature project: bench and models packages saying which version they are, one suite."""
    return {
        "bench/__init__.py": f"VERSION = {version!r}\n",
        "models/__init__.py": "",
        "tests/__init__.py": "",
        "tests/benchmarks/__init__.py": "",
        "tests/benchmarks/test_suite.py": textwrap.dedent("""
            import pytest
            import bench
            import models


            @pytest.mark.parametrize("name", ["lstm", "gru"])
            def test_step(benchmark, name):
                benchmark.extra_info["version"] = bench.VERSION
                benchmark.pedantic(lambda: None, rounds=1)
        """),
        "pyproject.toml": "[tool.pytest.ini_options]\n",
    }


def test_each_tree_runs_its_own_code_with_the_selection(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", _tree("old"))
    old = git(repo, "rev-parse", "HEAD")
    commit_files(repo, _tree("new"), "new")
    out = repo / ".benchmarks" / "ab"
    patterns = abrun.selection_patterns("ci", ["lstm"])
    lines: list[str] = []
    base, cand = abrun.run_interleaved(repo, old, passes=2, patterns=[*patterns, "*::test_step[[]lstm]"],
                                       out=out, log=lines.append)
    assert [line.split(":")[0] for line in lines] == ["bench gate"] * 4
    assert [line.split()[3] for line in lines] == ["A1", "B1", "A2", "B2"]
    for runs, version in ((base, "old"), (cand, "new")):
        assert len(runs) == 2
        for run in runs:
            assert [b["name"] for b in run["benchmarks"]] == ["test_step[lstm]"]
            assert run["benchmarks"][0]["extra_info"]["version"] == version
    imports = json.loads((out / "A-1.imports.json").read_text())
    assert imports["bench"].startswith(str(out / "baseline-tree"))
    assert not (out / "baseline-tree").exists()
    assert git(repo, "worktree", "list").count("\n") == 0  # the worktree is gone


def test_a_pass_that_imports_the_other_trees_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(abrun.AbRunError, match="imported bench from /elsewhere"):
        abrun.check_imports(tmp_path, {"bench": "/elsewhere/bench/__init__.py", "models": None})
    abrun.check_imports(tmp_path, {"bench": str(tmp_path / "bench/__init__.py"),
                                   "models": str(tmp_path / "models/__init__.py"), "tests": None})


def test_a_failing_suite_is_one_line_with_its_log(tmp_path: Path) -> None:
    files = _tree("old")
    files["tests/benchmarks/test_suite.py"] += "\n\ndef test_broken():\n    assert False\n"
    repo = make_repo(tmp_path / "repo", files)
    with pytest.raises(abrun.AbRunError, match=r"the suite failed in .* \(exit 1; log .*A-1.log\)"):
        abrun.run_interleaved(repo, git(repo, "rev-parse", "HEAD"), passes=1, patterns=[],
                              out=repo / ".benchmarks" / "ab", log=lambda line: None)
    assert git(repo, "worktree", "list").count("\n") == 0
