"""The record schema: validation, atomic writes, and the documentation agreeing with the code."""

import errno
import json
import os
import re
from pathlib import Path

import pytest

from bench.results import cost, records, schema_page
from bench.results.metrics import METRICS, metrics_markdown, required_metrics
from tests.mounts import read_only, tiny_disk

ROOT = Path(__file__).resolve().parent.parent


def make_record(**changes):
    record = {
        "schema_version": records.SCHEMA_VERSION, "run_id": "lstm-s0-0123abcd", "arch": "lstm",
        "seed": 0, "profile": "smoke", "status": "ok", "error": None, "spec": {},
        "environment": {}, "data": {}, "metrics": {m: 1.0 for m in required_metrics()},
        "history": [{k: 1.0 for k in records.HISTORY_KEYS}],
    }
    record.update(changes)
    return record


def test_a_complete_record_validates_and_round_trips(tmp_path):
    path = records.write_record(tmp_path, make_record())
    assert records.read_record(path) == make_record()
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"schema_version": 0}, "schema_version 0"),
     ({"status": "done"}, "status must be"),
     ({"status": "failed"}, "error.type"),
     ({"status": "failed", "error": {"type": "oom"}}, "error.message"),
     ({"metrics": {"param_count": 1}}, "metrics missing"),
     ({"seed": "0"}, "'seed' must be int"),
     ({"history": [{"epoch": 1}]}, "history entry"),
     ({"timing_notes": "cold"}, "'timing_notes' must be a list of strings"),
     ({"timing_notes": [1]}, "'timing_notes' must be a list of strings")],
)
def test_invalid_records_are_rejected(changes, message):
    with pytest.raises(records.RecordError, match=message):
        records.validate_record(make_record(**changes))


def test_a_failed_record_needs_no_metrics():
    failed = make_record(status="failed", error={"type": "nan_loss", "message": "loss nan"},
                         metrics={}, history=[])
    assert records.validate_record(failed) is failed


def test_nan_becomes_null_in_json(tmp_path):
    record = make_record()
    record["metrics"]["efficiency"] = float("nan")
    records.write_record(tmp_path, record)
    assert json.loads((tmp_path / "record.json").read_text())["metrics"]["efficiency"] is None


def test_a_corrupt_record_names_its_file(tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "record.json").write_text("{not json")
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(records.RecordError, match="record.json: cannot read record"):
        records.load_records(tmp_path)
    folder = records.load_folder(tmp_path)  # the lenient reader sets it apart instead
    assert folder.records == [] and [u.run_id for u in folder.unreadable] == ["x"]
    assert folder.unreadable[0].message.startswith(str(run / "record.json") + ": cannot read")


def test_a_folder_without_manifest_is_not_a_results_folder(tmp_path):
    with pytest.raises(records.RecordError, match="not an rnnbench results folder"):
        records.load_records(tmp_path)


def test_schema_page_documents_every_metric_and_history_key():
    page = (ROOT / "docs" / "record-schema.md").read_text()
    documented = set(re.findall(r"`([a-z0-9_]+)`", page))
    assert set(METRICS) <= documented
    assert metrics_markdown() in page
    assert set(records.HISTORY_KEYS) <= documented
    assert f"version {records.SCHEMA_VERSION}" in page


def test_the_schema_page_is_what_the_schema_generates():
    page = (ROOT / "docs" / "record-schema.md").read_text(encoding="utf-8")
    assert schema_page.rewrite(page) == page, (
        "docs/record-schema.md is stale: run `python -m bench.metrics docs/record-schema.md`"
    )


def _rows(fields):
    return {name for field in fields for name in field.names}


def test_every_field_of_the_committed_records_and_points_has_a_row():
    keys = {key for path in (ROOT / "docs").glob("*/runs/*/record.json")
            for key in json.loads(path.read_text(encoding="utf-8"))}  # fmt: skip
    assert "run_id" in keys and keys <= _rows(schema_page.RECORD_FIELDS)
    point_keys = {key for path in (ROOT / "docs").glob("*/cost_points/*.json")
                  for key in json.loads(path.read_text(encoding="utf-8"))}  # fmt: skip
    assert "point_id" in point_keys and point_keys <= _rows(schema_page.POINT_FIELDS)


def test_the_field_table_shows_the_validators_types_and_refuses_a_field_without_a_row(monkeypatch):
    table = schema_page.record_fields_markdown()
    assert "| `seed` | int |" in table and "| `error` | object or null |" in table
    assert f"# Run record schema (version {records.SCHEMA_VERSION})" == schema_page.TITLE
    monkeypatch.setitem(records.REQUIRED_FIELDS, "new_field", int)
    with pytest.raises(ValueError, match="run record fields without a row .*: new_field"):
        schema_page.record_fields_markdown()
    monkeypatch.setitem(cost.REQUIRED_FIELDS, "other_field", str)
    with pytest.raises(ValueError, match="cost point fields without a row .*: other_field"):
        schema_page.point_fields_markdown()


def test_the_page_command_rewrites_a_stale_page_and_refuses_one_without_markers(tmp_path, capsys):
    page = (ROOT / "docs" / "record-schema.md").read_text(encoding="utf-8")
    stale = tmp_path / "schema.md"
    stale.write_text(page.replace("| `seed` | int |", "| `seed` | float |", 1)
                     .replace(schema_page.TITLE, "# Run record schema (version 1)"), encoding="utf-8")
    assert schema_page.main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == page
    bare = tmp_path / "bare.md"
    bare.write_text("# Run record schema (version 1)\n", encoding="utf-8")
    assert schema_page.main([str(bare)]) == 2
    assert "has no 'record fields' block" in capsys.readouterr().err
    assert bare.read_text(encoding="utf-8") == "# Run record schema (version 1)\n"


def test_the_version_1_example_folder_is_still_readable():
    # tests/fixtures/example-report-v1: the committed example's records as schema 1 wrote them
    path = ROOT / "tests" / "fixtures" / "example-report-v1"
    folder = records.load_folder(path)
    assert folder.unreadable == [] and len(folder.records) == 18
    assert {r["schema_version"] for r in folder.records} == {1}
    assert records.read_manifest(path)["schema_version"] == 1


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_of_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        records.write_record(tmp_path, make_record())
    finally:
        os.umask(previous)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_full_disk_names_the_path_and_leaves_the_old_file(tmp_path, monkeypatch):
    # Injected ENOSPC at the write: runs everywhere (see the tmpfs test for a real full disk).
    records.write_record(tmp_path, make_record())
    before = (tmp_path / "record.json").read_bytes()

    def full(fd, fh=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(records.OutputError) as caught:
        records.write_record(tmp_path, make_record(seed=1))
    assert str(caught.value) == f"cannot write {tmp_path / 'record.json'}: No space left on device"
    assert (tmp_path / "record.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left


def test_a_real_full_disk_and_a_real_read_only_folder(tmp_path):
    with tiny_disk(tmp_path / "disk", 16) as disk:
        with pytest.raises(records.OutputError, match="No space left on device"):
            records.write_bytes_atomic(disk / "big.bin", b"x" * 64 * 1024)
        assert list(disk.iterdir()) == []
    folder = tmp_path / "ro"
    folder.mkdir()
    expected = f"cannot write {folder}/a.json: Read-only file system"
    with read_only(folder), pytest.raises(records.OutputError, match=expected):
        records.write_json_atomic(folder / "a.json", {})
