"""The memory suite's report section and the notebook's table, from hand-made records."""

import itertools
import json
import re
import shutil
from pathlib import Path

import pytest

from bench.results.records import RecordError
from reports import render_report, summary_frame, terminal_summary
from reports.memory import (
    SCALES,
    Load,
    Verdict,
    horizons,
    memory_facts,
    memory_rows,
    memory_section,
    notebook_facts,
    notebook_section,
    rank_adjectives,
    render_notebook,
)
from reports.render import build_outputs
from reports.table import summarize
from tests.factories import (
    make_grid,
    make_manifest,
    make_memory_record,
    make_memory_records,
    memory_suite_manifest,
    write_results,
)
from tests.test_reports import GRID

LIGHT, HEAVY = (16, 2), (16, 3)

#: A sweep with every case: gru solves every T (≥ 512), lstm changes at 32 -> 64 with three
#: seeds there, rnn fails the smallest T, bilstm is solved at 64 after failing 32 (horizon 16),
#: and the two floors sit at chance.
SWEEP = {
    "rnn": {LIGHT: {16: [0.55, 0.52, 0.53]}, HEAVY: {16: [0.51, 0.50, 0.52]}},
    "lstm": {LIGHT: {16: [0.99], 32: [0.96, 0.97, 0.98], 64: [0.70, 0.75, 0.80]},
             HEAVY: {16: [0.97, 0.96, 0.98], 32: [0.60, 0.62, 0.64]}},
    "gru": {LIGHT: {16: [1.0], 32: [1.0], 64: [0.99], 128: [0.99], 256: [0.98], 512: [0.97, 0.96, 0.98]},
            HEAVY: {16: [1.0], 32: [0.99], 64: [0.98], 128: [0.97, 0.96, 0.98], 256: [0.80, 0.70, 0.75]}},
    "bilstm": {LIGHT: {16: [0.99, 0.98, 0.97], 32: [0.60, 0.62, 0.58], 64: [0.96]},
               HEAVY: {16: [0.97, 0.96, 0.98], 32: [0.60, 0.62, 0.64]}},
    "bag_of_embeddings": {LIGHT: {16: [0.51], 512: [0.49]}, HEAVY: {16: [0.50]}},
    "tfidf_logreg": {LIGHT: {512: [0.505]}},
}  # fmt: skip
ARCHS = ["rnn", "lstm", "gru", "bilstm", "bag_of_embeddings", "tfidf_logreg"]


def _manifest(**overrides):
    return make_manifest(ARCHS, [0], tasks=["memory"], **memory_suite_manifest(), **overrides)


def _horizon_texts(records, threshold=0.95):
    rows, _ = memory_rows(records, ARCHS)
    found = horizons([r for r in rows if r.recurrent], threshold)
    return {(h.arch, (h.load.alphabet, h.load.n_signals)): h.text for h in found}


def _table_lines(text: str, title: str) -> list[str]:
    """The lines of the first table after ``title``."""
    blocks = text.split(title, 1)[1].split("\n\n")
    return next(b for b in blocks if b.startswith("|")).splitlines()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_horizons_below_exact_beyond_and_after_a_failure():
    texts = _horizon_texts(make_memory_records(SWEEP))
    assert texts[("rnn", LIGHT)] == "< 16" and texts[("rnn", HEAVY)] == "< 16"
    assert texts[("lstm", LIGHT)] == "32" and texts[("lstm", HEAVY)] == "16"
    assert texts[("gru", LIGHT)] == "≥ 512" and texts[("gru", HEAVY)] == "128"
    # Solved at 64 after failing 32: only unbroken success counts.
    assert texts[("bilstm", LIGHT)] == "16"
    # The floors are declared non-recurrent: no horizon for them.
    assert not any(arch in ("bag_of_embeddings", "tfidf_logreg") for arch, _ in texts)


def test_the_threshold_is_the_manifests_and_a_mean_just_at_it_counts():
    records = make_memory_records({"gru": {LIGHT: {16: [0.95, 0.95, 0.95], 32: [0.9]}}})
    assert _horizon_texts(records)[("gru", LIGHT)] == "16"
    assert _horizon_texts(records, threshold=0.96)[("gru", LIGHT)] == "< 16"
    text, _ = memory_section(records, make_manifest(["gru"], [0], **memory_suite_manifest(threshold=0.85)))
    assert "at least 85%" in text and _horizon_cells(text)["gru"] == ["≥ 32"]
    facts = memory_facts(records, make_manifest(["gru"], [0]))  # no memory_suite block at all
    assert (facts.threshold, facts.threshold_declared) == (0.95, False)
    assert memory_facts(records, _manifest()).threshold_declared


def _horizon_cells(text: str) -> dict[str, list[str]]:
    lines = _table_lines(text, "### How far each architecture carries what it read")
    return {_cells(ln)[0].strip("`"): _cells(ln)[1:] for ln in lines[2:]}


def test_memory_facts_horizons_order_floors_and_budget():
    facts = memory_facts(make_memory_records(SWEEP), _manifest())
    light, heavy = facts.loads  # lightest first
    assert (light.alphabet, light.n_signals, heavy.n_signals) == (16, 2, 3)
    # Longest first, at the heaviest load, then the lighter.
    assert facts.order == ("gru", "lstm", "bilstm", "rnn")
    assert [[h.arch for h in group] for group in facts.ranking(light)] == [["gru"], ["lstm"], ["bilstm"], ["rnn"]]
    assert [[h.arch for h in group] for group in facts.ranking(heavy)] == [["gru"], ["lstm", "bilstm"], ["rnn"]]
    gru, bilstm = facts.horizon("gru", light), facts.horizon("bilstm", light)
    assert (gru.last_solved, gru.first_failed) == (512, None)
    assert (bilstm.last_solved, bilstm.first_failed, bilstm.solved_after_failing) == (16, 32, [64])
    assert facts.horizon("rnn", heavy).last_solved is None
    assert [r.arch for r in facts.floors] == ["bag_of_embeddings"] * 3 + ["tfidf_logreg"]
    assert facts.floor_gap == pytest.approx(0.01) and facts.left_out == ()
    budget = facts.budget
    assert (budget.epochs, budget.patience, budget.n_train) == ((12,), (3,), (4_000,))
    assert (budget.target_accuracy, budget.seeds_at_change) == (0.97, 3)
    assert budget.stopped_at_target == len(make_memory_records(SWEEP))
    # the trained runs: the floors' fits have no validation accuracy to stop at
    from reports.table import training_of

    assert budget.runs == sum(training_of(r) == "gradient" for r in make_memory_records(SWEEP))


def test_memory_section_tables_sentences_and_intervals():
    text, plots = memory_section(make_memory_records(SWEEP), _manifest())
    horizon = _horizon_cells(text)
    # The horizon table follows the facts' order; columns lightest load first.
    assert list(horizon) == ["gru", "lstm", "bilstm", "rnn"]
    assert horizon["gru"] == ["≥ 512", "128"] and horizon["rnn"] == ["< 16", "< 16"]
    assert "| Architecture | Horizon T, 2 of 16 | Horizon T, 3 of 16 |" in text
    assert "`gru` holds every distance tried, up to T = 512; `lstm` up to T = 32;" in text
    assert "`lstm` and `bilstm` up to T = 16" in text  # a tie at the heavy load
    change = {(_cells(ln)[0], _cells(ln)[1]): _cells(ln)
              for ln in _table_lines(text, "### Accuracy where the result changes")[2:]}
    lstm = change[("`lstm`", "2 of 16")]
    # Mean 97%, s = 1 point, t(0.975, 2) = 4.3027: ± 2.48 over seeds; 2,000 test sequences add
    # 1.96 * sqrt(0.97 * 0.03 / 2000) = ± 0.75: in quadrature, 97 ± 2.59.
    assert lstm[3:] == ["32", "97.00 [94.41, 99.59] (n=3)", "64", "75.00 [62.44, 87.56] (n=3)"]
    gru = change[("`gru`", "2 of 16")]
    assert gru[2:] == ["≥ 512", "512", "97.00 [94.41, 99.59] (n=3)", "—", "—"]
    rnn = change[("`rnn`", "2 of 16")]
    assert rnn[3:6] == ["—", "—", "16"] and rnn[6].endswith("(n=3)")
    assert "| `tfidf_logreg` | 2 of 16 | T = 512: 50.50 [48.31, 52.69] (n=1) |" in text
    assert "at most 1.00 points from chance" in text
    assert "at most 12 epochs" in text and "4,000 training sequences" in text
    assert "reaches 97%" in text and "Hochreiter & Schmidhuber 1997" in text
    assert set(plots) == {"memory/memory_horizon.png"}
    assert plots["memory/memory_horizon.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Test accuracy against distance](plots/memory/memory_horizon.png)" in text
    # No IMDb runs here: one line says how to get the notebook's table.
    assert "Run the IMDb comparison into this folder too" in text


def _cut_off(record, *, epochs=12, extends=0):
    """``record`` ended by its epoch cap while still improving (budget-bound), trained for
    ``epochs``; ``extends``: the epochs of the run it extends (a budget extension, its own run
    id), 0: none."""
    record["stop_reason"] = "epochs"
    record["metrics"].update(epochs_run=epochs, best_epoch=epochs)
    return _trained_for(record, epochs=epochs, extends=extends)


def _trained_for(record, *, epochs, extends=0):
    record["spec"]["train"]["epochs"] = epochs
    if extends:
        record["spec"]["train"]["extends_epochs"] = extends
        record["run_id"] += f"-x{epochs}"
    return record


def _extended_sweep():
    """gru at 2 of 16: solves 16; at 32 cut off at 12 epochs (60%), solved at 24 (99%); fails
    64 early. lstm: cut off at 32, and cut off again at 24 epochs (70%)."""
    records = make_memory_records({"gru": {LIGHT: {16: [1.0], 64: [0.55]}},
                                   "lstm": {LIGHT: {16: [0.99]}}}, floors=())  # fmt: skip
    records.append(_cut_off(make_memory_record("gru", 0, distance=32, accuracy=0.6)))
    records.append(_trained_for(make_memory_record("gru", 0, distance=32, accuracy=0.99),
                                epochs=24, extends=12))  # fmt: skip
    records.append(_cut_off(make_memory_record("lstm", 0, distance=32, accuracy=0.6)))
    records.append(_cut_off(make_memory_record("lstm", 0, distance=32, accuracy=0.7), epochs=24,
                            extends=12))  # fmt: skip
    return records


def test_an_extension_decides_in_place_of_the_run_it_extends_and_the_report_says_so():
    records = _extended_sweep()
    manifest = make_manifest(["gru", "lstm"], [0], **memory_suite_manifest(extension_factor=2))
    facts = memory_facts(records, manifest)
    gru, lstm = facts.horizon("gru", Load(*LIGHT)), facts.horizon("lstm", Load(*LIGHT))
    # The extension's result stands for the run: solved at 32, one run there, not two.
    assert (gru.last_solved, gru.first_failed) == (32, 64) and len(gru.point(32).ok) == 1
    assert gru.point(32).ok[0]["spec"]["train"]["epochs"] == 24
    assert (lstm.last_solved, lstm.first_failed) == (16, 32) and lstm.point(32).budget_bound
    assert [(e.arch, e.distance, e.still_bound) for e in facts.extensions] == [
        ("gru", 32, False), ("lstm", 32, True)]
    assert facts.budget.epochs == (12,) and facts.budget.extension_factor == 2
    assert [(h.arch, t) for h, t, _ in facts.bound_decisions] == [("lstm", 32)]
    text, _ = memory_section(records, manifest)
    # The declared budget, in words, and which cells rest on an extension.
    assert "Declared extension: a run whose result decides a horizon" in text
    assert "is run once more, the same run with 2× its epochs (24)" in text
    assert ("Extended runs (each extension's result stands for its run in the tables above): "
            "`gru` at T = 32, 2 of 16, seed 0: 60.00% after 12 epochs ‡ → 99.00% after 24 epochs; "
            "`lstm` at T = 32, 2 of 16, seed 0: 60.00% after 12 epochs ‡ → 70.00% after 24 epochs ‡.") in text
    assert ("1 horizon decision (an architecture's last solved or first failed T) still rests on "
            "budget-bound runs (‡) after the extensions") in text
    assert "`lstm`, 2 of 16, T = 32 (first failed): 1 of 1 seeds (1 extended and cut off again)" in text
    # The README's and findings' headline says the declared budget too (not for an older folder).
    from reports.headline import epochs_budget

    assert epochs_budget(manifest["memory_suite"]) == (
        "12 epochs (a deciding run the cap cut off below the threshold: 24 once more)")
    assert epochs_budget(memory_suite_manifest()["memory_suite"]) == "12 epochs"
    # summary.csv holds the extension's row, not both.
    rows, _ = memory_rows(records)
    assert len([r for r in rows if r.arch == "gru" and r.setting["distance"] == 32][0].records) == 1


def test_a_sweep_without_the_extension_rule_says_no_run_was_extended():
    records = [r for r in _extended_sweep() if not r["spec"]["train"].get("extends_epochs")]
    text, _ = memory_section(records, make_manifest(["gru", "lstm"], [0], **memory_suite_manifest()))
    assert "**No run here was extended**: the sweep that made these runs predates" in text
    assert "Extended runs" not in text and "still rest" not in text
    assert ("2 horizon decisions (an architecture's last solved or first failed T) rest on "
            "budget-bound runs (‡), so more epochs might move them: `gru`, 2 of 16, T = 32 (first "
            "failed): 1 of 1 seeds (1 below the threshold, not extended)") in text
    assert "running the suite into this folder again (`--resume`) runs those extensions" in text
    clean, _ = memory_section(make_memory_records(SWEEP), make_manifest(
        ARCHS, [0], tasks=["memory"], **memory_suite_manifest(extension_factor=2)))
    assert "No deciding run needed an extension." in clean
    assert "No horizon decision (an architecture's last solved or first failed T) rests on a budget-bound run." in clean


def test_a_failed_run_is_not_a_solved_distance():
    records = make_memory_records({"gru": {LIGHT: {16: [0.99], 32: [0.99]}}})
    records.append(make_memory_record("gru", 0, distance=64, error=("oom", "out of memory")))
    manifest = make_manifest(["gru"], [0], **memory_suite_manifest())
    (horizon,) = memory_facts(records, manifest).horizons
    assert (horizon.last_solved, horizon.first_failed, horizon.text) == (32, 64, "32")
    assert horizon.point(64).failed and not horizon.point(64).ok
    text, _ = memory_section(records, manifest)
    change = _cells(_table_lines(text, "### Accuracy where the result changes")[2])
    assert change[3:] == ["32", "99.00 [98.56, 99.44] (n=1)", "64", "FAIL (oom: out of memory)"]


def test_the_plot_is_written_deterministic_and_embedded(tmp_path):
    records = make_memory_records(SWEEP)
    folder = write_results(tmp_path / "mem", records, _manifest())
    first = build_outputs(folder)
    assert first == build_outputs(folder)  # same bytes, figure included
    assert len(first["plots/memory/memory_horizon.png"]) > 10_000
    report = render_report(folder).read_text(encoding="utf-8")
    assert (folder / "plots" / "memory" / "memory_horizon.png").is_file()
    assert report.startswith("# rnnbench: recurrent text classifiers on Memory")
    assert "## Memory horizons" in report and "## Results" not in report
    assert "The notebook's table" not in report


def test_summary_csv_keeps_each_distance_and_load_apart(tmp_path):
    records = make_memory_records(SWEEP)
    frame = summary_frame(records, ARCHS)
    assert list(frame.columns[:5]) == ["arch", "task", "alphabet", "n_signals", "distance"]
    lstm = frame[(frame["arch"] == "lstm") & (frame["n_signals"] == 2)]
    assert list(lstm["distance"]) == [16, 32, 64] and list(lstm["n_ok"]) == [1, 3, 3]
    assert list(lstm["test_accuracy_mean"].round(4)) == [0.99, 0.97, 0.75]
    assert len(frame) == sum(len(by_t) for loads in SWEEP.values() for by_t in loads.values())
    # An IMDb-only frame has no such columns.
    _, imdb = make_grid(tmp_path / "imdb", {"gru": {}}, seeds=[0])
    assert "distance" not in summary_frame(imdb).columns
    # The terminal table after a run: a row per setting too.
    lines = terminal_summary(records + imdb, _manifest()).splitlines()
    assert lines[1].split()[:4] == ["task", "arch", "setting", "seeds"]
    lstm = next(ln for ln in lines if ln.split()[1:5] == ["lstm", "alphabet=16", "n_signals=2", "distance=32"])
    assert lstm.split()[5] == "3" and "97.00 ± 1.00" in lstm
    assert any(ln.startswith("imdb    gru") for ln in lines)


#: IMDb figures for the notebook's four: sizes rank as the notebook says, lstm trains fastest,
#: bilstm is the most accurate, lstm is dominated by gru on (accuracy, latency, memory).
NOTEBOOK_GRID = {
    "rnn": {"accuracy": 0.80, "metrics": {"param_count": 10_000, "train_samples_per_s": 500.0,
                                          "infer_samples_per_s": 2000.0, "latency_ms_p50": 1.0,
                                          "train_peak_mem_mb": 50.0}},
    "lstm": {"accuracy": 0.85, "metrics": {"param_count": 33_000, "train_samples_per_s": 1000.0,
                                           "infer_samples_per_s": 4000.0, "latency_ms_p50": 3.0,
                                           "train_peak_mem_mb": 120.0}},
    "gru": {"accuracy": 0.86, "metrics": {"param_count": 25_000, "train_samples_per_s": 800.0,
                                          "infer_samples_per_s": 3000.0, "latency_ms_p50": 2.0,
                                          "train_peak_mem_mb": 110.0}},
    "bilstm": {"accuracy": 0.87, "metrics": {"param_count": 66_000, "train_samples_per_s": 300.0,
                                             "infer_samples_per_s": 1000.0, "latency_ms_p50": 5.0,
                                             "train_peak_mem_mb": 200.0}},
}  # fmt: skip
#: Horizons: gru ≥ 512 / 128, lstm and bilstm 64 / 32 (tied), rnn < 16 at both loads.
NOTEBOOK_SWEEP = {
    "rnn": {LIGHT: {16: [0.5]}, HEAVY: {16: [0.5]}},
    "lstm": {LIGHT: {16: [1.0], 32: [1.0], 64: [0.99], 128: [0.6]},
             HEAVY: {16: [1.0], 32: [0.99], 64: [0.6]}},
    "gru": {LIGHT: {t: [1.0] for t in (16, 32, 64, 128, 256, 512)},
            HEAVY: {16: [1.0], 32: [1.0], 64: [1.0], 128: [0.99], 256: [0.6]}},
    "bilstm": {LIGHT: {16: [1.0], 32: [1.0], 64: [0.99], 128: [0.6]},
               HEAVY: {16: [1.0], 32: [0.99], 64: [0.6]}},
}  # fmt: skip
def _probe(task: str, arch: str, init_decay: float, trained_decay: float, **memory: int) -> dict:
    """One valid ``gradient_flow.json`` probe with the given decays (profiles of three points)."""
    profile = {"distance": [0, 1, 2], "grad_norm": [1.0, 0.5, 0.25], "count": [4, 4, 4]}
    return {"task": task, "arch": arch, "run_id": f"{task}-{arch}-s0-0", "seed": 0,
            "setting": "test", "distance_T": memory.get("distance_T"),
            "alphabet": memory.get("alphabet"), "n_signals": memory.get("n_signals"),
            "sequences": 4, "init": {**profile, "decay_per_span": init_decay},
            "trained": {**profile, "decay_per_span": trained_decay, "epochs": 1,
                        "test_accuracy": 0.9}}


GRADIENTS = {"schema": 1, "span": 50, "probes": [
    _probe("memory", "gru", 0.1, 0.83, alphabet=16, n_signals=2, distance_T=64),
    _probe("imdb", "rnn", 0.01, 0.02),
]}


def _notebook_rows(text: str) -> dict[str, list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and "(`" in ln]
    return {_cells(ln)[0].split("`")[1]: _cells(ln) for ln in lines}


def _notebook_case(tmp_path):
    _, imdb = make_grid(tmp_path, NOTEBOOK_GRID, seeds=[0])
    manifest = make_manifest(list(NOTEBOOK_GRID), [0], **memory_suite_manifest())
    return summarize(imdb, list(NOTEBOOK_GRID)), make_memory_records(NOTEBOOK_SWEEP), manifest


def test_the_notebook_table_measured_for_a_hand_made_case(tmp_path):
    facts = notebook_facts(*_notebook_case(tmp_path), GRADIENTS)
    rnn, lstm, gru, bilstm = (facts.line(a) for a in ("rnn", "lstm", "gru", "bilstm"))

    def outcomes(column):
        return {a: facts.line(a).verdicts[column].outcome for a in NOTEBOOK_GRID}

    # Parameters: the notebook's ranking holds.
    assert {a: facts.line(a).params.adjective for a in NOTEBOOK_GRID} == {
        "rnn": "Low", "lstm": "High", "gru": "Medium", "bilstm": "Highest"}
    assert set(outcomes("Parameters").values()) == {"yes"} and rnn.param_count == 10_000
    # Speed: geometric means 1000 (rnn), 2000 (lstm), 1549 (gru), 548 (bilstm).
    assert rnn.speed_score == pytest.approx(1000) and gru.speed_score == pytest.approx(1549.19, abs=0.01)
    assert {a: facts.line(a).speed.adjective for a in NOTEBOOK_GRID} == {
        "rnn": "Slow", "lstm": "Fast", "gru": "Medium", "bilstm": "Slowest"}
    assert outcomes("Speed") == {"rnn": "no", "lstm": "no", "gru": "yes", "bilstm": "yes"}
    assert (rnn.speed.rank, rnn.speed.of, rnn.speed.ahead) == (3, 4, ("lstm", "gru"))
    assert (lstm.speed.rank, lstm.speed.ahead) == (1, ())
    # Memory: gru first; lstm and bilstm tied second (Excellent); rnn last.
    assert [h.text for h in gru.horizons] == ["≥ 512", "128"] and [h.text for h in lstm.horizons] == ["64", "32"]
    assert [h.text for h in rnn.horizons] == ["< 16", "< 16"]
    assert {a: facts.line(a).memory.adjective for a in NOTEBOOK_GRID} == {
        "rnn": "Poor", "lstm": "Excellent", "gru": "Best", "bilstm": "Excellent"}
    assert gru.gradient == (0.83, "memory, 2 of 16, T = 64") and rnn.gradient == (0.02, "IMDb")
    assert lstm.gradient is None and facts.span == 50
    assert outcomes("Long-term Memory") == {"rnn": "yes", "lstm": "yes", "gru": "no", "bilstm": "no"}
    assert bilstm.verdicts["Long-term Memory"].ranked.ahead == ("gru",)
    # Test acc: bilstm 87%, gru 86%, lstm 85%, rnn 80%.
    assert [facts.line(a).accuracy.rank for a in ("bilstm", "gru", "lstm", "rnn")] == [1, 2, 3, 4]
    # Use cases, as rules on the columns. Weakest places (Speed, Memory, Test acc): rnn 4th
    # (3, 4, 4), lstm 3rd (1, 2, 3), gru 2nd (2, 1, 2), bilstm 4th (4, 2, 1): gru alone is
    # Balanced, the others give up more where they are weakest.
    assert [(facts.line(a).weakest.rank, facts.line(a).weakest.columns) for a in NOTEBOOK_GRID] == [
        (4, ("Long-term Memory", "Test acc")), (3, ("Test acc",)), (2, ("Speed", "Test acc")),
        (4, ("Speed",))]
    assert facts.best_weakest == 2
    assert rnn.use_cases == ("Short sequences",) and gru.use_cases == ("Long sequences", "Balanced")
    assert bilstm.use_cases == ("Full context needed",) and lstm.use_cases == ()
    assert lstm.verdicts["Use Case"] == Verdict("no", lstm.memory, "holds longer", ("gru",))
    assert outcomes("Use Case") == {"rnn": "yes", "lstm": "no", "gru": "yes", "bilstm": "yes"}
    assert (facts.holds, facts.judged) == (11, 16)
    # The rendering of those facts.
    rows = _notebook_rows(render_notebook(facts))
    assert [rows[a][1] for a in ("rnn", "gru", "lstm", "bilstm")] == [
        "10.0k (**Low**)", "25.0k (**Medium**)", "33.0k (**High**)", "66.0k (**Highest**)"]
    assert rows["rnn"][2] == "train 500, infer 2,000, geometric mean 1,000 samples/s (**Slow**)"
    assert "Speed: no, Slow here (3rd of 4; `lstm` and `gru` are faster)" in rows["rnn"][7]
    assert "Long-term Memory: no, Best here (1st of 4, first here)" in rows["gru"][7]
    assert rows["gru"][3] == ("horizon ≥ 512 (2 of 16), 128 (3 of 16); gradient ×0.83 per 50 steps "
                              "(memory, 2 of 16, T = 64) (**Best**)")
    assert rows["lstm"][4] == "85.00% (3rd of 4)"
    assert rows["lstm"][5] == ("**none of the four**: Speed 1st, Long-term Memory 2nd, Test acc 3rd "
                               "of 4; weakest 3rd, the four's best: 2nd")
    assert rows["gru"][5].startswith("**Long sequences / Balanced**: Speed 2nd,")
    assert "Use Case: no, `gru` holds longer" in rows["lstm"][7]
    assert rows["lstm"][6] == "High · Slow · Excellent · Long sequences"
    assert "The notebook's adjective holds in 11 of 16 cells that could be judged." in render_notebook(facts)
    assert notebook_section(*_notebook_case(tmp_path / "again"), GRADIENTS) == render_notebook(facts)


def _place(cell: str, column: str) -> int:
    """The place a Use Case cell quotes for ``column`` (``Speed 2nd`` -> 2)."""
    return int(re.search(rf"{column} (\d)(?:st|nd|rd|th)", cell).group(1))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def assert_the_notebook_text_follows_its_columns(text: str) -> None:
    """Every place, rule and verdict of the notebook's table is that of the column it quotes: a
    model said 1st in Speed has the highest geometric mean the Speed column shows, its adjective
    is the place's, "Balanced" goes to the best weakest place, and so on."""
    rows = list(_notebook_rows(text.split("## The notebook's table, measured", 1)[1]).values())
    rows = [r for r in rows if r[7] != "not run"]
    places = {column: [_place(r[5], column) for r in rows]
              for column in ("Speed", "Long-term Memory", "Test acc")}  # fmt: skip
    figures = {"Speed": [_number(re.search(r"geometric mean ([\d,.]+)", r[2]).group(1)) for r in rows],
               "Test acc": [_number(re.search(r"^([\d.]+)%", r[4]).group(1)) for r in rows]}
    for column, values in figures.items():  # a higher figure never has a worse place
        for i, j in itertools.permutations(range(len(rows)), 2):
            if values[i] > values[j]:
                assert places[column][i] <= places[column][j], (column, rows[i][0], rows[j][0])
            if column == "Test acc" and values[i] == values[j]:
                assert places[column][i] == places[column][j]
    for r, speed, memory, accuracy in zip(rows, *places.values(), strict=True):
        assert f"(**{SCALES['Speed'][speed - 1]}**)" in r[2]
        assert f"(**{SCALES['Long-term Memory'][memory - 1]}**)" in r[3]
        assert f"({accuracy}" in r[4] and r[4].endswith(f" of {len(rows)})")
        weakest = max(speed, memory, accuracy)
        assert f"weakest {weakest}" in r[5]
        met = r[5].split("**")[1].split(" / ")
        best = min(max(p) for p in zip(*places.values(), strict=True))
        assert ("Balanced" in met) == (weakest == best)
        assert ("Full context needed" in met) == (accuracy == 1)
        assert ("Long sequences" in met) == (memory == 1)
        assert ("Short sequences" in met) == (memory == max(places["Long-term Memory"]))
        verdict = re.search(r"Speed: no, \w+ here \((\d)", r[7])
        assert verdict is None or int(verdict.group(1)) == speed
    for phrase in ("latency", "Pareto", "most training samples/s"):  # figures the table lacks
        assert phrase not in text.split("## The notebook's table, measured", 1)[1].split("## Words")[0]


def test_no_sentence_of_the_notebook_table_contradicts_its_columns(tmp_path):
    assert_the_notebook_text_follows_its_columns(render_notebook(
        notebook_facts(*_notebook_case(tmp_path), GRADIENTS)))
    committed = Path(__file__).resolve().parents[1] / "docs" / "memory-report" / "report.md"
    assert_the_notebook_text_follows_its_columns(committed.read_text(encoding="utf-8"))


def test_balanced_tells_no_model_apart_when_every_weakest_place_is_the_same():
    from reports.memory import NOTEBOOK, Weakest, _balanced, _use_case_verdict

    alike = {"lstm": Weakest(3, 4, ("Speed",)), "gru": Weakest(3, 4, ("Test acc",))}
    assert _balanced(alike) == (set(), 3)
    gru = next(nb for nb in NOTEBOOK if nb.arch == "gru")
    assert _use_case_verdict(gru, [], {}, {}, alike, set()) == Verdict("cannot tell", reason="weakest alike")
    apart = {**alike, "rnn": Weakest(4, 4, ("Test acc",))}
    assert _balanced(apart) == ({"lstm", "gru"}, 3)
    assert _balanced({**apart, "lstm": Weakest(4, 4, ("Speed",))}) == ({"gru"}, 3)
    assert _use_case_verdict(gru, [], {}, {}, {"lstm": alike["lstm"], "gru": Weakest(4, 4, ("Speed",))},
                             {"lstm"}) == Verdict("no", reason="gives up more", others=("lstm",))  # fmt: skip


def test_the_notebook_table_when_a_model_did_not_run_or_all_are_alike(tmp_path):
    rows, memory, manifest = _notebook_case(tmp_path)
    # bilstm ran nowhere; every remaining horizon is the same.
    alike = {arch: {LIGHT: {16: [1.0], 32: [0.5]}} for arch in ("rnn", "lstm", "gru")}
    facts = notebook_facts([r for r in rows if r.arch != "bilstm"], make_memory_records(alike), manifest)
    assert not facts.line("bilstm").ran and facts.line("bilstm").verdicts == {}
    assert _notebook_rows(render_notebook(facts))["bilstm"][7] == "not run"
    assert all(facts.line(a).memory.all_tied for a in ("rnn", "lstm", "gru"))
    assert facts.line("rnn").verdicts["Long-term Memory"].outcome == "cannot tell"
    assert facts.line("rnn").verdicts["Use Case"].outcome == "cannot tell"
    assert facts.line("gru").gradient is None
    assert notebook_facts(rows, [], manifest) is None


def test_rank_adjectives_ties_and_fewer_than_four():
    tied = rank_adjectives({"a": 3, "b": 3, "c": 1, "d": 0}, SCALES["Parameters"], lambda x, y: x == y)
    assert [tied[k].adjective for k in "abcd"] == ["Low", "Low", "High", "Highest"]
    assert tied["c"].ahead == ("a", "b") and tied["c"].rank == 3
    two = rank_adjectives({"a": 2, "b": 1}, SCALES["Speed"], lambda x, y: x == y)
    assert (two["a"].adjective, two["b"].adjective) == ("Fast", "Slowest")
    alike = rank_adjectives({"a": 1, "b": 1}, SCALES["Speed"], lambda x, y: x == y)
    assert alike["a"].all_tied and rank_adjectives({"a": 1}, SCALES["Speed"], lambda x, y: True) == {}


def test_a_folder_with_both_tasks_ends_with_the_notebook_table(tmp_path):
    folder, imdb = make_grid(tmp_path / "both", NOTEBOOK_GRID, seeds=[0])
    memory = make_memory_records(NOTEBOOK_SWEEP)
    manifest = make_manifest(list(NOTEBOOK_GRID), [0], tasks=["imdb", "memory"], **memory_suite_manifest())
    write_results(folder, memory, manifest)
    (folder / "gradient_flow.json").write_text(json.dumps(GRADIENTS), encoding="utf-8")
    report = render_report(folder).read_text(encoding="utf-8")
    assert report.index("## Task `imdb`") < report.index("## Task `memory`")
    assert "### Memory horizons" in report and "#### How far each architecture" in report
    assert report.index("## Task `memory`") < report.index("## The notebook's table, measured")
    assert "gradient ×0.83 per 50 steps" in report
    assert "Run the IMDb comparison into this folder too" not in report
    # A gradient file that cannot be read is named in one error, not skipped silently.
    (folder / "gradient_flow.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RecordError, match="gradient_flow.json: .*run the gradient-flow probe again"):
        build_outputs(folder)
    (folder / "gradient_flow.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RecordError, match="gradient_flow.json: .*must be a JSON object"):
        build_outputs(folder)


def test_a_folder_without_memory_runs_renders_as_before(tmp_path):
    """The IMDb part of a report is the same with or without memory runs beside it."""
    alone, _ = make_grid(tmp_path / "alone", GRID, seeds=[0, 1])
    before = build_outputs(alone)
    both = tmp_path / "both"
    shutil.copytree(alone, both)
    manifest = json.loads((alone / "manifest.json").read_text(encoding="utf-8"))
    write_results(both, make_memory_records(SWEEP), {**manifest, "tasks": ["imdb", "memory"]})
    after = build_outputs(both)
    # Every figure of IMDb's is byte for byte the same; memory's live apart.
    assert {k: v for k, v in after.items() if not k.startswith("plots/memory/") and k.startswith("plots/")} == {
        k: v for k, v in before.items() if k.startswith("plots/")}
    text_before, text_after = before["report.md"].decode(), after["report.md"].decode()
    imdb_part = text_after.split("## Task `imdb`", 1)[1].split("## Task `memory`", 1)[0]
    for section in text_before.split("\n## ")[1:]:
        if section.startswith("Words used here"):  # the whole report's, at its end
            continue
        demoted = "\n".join("#" + ln if ln.startswith("#") else ln for ln in f"## {section}".split("\n"))
        assert demoted.rstrip("\n") in imdb_part
    # summary.csv: IMDb's rows carry the same values; the memory rows follow with their settings.
    csv_before = before["summary.csv"].decode().splitlines()
    csv_after = after["summary.csv"].decode().splitlines()
    assert csv_after[0].startswith("arch,task,alphabet,n_signals,distance,")
    for line_before, line_after in zip(csv_before[1:], csv_after[1:], strict=False):
        if line_after.split(",")[1] == "imdb":
            assert line_after.split(",", 2)[2] == ",,," + line_before.split(",", 2)[2]


@pytest.mark.parametrize("name", ["example-report", "memory-report", "long-report", "cost-report",
                                  "cost-report-repeat"])
def test_the_committed_examples_render_byte_for_byte_as_committed(name):
    # A committed report is what its records render to with this code: when a change to the
    # report is meant, refresh it with `python -m reports docs/<name>`.
    example = Path(__file__).resolve().parents[1] / "docs" / name
    rendered = build_outputs(example)["report.md"].decode("utf-8")
    assert rendered == (example / "report.md").read_text(encoding="utf-8")


def test_the_horizon_plot_draws_the_sweep_only_and_no_line_across_a_distance_not_run():
    from reports.memory import _segments, probe_only

    sweep = [16, 32, 64, 128, 256, 512]
    assert _segments([16, 512], sweep) == [[16], [512]]  # the floors: first and last T only
    assert _segments([64, 16, 32, 256], sweep) == [[16, 32, 64], [256]]
    records = make_memory_records({"rnn": {(16, 2): {16: [0.6], 64: [0.5]}, (16, 3): {64: [0.5]}},
                                   "gru": {(16, 2): {32: [0.99], 64: [0.97]}}})  # fmt: skip
    manifest = memory_suite_manifest(probe_distance=64)
    rows, _ = memory_rows(records)
    by = {(r.arch, r.setting["alphabet"], r.setting["n_signals"], r.setting["distance"]): r
          for r in rows}  # fmt: skip
    # rnn failed at 16 and the probe trained it at 64 anyway: not a step of the sweep
    assert probe_only(by[("rnn", 16, 2, 64)], manifest, {16, 64})
    assert not probe_only(by[("rnn", 16, 2, 16)], manifest, {16, 64})
    assert not probe_only(by[("rnn", 16, 3, 64)], manifest, {64})  # not the probe's load
    assert not probe_only(by[("gru", 16, 2, 64)], manifest, {32, 64})  # the sweep got there
