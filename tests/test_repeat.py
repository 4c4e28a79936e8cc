"""reports.repeat: two cost-suite folders compared point by point."""

from __future__ import annotations

import json

import pytest

from bench.results import cost, records
from reports import repeat


def _stat(ms):
    return {"median": ms, "low": ms * 0.9, "high": ms * 1.1, "coverage": 0.98, "times": [ms]}


def _write(folder, point_id, train_ms, infer_ms, peak_mb):
    phase = lambda ms: {"status": "ok", "step_ms": _stat(ms), "forward_ms": None,  # noqa: E731
                        "backward_ms": None, "optimizer_ms": None, "peak_mb": peak_mb}
    point = {
        "schema_version": records.SCHEMA_VERSION, "kind": cost.POINT_KIND, "point_id": point_id,
        "arch": point_id.split("-")[0], "task": "imdb", "axis": "length", "length_T": 64,
        "batch": 64, "profile": "quick", "device": "cpu", "threads": 1, "status": "ok",
        "error": None, "model": {}, "reps": 7, "warmup": 2, "samples_per_rep": 64,
        "tokens_per_rep": 4096, "train": phase(train_ms), "infer": phase(infer_ms), "fit": None,
        "peak_memory": {"train_peak_mb": peak_mb, "infer_peak_mb": 50.0},
        "efficiency": {}, "kernels": None, "environment": {},
    }  # fmt: skip
    cost.write_point(folder, point)


def _folders(tmp_path, second_train, second_peak=100.0):
    """Four points: training 20..160 ms in the first folder, ``second_train`` in the second;
    the last point's training peak 100 MiB, then ``second_peak``."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, trains, last_peak in ((first, (20.0, 40.0, 80.0, 160.0), 100.0),
                                      (second, second_train, second_peak)):  # fmt: skip
        for i, train in enumerate(trains):
            _write(folder, f"gru-length-T{64 * 2**i}-b64-0000000{i}", train, 5.0,
                   last_peak if i == 3 else 100.0)
        (folder / "manifest.json").write_text(json.dumps(
            {"commits": [{"commit": "a" * 40, "dirty": False}], "wall_time_s": 300.0}))
    return first, second


def test_agreement_counts_each_band_and_leaves_out_short_figures(tmp_path):
    first, second = _folders(tmp_path, [21.0, 46.0, 120.0, 160.0], second_peak=105.0)  # 5%, 15%, 50%, 0%
    facts = repeat.repeat_facts(first, second)
    assert len(facts.timed) == 4 and facts.short == 4  # the 5 ms inferences are under the floor
    assert [round(p.off, 2) for p in sorted(facts.timed, key=lambda p: p.first)] == [0.05, 0.15, 0.5, 0.0]
    page = repeat.render_repeat(facts)
    assert "| timed figures that differ by at most 10% | 2 of 4 (50.0%) |" in page
    assert "| timed figures that differ by more than 25% | 1 of 4 (25.0%) |" in page
    assert "ratio 1.50" in page and "(4 of them)" in page and "5.0 minutes" in page
    # One peak 5 MiB apart (beyond 2 MiB and 2%); the other 7 the same.
    assert "| peak memories within max(2%, 2 MiB) | 7 of 8 (87.5%) |" in page
    assert "| `gru` | T 64, batch 64 | train step peak | 100.00 | 105.00 |" in page


def test_a_drift_shared_by_every_figure_is_measured_and_divided_out(tmp_path):
    # The second run 12% slower throughout, one figure 30% slower: the drift is the median ratio.
    first, second = _folders(tmp_path, [22.4, 44.8, 104.0, 179.2])
    facts = repeat.repeat_facts(first, second)
    assert facts.drift == pytest.approx(1.12)
    assert sum(p.off <= 0.10 for p in facts.timed) == 0 and facts.near_without_drift() == 3
    page = repeat.render_repeat(facts)
    assert "| the second run over the first, median of every timed figure | 1.120 |" in page
    assert "| timed figures within 10% once that is divided out | 3 of 4 (75.0%) |" in page


def test_the_page_is_written_checked_and_refused_without_points(tmp_path, capsys):
    first, second = _folders(tmp_path, [20.0, 40.0, 80.0, 160.0])
    assert repeat.main([str(first), str(second), "--check"]) == 1
    assert repeat.main([str(first), str(second)]) == 0
    page = (first / repeat.PAGE).read_text(encoding="utf-8")
    assert "4 of 4 (100.0%)" in page and "All 8 peak memories are the same to the byte" in page
    assert repeat.main([str(first), str(second), "--check"]) == 0
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    assert repeat.main([str(first), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no cost points" in err
    other = tmp_path / "other"  # points of other settings: nothing to compare
    _write(other, "lstm-length-T64-b64-0000000f", 20.0, 5.0, 100.0)
    assert repeat.main([str(first), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "share no measured point" in err
    assert not (other / repeat.PAGE).exists()
    assert not (tmp_path / "empty" / repeat.PAGE).exists()


@pytest.mark.parametrize("second, agrees", [(101.9, True), (102.1, False), (100.0, True)])
def test_memory_agrees_within_two_mib_or_two_percent(second, agrees):
    pair = repeat.Pair("p", "gru", "length", "T 64", "train step peak", 100.0, second)
    assert repeat.memory_agrees(pair) is agrees
    big = repeat.Pair("p", "gru", "length", "T 64", "train step peak", 1000.0, 1019.0)
    assert repeat.memory_agrees(big)


def test_the_committed_agreement_page_is_what_the_two_committed_runs_give():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    assert repeat.main([str(docs / "cost-report"), str(docs / "cost-report-repeat"), "--check"]) == 0
