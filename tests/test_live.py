"""The machine-wide registry of live runs (issue 21): a record's ``concurrent_runs`` counts the
rnnbench runs of other grids on the machine too, stale and old entries are ignored or pruned, and
a registry that cannot be written never fails a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.grid import live
from bench.grid.runner import RUNS_DIR, plan_grid, run_grid
from bench.results import records
from bench.results.records import write_manifest
from bench.run.config import apply_overrides, profile_config
from data_pipeline import make_synthetic_archive

ROOT = Path(__file__).resolve().parent.parent


def write_entry(folder: Path, name: str, **fields) -> Path:
    path = folder / f"{name}.json"
    records.write_json_atomic(path, {"proc_start": None, "boot_id": None, "end": None, **fields})
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_peak_counts_runs_that_started_and_ended_inside_and_not_those_that_touch():
    # own run [0, 10); inside it: [2, 4), [3, 12) and [5, 6); touching it: [-5, 0) and [10, 13)
    inside = [(2.0, 4.0), (3.0, 12.0), (5.0, 6.0)]
    touching = [(-5.0, 0.0), (10.0, 13.0)]
    assert live.peak_overlap(0.0, 10.0, inside + touching) == 3  # at 3: own, [2,4), [3,12)
    assert live.peak_overlap(0.0, 10.0, [(2.0, 4.0)]) == 2  # started and ended inside
    assert live.peak_overlap(0.0, 10.0, touching) == 1
    assert live.peak_overlap(0.0, 10.0, [(-1.0, float("inf")), (9.0, float("inf"))]) == 3
    assert live.peak_overlap(0.0, 10.0, []) == 1


def test_registrations_in_one_process_count_each_other_from_the_files():
    outer = live.register()
    inner = live.register()  # starts and ends inside outer
    assert inner.finish() == 2
    assert outer.finish() == 2 and outer.finish() == 2  # finishing twice keeps the first count
    with live.register() as after:  # both ended before it started
        pass
    assert after.finish() == 1
    entries = list(live.read_entries().values())
    assert len(entries) == 3 and all(e.pid == os.getpid() and e.end is not None for e in entries)


def test_stale_entries_are_ignored_and_removed(tmp_path):
    folder = live.live_dir()
    folder.mkdir(parents=True)
    me = os.getpid()
    now = time.time()
    dead = write_entry(folder, "dead", pid=dead_pid(), start=now - 5)  # killed: never ended
    reused = write_entry(folder, "reused", pid=me, start=now - 5, proc_start="1")  # pid reused
    rebooted = write_entry(folder, "rebooted", pid=me, start=now - 5,
                           proc_start=live.process_start(me), boot_id="another-boot")
    running = write_entry(folder, "running", pid=me, start=now - 5,
                          proc_start=live.process_start(me), boot_id=live.boot_id())
    (folder / "garbage.json").write_text("{not json")
    assert not any(live.is_running(live.Entry.from_json(json.loads(p.read_text())))
                   for p in (dead, reused, rebooted))
    with live.register() as registration:
        pass
    assert registration.finish() == 2  # only the entry of a live process (this one) counts
    assert not dead.exists() and not reused.exists() and not rebooted.exists()
    assert running.exists() and (folder / "garbage.json").exists()


def test_entries_that_ended_over_a_day_ago_are_pruned():
    folder = live.live_dir()
    folder.mkdir(parents=True)
    now = time.time()
    old = write_entry(folder, "old", pid=1, start=now - 26 * 3600, end=now - 25 * 3600)
    recent = write_entry(folder, "recent", pid=1, start=now - 2 * 3600, end=now - 3600)
    with live.register() as registration:
        pass
    assert registration.finish() == 1  # both ended before this run started
    assert not old.exists() and recent.exists()
    left = sorted(folder.glob("*.json"))  # the recent entry and this run's
    assert len(left) == 2 and live.prune(now=now + 2 * live.PRUNE_AFTER_S) == left
    assert not list(folder.glob("*.json"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_synthetic_archive(
        tmp_path_factory.mktemp("data") / "imdb.tar.gz", n_per_class_train=60, n_per_class_test=30
    )


def test_an_unwritable_registry_never_fails_a_run_and_is_mentioned_once(
        archive, tmp_path, monkeypatch, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(live, "live_dir", lambda: blocker / "live")  # a folder under a file
    monkeypatch.setenv(live._SAID_ENV, "")  # restored after the test, whatever the run sets
    config = apply_overrides(profile_config("smoke"),
                             {"train.epochs": 1, "measure.infer_memory": False})
    write_manifest(tmp_path / "out", {"profile": "smoke"})
    specs = plan_grid(["bag_of_embeddings"], 2, profile="smoke", config=config, device="cpu",
                      threads=1, data_path=str(archive))
    outcome = run_grid(specs, tmp_path / "out", progress=False, in_process=True,
                       log=lambda _: None)
    assert outcome.ran == [s.run_id for s in specs] and not outcome.failed
    assert [r["concurrent_runs"] for r in records.load_records(tmp_path / "out")] == [1, 1]
    err = capfd.readouterr().err
    assert err.count("cannot write the registry of live runs") == 1, err
    assert "counts only the runs of its own grid" in err


# Run as a script, it is run_all.py whose runs stay open at their finish until a run of another
# process is in the registry: the two grids then overlap for certain, whatever the timing. A
# grid's run is a spawned child, which imports this script again (as __mp_main__), so it holds too.
_HOLDING_RUN_ALL = '''
import os, sys, time
from bench.grid import live

_finish = live.Registration.finish


def finish_once_another_run_is_seen(self):
    deadline = time.monotonic() + 120
    while self._peak is None and time.monotonic() < deadline and not any(
            entry.pid != os.getpid() for entry in live.read_entries(self.folder).values()):
        time.sleep(0.05)
    return _finish(self)


live.Registration.finish = finish_once_another_run_is_seen

if __name__ == "__main__":
    import run_all
    sys.exit(run_all.main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_two_grids_at_once_into_two_folders_both_see_the_machine_shared(archive, tmp_path):
    # run_all.py --profile smoke --out one & run_all.py --profile smoke --out two, at once
    script = tmp_path / "holding_run_all.py"
    script.write_text(_HOLDING_RUN_ALL)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    grids = {
        name: subprocess.Popen(
            [sys.executable, str(script), "--profile", "smoke", "--data", str(archive),
             "--out", str(tmp_path / name), "--archs", "bag_of_embeddings", "--epochs", "1",
             "--no-progress", "--set", "measure.infer_memory=false"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in ("one", "two")
    }
    for name, proc in grids.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}:\n{output}"
    for name in grids:
        (record,) = records.load_records(tmp_path / name)
        assert record["status"] == "ok" and record["concurrent_runs"] == 2, name
        assert records.read_manifest(tmp_path / name)["jobs"] == 1  # each grid ran one at a time
        report = (tmp_path / name / "report.md").read_text()
        assert "up to 2 (`--jobs 1`); figures marked † were measured" in report, name
        speed = report.split("### Speed and memory of the training runs", 1)[1]
        row = next(line for line in speed.splitlines() if line.startswith("| `bag_of_embeddings`"))
        assert "†" in row, row
    assert len(live.read_entries()) == 2  # one per grid, each ended
    assert all(e.end is not None for e in live.read_entries().values())
    assert all((tmp_path / name / RUNS_DIR).is_dir() for name in grids)
