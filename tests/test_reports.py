"""Reports from hand-made records: tables, recommendations, ties, plots, the CLI."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.results.metrics import METRICS, register_metric
from bench.results.records import RecordError, validate_record
from reports import render_report, summary_frame, terminal_summary
from reports.compare import METHOD_BOOTSTRAP, METHOD_MCNEMAR, Comparer
from reports.recommend import pareto_set, recommend, recommendation
from reports.stats import mcnemar_exact
from reports.table import cost_table, format_ci, main_table, summarize
from tests.factories import make_grid, make_manifest, make_record, write_results
from tests.mounts import read_only

REPO = Path(__file__).resolve().parents[1]

#: A full grid: recurrent models, a bag-of-embeddings baseline, the linear floor, a failed seed.
GRID = {
    "rnn": {"accuracy": 0.70, "metrics": {"latency_ms_p50": 1.0, "latency_ms_p95": 1.5,
                                          "train_samples_per_s": 900.0, "train_peak_mem_mb": 50.0,
                                          "param_count": 600_000}},
    "lstm": {"accuracy": 0.86, "metrics": {"latency_ms_p50": 3.0, "latency_ms_p95": 4.0,
                                           "train_samples_per_s": 400.0, "train_peak_mem_mb": 120.0,
                                           "param_count": 700_000},
             "failed": {2: ("oom", "CUDA out of memory. Tried to allocate 2.00 GiB")}},
    "gru": {"accuracy": 0.8615, "metrics": {"latency_ms_p50": 2.0, "latency_ms_p95": 2.5,
                                            "train_samples_per_s": 450.0,
                                            "train_peak_mem_mb": 110.0, "param_count": 680_000}},
    "bag": {"accuracy": 0.80, "recurrent": False,
            "metrics": {"latency_ms_p50": 0.2, "latency_ms_p95": 0.3, "train_samples_per_s": 8000.0,
                        "train_peak_mem_mb": 30.0, "param_count": 640_000}},
    "tfidf_logreg": {"accuracy": 0.75, "recurrent": False, "training": "self_fit", "n_epochs": 1,
                     "metrics": {"efficiency": None, "train_tokens_per_s": None,
                                 "latency_ms_p50": 0.05, "latency_ms_p95": 0.08,
                                 "train_samples_per_s": 20000.0, "train_peak_mem_mb": 400.0,
                                 "param_count": 20_001}},
}  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder, records = make_grid(tmp_path_factory.mktemp("grid"), GRID, seeds=[0, 1, 2])
    report = render_report(folder)
    return folder, records, report.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _table_row(text: str, arch: str) -> list[str]:
    line = next(ln for ln in _section(text, "Results").splitlines() if ln.startswith(f"| `{arch}`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _speed(text: str) -> str:
    """The training runs' speed and memory table and its notes (under *Results*)."""
    return text.split("### Speed and memory of the training runs", 1)[1].split("\n## ", 1)[0]


def _speed_headers(text: str) -> list[str]:
    return [c.strip() for c in _speed(text).splitlines()[2].strip("|").split("|")]


def _speed_row(text: str, arch: str) -> list[str]:
    line = next(ln for ln in _speed(text).splitlines() if ln.startswith(f"| `{arch}`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# ---- tables --------------------------------------------------------------------------------------


def test_summary_frame_rows_follow_the_manifest_and_aggregate_seeds(rendered):
    _, records, _ = rendered
    frame = summary_frame(records, ["gru", "rnn", "lstm", "bag", "tfidf_logreg"])
    assert list(frame["arch"]) == ["gru", "rnn", "lstm", "bag", "tfidf_logreg"]
    lstm = frame.set_index("arch").loc["lstm"]
    assert (lstm["n_runs"], lstm["n_ok"], lstm["n_failed"]) == (3, 2, 1)
    assert lstm["test_accuracy_n"] == 2
    assert lstm["test_accuracy_mean"] == pytest.approx(0.86)
    assert "oom" in lstm["errors"]
    # Without an order, rows come in order of first appearance in the records, by family: the
    # floors (the last records, here) after the recurrences.
    archs = list(summary_frame(records[::-1])["arch"])
    assert archs[-2:] == ["tfidf_logreg", "bag"] and archs[0] == "rnn"


def test_one_seed_shows_no_spread_and_several_seeds_do():
    one = [make_record("lstm", 0, metrics={"test_accuracy": 0.8})]
    cells = main_table(summarize(one)).splitlines()[2]
    assert "80.00 (n=1)" in cells and "±" not in cells
    many = [make_record("lstm", s, metrics={"test_accuracy": a}) for s, a in enumerate([0.8, 0.82])]
    cells = main_table(summarize(many)).splitlines()[2]
    assert "81.00 ± 1.41 (n=2)" in cells
    frame = summary_frame(one)
    assert frame.loc[0, "test_accuracy_n"] == 1 and math.isnan(frame.loc[0, "test_accuracy_std"])


def test_a_deterministic_models_accuracy_carries_the_test_sets_interval():
    same = [make_record("tfidf_logreg", s, metrics={"test_accuracy": 0.88}) for s in range(3)]
    (row,) = summarize(same)
    stat = row.stats["test_accuracy"]
    assert stat.covers == "seeds and examples" and stat.std == 0.0
    assert format_ci(stat, "percent") == "[87.60, 88.40]"  # 25,000 test reviews, not zero width
    one = summarize(same[:1])[0].stats["test_accuracy"]
    assert format_ci(one, "percent") == "[87.60, 88.40]"  # one seed: the test set's alone
    older = [{**r, "data": {}} for r in same]  # records that do not count their test reviews
    assert summarize(older)[0].stats["test_accuracy"].covers == "seeds"
    assert format_ci(summarize(older[:1])[0].stats["test_accuracy"], "percent") == "—"
    assert summarize(same)[0].stats["test_f1"].covers == "seeds"  # F1 is no share of reviews


def test_an_accuracy_interval_stays_within_0_and_100_percent():
    # three seeds with a wide spread: the t interval of the mean (12.4% to 141%) passes 100%
    records = [make_record("lstm", s, metrics={"test_accuracy": a, "test_f1": a})
               for s, a in enumerate([0.5, 0.99, 0.99])]
    (row,) = summarize(records)
    for metric in ("test_accuracy", "test_f1"):
        stat = row.stats[metric]
        assert stat.ci_hi == 1.0 and stat.ci_lo == pytest.approx(0.1239, abs=1e-4)
    assert "[12.39, 100.00]" in main_table([row])
    # a time is cut at zero: the t interval of 1, 50, 50 ms is -36.6 to 103.9 ms
    lat = [make_record("lstm", s, metrics={"latency_ms_p50": v}) for s, v in enumerate([1, 50, 50])]
    stat = summarize(lat)[0].stats["latency_ms_p50"]
    assert stat.ci_lo == 0.0 and stat.ci_hi == pytest.approx(103.94, abs=0.01)
    assert (summary_frame(lat)["latency_ms_p50_ci_lo"] >= 0).all()


def test_main_table_marks_direction_best_values_and_failures(rendered):
    _, _, text = rendered
    header = _section(text, "Results").splitlines()[2]
    assert "Test acc % ↑" in header and "Params |" in header and "Latency" not in header
    speed = _speed(text).splitlines()[2]  # speed and memory: a table of their own
    assert "Latency p50 ms ↓" in speed and "Train peak MiB ↓" in speed and "Efficiency % ↑" in speed
    gru = _table_row(text, "gru")
    accuracy = _section(text, "Results").splitlines()[2].split("|")[1:-1]
    column = [h.strip() for h in accuracy].index("Test acc % ↑")
    assert gru[column].startswith("**86.15")  # the most accurate, in bold
    assert not _table_row(text, "rnn")[column].startswith("**")
    assert _table_row(text, "lstm")[1] == "2 (1 of 3 failed)"
    assert "`lstm`: 1 of 3 seeds failed (oom: CUDA out of memory" in text


def test_bold_marks_every_value_tied_for_best_as_shown_and_none_when_all_show_alike():
    def bold_rows(accuracies):
        records = [make_record(arch, 0, metrics={"test_accuracy": a})
                   for arch, a in accuracies.items()]
        lines = main_table(summarize(records)).splitlines()[2:]
        return [line.split("|")[1].strip() for line in lines if "**" in line.split("|")[6]]

    # 84.999% and 85.001% both show as 85.00: a tie, bold on both; 84.90% is not the best
    assert bold_rows({"rnn": 0.84999, "lstm": 0.85001, "gru": 0.849}) == ["`rnn`", "`lstm`"]
    assert bold_rows({"rnn": 0.84999, "lstm": 0.85001}) == []  # alike as shown: no best
    assert bold_rows({"rnn": 0.86, "lstm": 0.85}) == ["`rnn`"]


def test_an_architecture_whose_every_seed_failed_gets_a_fail_row(tmp_path):
    grid = {"lstm": {"accuracy": 0.85},
            "bilstm": {"failed": {0: ("oom", "out of memory"), 1: ("timeout", "over 600 s")}}}  # fmt: skip
    folder, records = make_grid(tmp_path, grid, seeds=[0, 1])
    rows = summarize(records, list(grid))
    row = main_table(rows).splitlines()[3]
    assert "FAIL (oom: out of memory; timeout: over 600 s)" in row
    assert row.count("FAIL") == 6 and cost_table(rows).splitlines()[3].count("FAIL") == 9
    assert "FAIL" in terminal_summary(records, make_manifest(["lstm", "bilstm"], [0, 1]))
    text = render_report(folder).read_text(encoding="utf-8")
    assert "`bilstm`: 2 of 2 seeds failed" in text


def test_the_non_torch_floor_round_trips_with_missing_figures(rendered):
    folder, _, text = rendered
    row = _table_row(text, "tfidf_logreg")
    headers = [c.strip() for c in _section(text, "Results").splitlines()[2].strip("|").split("|")]
    assert row[headers.index("Params")] == "20.0k"
    speed = _speed_row(text, "tfidf_logreg")
    assert speed[_speed_headers(text).index("Efficiency % ↑")] == "—"
    assert speed[_speed_headers(text).index("Train tokens/s ↑")] == "—"
    csv = (folder / "summary.csv").read_text(encoding="utf-8").splitlines()
    columns = csv[0].split(",")
    floor = next(line for line in csv if line.startswith("tfidf_logreg,")).split(",")
    assert floor[columns.index("efficiency_n")] == "0"
    assert floor[columns.index("efficiency_mean")] == ""


def test_terminal_summary_is_compact_and_ordered(rendered):
    _, records, _ = rendered
    text = terminal_summary(records, make_manifest(list(GRID), [0, 1, 2]))
    lines = text.splitlines()
    assert lines[0].startswith("rnnbench: profile smoke, device cpu")
    archs = [ln.split()[0] for ln in lines[3:-1]]
    assert archs == list(GRID)
    assert "86.15 ± 0.00" in text
    # a smoke run's table says, last, that it is no basis for a choice; another profile's does not
    assert lines[-1].startswith("smoke profile: a check that the pipeline works")
    other = terminal_summary(records, {**make_manifest(list(GRID), [0, 1, 2]), "profile": "quick"})
    assert "smoke profile" not in other


# ---- comparisons and recommendations ------------------------------------------------------------


def test_one_seed_comparison_uses_mcnemar_on_the_discordant_reviews(tmp_path):
    grid = {"lstm": {"accuracy": 0.86}, "gru": {"accuracy": 0.80}}
    folder, records = make_grid(tmp_path, grid, seeds=[0], n_reviews=1000)
    cmp = Comparer(folder, summarize(records)).compare("lstm", "gru")
    a = np.load(next((folder / "runs").glob("lstm-*")) / "test_probs.npy") > 0.5
    b = np.load(next((folder / "runs").glob("gru-*")) / "test_probs.npy") > 0.5
    labels = np.load(next((folder / "runs").glob("lstm-*")) / "test_labels.npy") == 1
    right_a, right_b = a == labels, b == labels
    expected = mcnemar_exact(int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()))
    assert cmp.method == METHOD_MCNEMAR
    assert cmp.p_value == pytest.approx(expected)
    assert cmp.diff == pytest.approx(0.06)
    assert cmp.significant and cmp.verdict() == "`lstm` better"


def test_tie_rule_several_seeds(rendered):
    folder, records, _ = rendered
    comparer = Comparer(folder, summarize(records, list(GRID)))
    tie = comparer.compare("gru", "lstm")  # 0.15 points apart on 2,000 reviews
    assert tie.method == METHOD_BOOTSTRAP and tie.seeds == (0, 1)
    assert tie.ci_lo < 0 < tie.ci_hi and tie.tie and tie.verdict() == "tie"
    clear = comparer.compare("gru", "rnn")  # 16 points apart
    assert clear.ci_lo > 0 and clear.significant and not clear.tie


def _recommendation(folder, records, order=None):
    rows = summarize(records, order)
    return recommendation(rows, Comparer(folder, rows))


def test_recommendation_names_the_tie_and_its_advantage(rendered):
    folder, records, text = rendered
    facts = _recommendation(folder, records, list(GRID))
    assert facts.best.arch == "gru" and facts.others == 4 and facts.untested == ()
    # lstm is slower, bigger and hungrier than gru: it has no advantage to offer.
    assert [(t.arch, t.advantages) for t in facts.ties] == [("lstm", ())]
    best_at = {entry.title: entry for entry in facts.best_at}
    fastest = best_at["Lowest latency"]
    assert (fastest.winner.arch, fastest.versus, fastest.margin) == ("tfidf_logreg", "gru", pytest.approx(40.0))
    assert fastest.gap.gap == pytest.approx(-0.1115) and fastest.gap.comparison.significant
    assert best_at["Most training samples/s"].winner.arch == "tfidf_logreg"
    assert best_at["Least training memory"].winner.arch == "bag"
    bag = next(b for b in facts.baselines if b.base.arch == "bag")
    assert (bag.gap.arch, bag.gap.gap, bag.tied) == ("gru", pytest.approx(0.0615), ())
    # The rendering of those facts.
    advice = _section(text, "Which one should I use?")
    assert "**Most accurate: `gru`**, test accuracy 86.15%" in advice
    assert "with no speed or size advantage" in advice and "40.0x lower latency than `gru`" in advice
    assert "11.15 points less accurate than `gru` (significant" in advice


def test_recommendation_with_a_faster_tie(tmp_path):
    grid = {
        "lstm": {"accuracy": 0.860, "metrics": {"latency_ms_p50": 4.6, "train_peak_mem_mb": 100.0}},
        "gru": {"accuracy": 0.858, "metrics": {"latency_ms_p50": 2.0, "train_peak_mem_mb": 100.0}},
    }
    folder, records = make_grid(tmp_path, grid, seeds=[0, 1, 2])
    facts = _recommendation(folder, records)
    assert facts.best.arch == "lstm"
    (tie,) = facts.ties
    assert tie.arch == "gru" and tie.comparison.diff == pytest.approx(-0.002)
    assert tie.advantages == (("latency_ms_p50", pytest.approx(2.3)),)
    fastest = facts.best_at[0]
    assert (fastest.winner.arch, fastest.gap.gap) == ("gru", pytest.approx(-0.002))
    assert not fastest.gap.comparison.significant
    rows = summarize(records)
    advice = recommend(rows, Comparer(folder, rows))
    assert re.search(r"\(−0\.20 points, 95% CI .*\) and 2\.3x lower latency \(p50\)", advice)


def test_a_non_recurrent_baseline_that_beats_every_recurrent_model_is_called_out(tmp_path):
    grid = {"lstm": {"accuracy": 0.84}, "gru": {"accuracy": 0.885},
            "tfidf_logreg": {"accuracy": 0.886, "recurrent": False}}  # fmt: skip
    folder, records = make_grid(tmp_path, grid, seeds=[0, 1])
    facts = _recommendation(folder, records)
    assert facts.best.arch == "tfidf_logreg" and [t.arch for t in facts.ties] == ["gru"]
    (baseline,) = facts.baselines
    assert (baseline.base.arch, baseline.gap, baseline.tied) == ("tfidf_logreg", None, ())
    rows = summarize(records)
    assert "is at least as accurate as every recurrent model** here on mean test accuracy" in (
        recommend(rows, Comparer(folder, rows)))


def test_a_baseline_tied_with_a_more_accurate_recurrent_model_is_not_said_to_beat_it(tmp_path):
    grid = {"gru": {"accuracy": 0.861}, "bag": {"accuracy": 0.860, "recurrent": False}}
    folder, records = make_grid(tmp_path, grid, seeds=[0])
    rows = summarize(records)
    text = recommend(rows, Comparer(folder, rows))
    assert "No recurrent model is significantly more accurate than the non-recurrent `bag`" in text
    assert "`gru` has a higher mean, but the difference is not significant (a tie)" in text
    assert "matches or beats" not in text and "at least as accurate" not in text


def test_missing_predictions_are_reported_not_guessed(tmp_path):
    grid = {"lstm": {"accuracy": 0.86}, "gru": {"accuracy": 0.80, "predictions": False}}
    folder, records = make_grid(tmp_path, grid, seeds=[0])
    text = render_report(folder).read_text(encoding="utf-8")
    assert "not available: `gru`: predictions not kept" in _section(text, "Paired comparisons")
    assert _recommendation(folder, records).untested == (("gru", "`gru`: predictions not kept"),)
    assert "Not tested for significance against `gru`" in text


def test_a_single_architecture_report(tmp_path):
    folder, _ = make_grid(tmp_path, {"lstm": {"accuracy": 0.85}}, seeds=[0])
    text = render_report(folder).read_text(encoding="utf-8")
    assert "only architecture in this run" in text
    assert "nothing to compare" in _section(text, "Paired comparisons")
    assert "**" not in _table_row(text, "lstm")[4]  # nothing to be best against


def test_pareto_set():
    records = [
        make_record("a", 0, metrics={"test_accuracy": 0.9, "latency_ms_p50": 5.0, "train_peak_mem_mb": 100.0}),
        make_record("b", 0, metrics={"test_accuracy": 0.8, "latency_ms_p50": 1.0, "train_peak_mem_mb": 100.0}),
        make_record("c", 0, metrics={"test_accuracy": 0.8, "latency_ms_p50": 2.0, "train_peak_mem_mb": 100.0}),
        make_record("d", 0, metrics={"test_accuracy": 0.7, "latency_ms_p50": None, "train_peak_mem_mb": 1.0}),
    ]  # fmt: skip
    front, dominated_by, left_out = pareto_set(summarize(records))
    assert [r.arch for r in front] == ["a", "b"]
    assert dominated_by == {"c": "b"}
    assert [r.arch for r in left_out] == ["d"]


# ---- rendering ----------------------------------------------------------------------------------


def test_report_header_and_sections(rendered):
    _, _, text = rendered
    assert text.startswith("# rnnbench")
    for needle in ("2025-01-02", "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
                   "train 20,000, validation 5,000, test 25,000", "Test CPU @ 2.0GHz, 2 thread(s) per run", "| **GPU** | none |",
                   "Python 3.11.9, torch 2.13.0+cpu", "`0123456789ab`", "1,800 s",
                   "Learning Word Vectors for Sentiment Analysis", "ACL 2011",
                   "fixed: every architecture trained", "this machine only",
                   "## Paired comparisons", "## How this was measured", "Student t interval",
                   "## Published results (not measured here)", "NBSVM", "90.6%"):  # fmt: skip
        assert needle in text, needle
    assert "`data.split_seed` | `1234`" in text


def test_plots_are_written_embedded_and_non_empty(rendered):
    folder, _, text = rendered
    embedded = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", text)
    assert len(embedded) == 4
    for relative in embedded:
        data = (folder / relative).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_rendering_twice_gives_identical_markdown(rendered):
    folder, _, text = rendered
    csv = (folder / "summary.csv").read_bytes()
    render_report(folder)
    assert (folder / "report.md").read_text(encoding="utf-8") == text
    assert (folder / "summary.csv").read_bytes() == csv
    assert not list(folder.rglob("*.tmp"))


def test_fewest_parameters_compares_networks_with_networks(rendered):
    folder, records, text = rendered
    fewest = next(e for e in _recommendation(folder, records, list(GRID)).best_at
                  if e.metric == "param_count")  # fmt: skip
    # tfidf_logreg's 20,001 coefficients are fewer, but they are not network weights.
    assert fewest.winner.arch == "rnn" and [r.arch for r in fewest.not_compared] == ["tfidf_logreg"]
    assert (fewest.versus, fewest.margin) == ("gru", pytest.approx(680 / 600))
    assert "(20.0k fitted coefficients)" in _section(text, "Which one should I use?")


def test_every_metric_definition_is_in_the_report(rendered):
    _, _, text = rendered
    section = _section(text, "How this was measured")
    for metric in METRICS.values():
        assert metric.definition in section, metric.name


@pytest.fixture
def scratch_metrics():
    """Registered metrics restored after the test, so a test may register its own."""
    saved = dict(METRICS)
    yield METRICS
    METRICS.clear()
    METRICS.update(saved)


def test_adding_a_metric_is_one_registration(tmp_path, scratch_metrics):
    # The registration ...
    register_metric("grad_norm_p95", label="Grad norm p95", unit="1", higher_is_better=False,
                    bounds=(0.0, None),
                    summary="mean_sd", display="sig3", in_terminal=True,
                    definition="95th percentile of the gradient norm over the training steps")  # fmt: skip
    # ... and its computation (here: values in the newer records). lstm's records predate the
    # metric and lack it; they still validate and render, with an empty cell.
    records = [make_record("lstm", seed) for seed in (0, 1)]
    records += [make_record("gru", seed, metrics={"grad_norm_p95": v}) for seed, v in ((0, 1.5), (1, 2.5))]
    folder = write_results(tmp_path, records, make_manifest(["lstm", "gru"], [0, 1]))
    text = render_report(folder).read_text(encoding="utf-8")
    headers = [c.strip() for c in _section(text, "Results").splitlines()[2].strip("|").split("|")]
    column = headers.index("Grad norm p95 ↓")
    assert _table_row(text, "gru")[column] == "2.00 ± 0.71"
    assert _table_row(text, "lstm")[column] == "—"
    assert "| Grad norm p95 | 95th percentile of the gradient norm over the training steps |" in text
    frame = summary_frame(records)
    assert list(frame["grad_norm_p95_mean"].fillna(-1)) == [-1, 2.0]
    assert "Grad norm p95 ↓" in terminal_summary(records, None)
    # A record the code cannot read is still refused: the schema version guards that.
    with pytest.raises(RecordError, match="schema_version 99 is not one of"):
        validate_record({**records[0], "schema_version": 99})


def test_a_metric_registration_is_checked(scratch_metrics):
    with pytest.raises(ValueError, match="metric 'test_accuracy' is already registered"):
        register_metric("test_accuracy", label="x", unit="x", higher_is_better=True,
                        summary="mean_sd", display="sig3", definition="x", bounds=(0, 1))  # fmt: skip
    with pytest.raises(ValueError, match="display must be one of"):
        register_metric("y", label="y", unit="y", higher_is_better=True, summary="mean_sd",
                        display="stars", definition="y", bounds=(0, 1))  # fmt: skip
    with pytest.raises(ValueError, match="summary must be one of"):
        register_metric("y", label="y", unit="y", higher_is_better=True, summary="median",
                        display="sig3", definition="y", bounds=(0, 1))  # fmt: skip
    with pytest.raises(ValueError, match="bounds .* have the low end above the high one"):
        register_metric("y", label="y", unit="y", higher_is_better=True, summary="mean_sd",
                        display="sig3", definition="y", bounds=(1, 0))  # fmt: skip
    with pytest.raises(TypeError, match="bounds"):  # no default: every metric declares them
        register_metric("y", label="y", unit="y", higher_is_better=True, summary="mean_sd",
                        display="sig3", definition="y")  # fmt: skip


def test_every_registered_metric_declares_its_range_and_shares_are_within_0_and_1():
    for metric in METRICS.values():
        assert metric.bounds[0] is not None, metric.name  # none of them can be negative
        if metric.unit == "fraction" and metric.name != "efficiency":  # efficiency is a ratio
            assert metric.bounds == (0.0, 1.0), metric.name


def test_the_version_1_example_still_renders(tmp_path):
    # Its records predate infer_peak_mem_with_weights_mb and the declared model facts.
    example = tmp_path / "example"
    shutil.copytree(REPO / "tests" / "fixtures" / "example-report-v1", example)
    result = subprocess.run([sys.executable, str(REPO / "run_all.py"), "--report-only", "--out",
                             str(example)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = (example / "report.md").read_text(encoding="utf-8")
    for arch in ("rnn", "lstm", "gru", "bilstm", "bag_of_embeddings", "tfidf_logreg"):
        row = _table_row(text, arch)
        assert row[5].removesuffix(" ‡").endswith("(n=3)"), row  # a test accuracy over three seeds
    assert _speed_row(text, "lstm")[_speed_headers(text).index("Infer peak MiB ↓")] == "—"
    assert "Not compared: `tfidf_logreg`" in text
    # Its records predate concurrent_runs too: one run at a time, nothing marked as contended.
    assert "| **Runs at once** | 1: no two runs of this grid at once (`--jobs 1`) |" in text
    assert "†" not in text


def test_figures_measured_while_runs_shared_the_machine_are_marked(tmp_path):
    # lstm's two seeds ran beside another run (--jobs 2); gru ran alone.
    records = [make_record("lstm", 0), make_record("lstm", 1), make_record("gru", 0)]
    records[1]["concurrent_runs"] = 2
    records[0]["concurrent_runs"] = 1
    write_results(tmp_path, records, make_manifest(["lstm", "gru"], [0, 1], jobs=2,
                                                   executor="local"))  # fmt: skip
    text = render_report(tmp_path).read_text(encoding="utf-8")
    headers = _speed_headers(text)
    lstm, gru = _speed_row(text, "lstm"), _speed_row(text, "gru")
    contended = [m.label for m in METRICS.values() if m.contended and m.in_table]
    assert "Train samples/s" in contended and "Latency p50 ms" in contended
    for name in contended:
        column = next(i for i, h in enumerate(headers) if h.startswith(name + " "))
        assert lstm[column].endswith(" †") and not gru[column].endswith("†"), name
    # accuracy does not depend on the machine's load: its table has no mark
    assert "†" not in _section(text, "Results").split("### Speed and memory")[0]
    assert "† measured while up to 2 runs shared the machine" in text
    assert "`gru` ran alone: do not compare their unmarked figures with marked ones" in text
    assert "| **Runs at once** | up to 2 (`--jobs 2`); figures marked †" in text
    terminal = terminal_summary(records, make_manifest(["lstm", "gru"], [0, 1]))
    assert "†" in terminal.splitlines()[3] and "measured while up to 2 runs" in terminal
    assert list(summary_frame(records)["concurrent_runs_max"]) == [2, 1]
    bad = make_record("gru", 0)
    bad["concurrent_runs"] = 0
    with pytest.raises(RecordError, match="'concurrent_runs' must be a whole number >= 1"):
        validate_record(bad)


# ---- the command line ---------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_cli_rejects_a_folder_that_is_not_a_results_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = _cli(str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "manifest.json" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_renders_the_rest_of_a_folder_with_a_corrupt_record_and_names_it(tmp_path):
    # python -m reports RESULTS_DIR, one of two records damaged
    folder, _ = make_grid(tmp_path, {"lstm": {"accuracy": 0.85}}, seeds=[0, 1])
    record_path = sorted((folder / "runs").glob("*/record.json"))[0]
    record = json.loads(record_path.read_text())
    del record["metrics"]["test_accuracy"]
    record_path.write_text(json.dumps(record))
    run_id = record_path.parent.name
    result = _cli(str(folder))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(record_path) in result.stderr and "test_accuracy" in result.stderr
    assert "--resume" in result.stderr
    report = (folder / "report.md").read_text()
    assert "## Runs that could not be read" in report
    assert f"- `{run_id}` (`runs/{run_id}/record.json`): record metrics missing: test_accuracy" in report
    assert "| 1 |" in report or "1 seed" in report  # the readable seed is still reported


def test_cli_with_only_unreadable_records_renders_nothing(tmp_path):
    folder, _ = make_grid(tmp_path, {"lstm": {"accuracy": 0.85}}, seeds=[0])
    (folder / "report.md").write_text("previous report")
    record_path = next((folder / "runs").glob("*/record.json"))
    record_path.write_text("{trunc")
    result = _cli(str(folder))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(record_path) in result.stderr
    assert (folder / "report.md").read_text() == "previous report"
    assert not (folder / "summary.csv").exists() and not (folder / "plots").exists()
    with pytest.raises(RecordError):
        render_report(folder)


def test_cli_on_a_read_only_folder_gives_one_line(tmp_path):
    # python -m reports RESULTS_DIR, the folder mounted read-only (root ignores chmod)
    folder, _ = make_grid(tmp_path, {"lstm": {"accuracy": 0.85}}, seeds=[0])
    with read_only(folder):
        result = _cli(str(folder))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"cannot write {folder}/" in result.stderr and "Read-only file system" in result.stderr
    assert not (folder / "report.md").exists()


def test_cli_help_and_success(tmp_path):
    assert "RESULTS_DIR" in _cli("--help").stdout
    folder, _ = make_grid(tmp_path, {"lstm": {"accuracy": 0.85}}, seeds=[0])
    result = _cli(str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(folder / "report.md")


def test_write_results_keeps_records_valid(tmp_path):
    record = make_record("gru", 0)
    folder = write_results(tmp_path, [record], make_manifest(["gru"], [0]))
    assert (folder / "runs" / record["run_id"] / "record.json").is_file()


def test_the_header_says_when_several_commits_ran_one_code():
    from reports.markdown import _git

    one_code = {"commits": [{"commit": "a" * 40, "dirty": False, "code": "h"},
                            {"commit": "b" * 40, "dirty": False, "code": "h"}]}
    assert _git([], one_code) == (f"`{'a' * 12}`, `{'b' * 12}` (one code: the commits differ "
                                  "only under `docs/`)")
    two_codes = {"commits": [{**one_code["commits"][0]}, {"commit": "b" * 40, "code": "k"}]}
    assert _git([], two_codes).endswith("(varies across runs)")


def test_a_setting_the_runs_device_ignores_is_shown_as_not_applying(rendered):
    import dataclasses

    from bench.results.records import DEVICE_ONLY_SETTINGS
    from bench.run.config import RunConfig

    config = RunConfig()
    for setting in DEVICE_ONLY_SETTINGS:  # each names a real setting
        group, name = setting.split(".")
        assert name in {f.name for f in dataclasses.fields(getattr(config, group))}, setting
    from reports.markdown import _not_applying

    assert _not_applying("train.bf16", {"cpu"}) == " (does not apply: CUDA only)"
    assert _not_applying("train.bf16", {"cpu", "cuda"}) == ""  # it applies to some runs
    assert _not_applying("train.flush_denormal", {"cuda"}) == " (does not apply: CPU only)"
    assert _not_applying("train.lr", {"cpu"}) == ""
    committed = (REPO / "docs" / "example-report" / "report.md").read_text(encoding="utf-8")
    assert "| `train.bf16` | `true` (does not apply: CUDA only) |" in committed  # CPU runs
    assert "| `train.flush_denormal` | `true` |" in committed


def test_a_report_defines_the_words_it_uses_and_no_others(rendered):
    from reports.markdown import with_glossary

    _, _, text = rendered
    words = text.split("## Words used here", 1)[1]
    assert "- **tie**: two architectures" in words and "- **Pareto-optimal**:" in words
    assert "**horizon**" not in words  # an IMDb report has no memory horizon
    assert with_glossary("nothing special\n") == "nothing special\n"
    assert "**load**" in with_glossary("at load 2 of 16\n") and "**load**" not in with_glossary("loads it\n")


def test_a_budget_bound_run_is_marked_in_the_table_and_the_advice_says_so(tmp_path):
    from reports.table import budget_bound

    grid = {"lstm": {"accuracy": 0.86}, "gru": {"accuracy": 0.80}}
    folder, records = make_grid(tmp_path, grid, seeds=[0, 1])
    lstm = [r for r in records if r["arch"] == "lstm"]
    for record, best in zip(lstm, (3, 1), strict=True):  # patience 2, 3 epochs run
        record.update(stop_reason="epochs", metrics={**record["metrics"], "best_epoch": best})
    assert [budget_bound(r) for r in lstm] == [True, False]  # still improving; stalled for 2
    assert not budget_bound({**lstm[0], "stop_reason": "early_stop"})
    rows = summarize(records)
    assert _row_cells(main_table(rows), "lstm")[5].endswith("(n=2) ‡")
    assert not _row_cells(main_table(rows), "gru")[5].endswith("‡")
    text = recommend(rows, Comparer(folder, rows))
    assert text.endswith("‡ Every statement above that names `lstm` rests on budget-bound runs "
                         "(the epoch cap ended training before early stopping would have): more epochs "
                         "might change it.")


def _row_cells(table: str, arch: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| `{arch}`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_leaders_are_compared_among_themselves_with_holms_correction(tmp_path):
    grid = {"lstm": {"accuracy": 0.86}, "gru": {"accuracy": 0.87},
            "bag": {"accuracy": 0.85, "recurrent": False},
            "tfidf_logreg": {"accuracy": 0.88, "recurrent": False}}  # fmt: skip
    folder, _ = make_grid(tmp_path, grid, seeds=[0])
    text = _section(render_report(folder).read_text(encoding="utf-8"), "Paired comparisons")
    assert "| Against | Seed ids paired | Reviews | `tfidf_logreg` − it (points) | 95% CI (points) | p | Holm p |" in text
    leaders = text.split("Among the leaders:", 1)[1]
    # gru against lstm is new; gru against the best floor (tfidf_logreg) is in the table above
    assert "| best recurrent against the runner-up recurrent | `gru` − `lstm` | 0 |" in leaders
    assert "against the best floor" not in leaders
    # each recurrent model whose mean passes a floor's, against it (the recommendation's
    # sentences on recurrence over the floors quote these)
    assert "| a recurrent model above a floor, against it | `gru` − `bag` | 0 |" in leaders
    assert "| a recurrent model above a floor, against it | `lstm` − `bag` | 0 |" in leaders
    assert "the 6 comparisons of this section are a family: *Holm p*" in text
