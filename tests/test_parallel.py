"""--jobs (issue 17): several runs at once give the same records as one at a time, each record
says how many runs shared the machine, and bad --jobs values are refused with one line.

The failure behaviours (killed runs, Ctrl-C, a killed parent) with two jobs are tested beside
their one-job versions in test_results_folder.py.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

import run_all
from bench.grid import runner
from bench.grid.runner import Slots, auto_jobs, visible_gpus
from bench.results import records
from data_pipeline import make_synthetic_archive
from tests.factories import same_run_fields


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_synthetic_archive(
        tmp_path_factory.mktemp("data") / "imdb.tar.gz", n_per_class_train=120, n_per_class_test=50
    )


def grid(archive, out, *extra):
    # No CPU inference-memory process per run (seconds each; test_bench_run.py measures it).
    return ["--profile", "smoke", "--data", str(archive), "--out", str(out), "--no-progress",
            "--archs", "rnn,lstm,bag_of_embeddings", "--set", "measure.infer_memory=false", *extra]


def run_cli(capfd, *argv):
    code = run_all.main([str(a) for a in argv])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


@pytest.mark.skipif(runner.cpu_cores() < 2, reason="two jobs need two cores")
def test_two_jobs_give_the_records_of_one_and_say_they_shared_the_machine(capfd, archive, tmp_path):
    # run_all.py --profile smoke --jobs 1, then --jobs 2: same specs, same numbers
    code, _, err = run_cli(capfd, *grid(archive, tmp_path / "one"))
    assert code == 0, err
    code, _, err = run_cli(capfd, *grid(archive, tmp_path / "two", "--jobs", "2"))
    assert code == 0, err
    one = {r["run_id"]: r for r in records.load_records(tmp_path / "one")}
    two = {r["run_id"]: r for r in records.load_records(tmp_path / "two")}
    assert one.keys() == two.keys() and len(one) == 3
    for run_id, record in one.items():
        assert same_run_fields(two[run_id]) == same_run_fields(record), run_id
        assert record["concurrent_runs"] == 1
    # The first two start together; the third shares the machine unless both had ended.
    by_arch = {r["arch"]: r["concurrent_runs"] for r in two.values()}
    assert by_arch["rnn"] == by_arch["lstm"] == 2 and by_arch["bag_of_embeddings"] in (1, 2)
    assert records.read_manifest(tmp_path / "two")["jobs"] == 2
    report = (tmp_path / "two" / "report.md").read_text()
    assert "measured while up to 2 runs shared the machine" in report


def test_more_threads_than_cores_is_refused_in_one_line(capfd, archive, tmp_path, monkeypatch):
    # run_all.py --jobs 3 (on 2 cores), and --jobs 2 --threads 2
    monkeypatch.setattr(runner, "cpu_cores", lambda: 2)
    for extra, product in ((["--jobs", "3"], "--jobs 3 x --threads 1 = 3 threads"),
                           (["--jobs", "2", "--threads", "2"], "--jobs 2 x --threads 2 = 4 threads")):
        code, _, err = run_cli(capfd, *grid(archive, tmp_path / "res", *extra))
        assert code == 2 and err.count("\n") == 1, err
        assert f"{product} exceeds the 2 CPU core(s) here; lower --jobs or --threads" in err
        assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_jobs_value_that_is_not_a_count_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        run_all.build_parser().parse_args(["--jobs", value])
    assert exit_info.value.code == 2 and "--jobs" in capsys.readouterr().err


def test_ray_options_without_ray_say_how_to_install_it(capfd, archive, tmp_path, monkeypatch):
    code, _, err = run_cli(capfd, *grid(archive, tmp_path / "res", "--ray-address", "auto"))
    assert code == 2 and "--ray-address needs --executor ray" in err
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    code, _, err = run_cli(capfd, *grid(archive, tmp_path / "res", "--executor", "ray"))
    assert code == 2 and err.count("\n") == 1
    assert "--executor ray needs Ray, which is not installed here: pip install 'rnnbench[ray]'" in err
    assert not (tmp_path / "res").exists()


def test_auto_is_one_job_per_gpu_on_cuda_and_cores_over_threads_on_cpu(monkeypatch):
    monkeypatch.setattr(runner, "cpu_cores", lambda: 8)
    assert auto_jobs("cpu", 1) == 8 and auto_jobs("cpu", 3) == 2 and auto_jobs("cpu", 16) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"] and auto_jobs("cuda", 4) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert auto_jobs("cuda", 4) == 1  # no GPU visible: one run, which then fails to find CUDA


def _child_view(*, concurrent_runs):
    """What a child sees: its GPU and how many children ran at once (spawned: module level)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES"), concurrent_runs()


def test_each_child_sees_its_own_gpu_and_counts_the_others():
    slots = Slots(2, gpus=["3", "5"])
    slots.start("a", _child_view)
    slots.start("b", _child_view)
    assert not slots.free
    seen = {}
    while slots.running:
        for done in slots.wait():
            assert done.exitcode == 0
            seen[done.key] = done.result
    assert seen == {"a": ("3", 2), "b": ("5", 2)}


_MASK_SCRIPT = '''
import multiprocessing as mp, sys
from bench.grid import runner

def report_mask(path):  # the child's first Python step: the mask it was started with
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(line for line in status if line.startswith("SigBlk:")))

if __name__ == "__main__":
    proc = mp.get_context("spawn").Process(target=report_mask, args=(sys.argv[1],))
    runner._start_shielded(proc)  # the first spawn of this process, as a grid's first run is
    proc.join()
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the mask from /proc")
def test_a_grids_first_child_starts_with_ctrl_c_blocked(tmp_path):
    # multiprocessing's resource tracker, started by the first spawn, unblocked SIGINT behind the
    # shield: the first child then took a Ctrl-C while importing and printed a traceback (a flaky
    # test_ctrl_c_as_a_run_starts_prints_no_traceback). A fresh interpreter has no tracker yet.
    import subprocess
    import sys

    script = tmp_path / "first_spawn.py"
    script.write_text(_MASK_SCRIPT)
    mask_file = tmp_path / "mask"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, str(script), str(mask_file)], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": root})
    blocked = int(mask_file.read_text().split()[1], 16)
    assert blocked & (1 << (2 - 1)), mask_file.read_text()  # bit SIGINT - 1: SIGINT blocked
