"""--executor ray (issue 17): a local Ray with 2 CPUs runs a smoke grid of three specs, one of
which diverges, and the records and files it leaves equal the local executor's.

Ray is an optional extra; `make` installs it (`.[dev,ray]`), and in CI (CI=true) a missing Ray
fails this test instead of skipping it, so the Ray path is always exercised there.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from bench.grid import live
from bench.grid.runner import RUNS_DIR, plan_grid, run_grid
from bench.results import records
from bench.results.records import write_manifest
from bench.run.config import RunSpec, apply_overrides, profile_config
from data_pipeline import make_synthetic_archive
from tests.factories import same_run_fields

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_executor():
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed; CI installs rnnbench[dev,ray] (the Makefile's .venv)")
        pytest.skip("ray is not installed (pip install 'rnnbench[ray]')")
    from bench.grid import ray_runner as ray_executor

    return ray_executor


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_synthetic_archive(
        tmp_path_factory.mktemp("data") / "imdb.tar.gz", n_per_class_train=120, n_per_class_test=50
    )


def files_of(out, run_id):
    return {p.name: p.read_bytes() for p in sorted((out / RUNS_DIR / run_id).iterdir())
            if p.name != records.RECORD_NAME}


def test_a_ray_grid_leaves_the_records_and_files_of_the_local_executor(ray_executor, archive, tmp_path):
    config = profile_config("smoke")
    # One run measures its CPU inference memory in a fresh process, from inside its Ray worker;
    # the others skip that process (seconds each).
    quiet = apply_overrides(config, {"measure.infer_memory": False})
    specs = [*plan_grid(["rnn"], 1, profile="smoke", config=quiet, device="cpu", threads=1,
                        data_path=str(archive)),
             *plan_grid(["bag_of_embeddings"], 1, profile="smoke", config=config, device="cpu",
                        threads=1, data_path=str(archive))]  # fmt: skip
    # lr 1e38: Adam's first step would dwarf the weights, so the run fails as diverged.
    diverging = RunSpec("lstm", 0, "smoke", "cpu", 1, apply_overrides(quiet, {"train.lr": 1e38}),
                        data_path=str(archive))
    specs.append(diverging)
    local, remote = tmp_path / "local", tmp_path / "ray"
    for out in (local, remote):
        write_manifest(out, {"profile": "smoke"})
    logged = []
    local_outcome = run_grid(specs, local, progress=False, in_process=True, log=lambda _: None)
    ray_outcome = ray_executor.run_grid_ray(specs, remote, num_cpus=2, log=logged.append)

    assert ray_outcome.failed == local_outcome.failed == {diverging.run_id: "diverged"}
    assert sorted(ray_outcome.ran) == sorted(local_outcome.ran) == sorted(s.run_id for s in specs)
    assert "ray: 2 CPU(s), 0 GPU(s) in the cluster" in logged
    by_id = {r["run_id"]: r for r in records.load_records(local)}
    on_ray = {r["run_id"]: r for r in records.load_records(remote)}
    assert by_id.keys() == on_ray.keys()
    for run_id, record in by_id.items():
        assert same_run_fields(on_ray[run_id]) == same_run_fields(record), run_id
        # Test probabilities, labels, checkpoint, vocabulary and config: byte for byte.
        assert files_of(remote, run_id) == files_of(local, run_id), run_id
        assert 1 <= on_ray[run_id]["concurrent_runs"] <= 2
    assert on_ray[diverging.run_id]["error"]["type"] == "diverged"
    assert on_ray[specs[1].run_id]["metrics"]["infer_peak_mem_with_weights_mb"] > 0
    # A resumed Ray grid runs only the failed spec again.
    again = ray_executor.run_grid_ray(specs, remote, num_cpus=2, resume=True, log=lambda _: None)
    assert again.ran == [diverging.run_id] and sorted(again.skipped) == sorted(
        s.run_id for s in specs[:2])


def test_a_generated_task_runs_on_ray_without_any_dataset(ray_executor, tmp_path, monkeypatch):
    """Nothing is shipped for a task that makes its own data: no archive is looked for at all."""
    monkeypatch.delenv("RNNBENCH_IMDB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    config = apply_overrides(profile_config("smoke", task="memory"),
                             {"measure.infer_memory": False})
    specs = plan_grid(["gru"], 1, profile="smoke", config=config, device="cpu", threads=1,
                      task="memory")
    write_manifest(tmp_path, {"profile": "smoke"})
    outcome = ray_executor.run_grid_ray(specs, tmp_path, num_cpus=2, log=lambda _: None)
    assert outcome.ran == [specs[0].run_id] and not outcome.failed
    (record,) = records.load_records(tmp_path)
    assert record["task"] == "memory" and record["data"]["source"] == "generated"


def test_a_killed_occupancy_actor_costs_no_finished_run(ray_executor, archive, tmp_path, capfd):
    """The actor that counts runs per node dies mid-grid (ray.kill): every run that finishes
    still gets its record (counted by its node's registry of live runs), the driver says so once,
    and a resumed grid repeats none of them."""
    import ray
    from ray.exceptions import RayActorError

    config = apply_overrides(profile_config("smoke"),
                             {"train.epochs": 1, "measure.infer_memory": False})
    specs = plan_grid(["bag_of_embeddings", "rnn"], 2, profile="smoke", config=config,
                      device="cpu", threads=1, data_path=str(archive))
    write_manifest(tmp_path, {"profile": "smoke"})
    killed = []

    def log(line):
        if line.startswith("    ") and not killed:  # the first run's result is in: kill the actor
            (name,) = [n for n in ray.util.list_named_actors()
                       if n.startswith(ray_executor.OCCUPANCY_ACTOR_PREFIX)]
            actor = ray.get_actor(name)
            ray.kill(actor, no_restart=True)
            for _ in range(200):  # until it is dead for certain, so the next run finds it gone
                try:
                    ray.get(actor.finish.remote("probe"), timeout=30)
                except RayActorError:
                    break
            else:
                pytest.fail("the killed occupancy actor still answers")
            killed.append(name)

    outcome = ray_executor.run_grid_ray(specs, tmp_path, num_cpus=2, log=log)
    err = capfd.readouterr().err
    assert killed and not outcome.interrupted and not outcome.failed
    assert sorted(outcome.ran) == sorted(s.run_id for s in specs)
    saved = {r["run_id"]: r for r in records.load_records(tmp_path)}
    assert saved.keys() == {s.run_id for s in specs}
    assert all(r["status"] == "ok" and 1 <= r["concurrent_runs"] <= 2 for r in saved.values())
    assert err.count("the actor that counts this grid's runs per node is gone") == 1, err
    # Each task registered on its node (this machine, this test's cache folder), and ended there.
    entries = live.read_entries().values()
    assert len(entries) == len(specs) and all(e.end is not None for e in entries)
    again = ray_executor.run_grid_ray(specs, tmp_path, num_cpus=2, resume=True, log=lambda _: None)
    assert again.ran == [] and sorted(again.skipped) == sorted(s.run_id for s in specs)
