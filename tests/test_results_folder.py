"""A results folder you can trust (issue 14): each case as a user would type it.

1. --resume with other settings is refused; 2. a second writer is refused while the first holds
the folder; 3. failures exit 1, are named and retried by --resume; 4. output that cannot be
written gives one line and exit 2; 5. a corrupt record is named, the rest renders, and it is re-run;
6. Ctrl-C at a run's start and a killed parent leave no traceback and no orphan.

Training runs are real (smoke profile, tiny generated archive, one child process per run).
Read-only folders and full disks are real where the test may mount (root): see tests/mounts.py;
the same paths are also driven by an injected OSError so that they are tested everywhere.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_all
from bench.results import folder, records
from bench.run import environment
from bench.suites.command import Command
from data_pipeline import make_synthetic_archive
from tests.mounts import read_only, tiny_disk

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def checkout(tmp_path_factory):
    """A clean git checkout for run_all.py processes to report (GIT_DIR, GIT_WORK_TREE): this
    one may have uncommitted changes, and --resume refuses those."""
    tree = tmp_path_factory.mktemp("checkout")
    env = {**os.environ, "GIT_DIR": str(tree / ".git"), "GIT_WORK_TREE": str(tree)}
    for command in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                                     "--allow-empty", "-m", "clean"]):
        subprocess.run(["git", *command], env=env, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], env=env, check=True, capture_output=True,
                            text=True).stdout.strip()
    return env, commit


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_synthetic_archive(
        tmp_path_factory.mktemp("data") / "imdb.tar.gz", n_per_class_train=120, n_per_class_test=50
    )


@pytest.fixture(autouse=True)
def _clean_checkout(monkeypatch, checkout):
    monkeypatch.setattr(environment, "git_state", lambda: (checkout[1], False))
    for name in ("GIT_DIR", "GIT_WORK_TREE"):  # for the run_all.py processes started here
        monkeypatch.setenv(name, checkout[0][name])


def grid(archive, out, *extra):
    # No CPU inference-memory process per run (seconds each; what these tests check is the
    # folder's life, not that figure, which test_bench_run.py measures).
    return ["--profile", "smoke", "--data", str(archive), "--out", str(out), "--no-progress",
            "--set", "measure.infer_memory=false", *extra]


def run_cli(capfd, *argv):
    # capfd, not capsys: the runs' child processes write to the file descriptors.
    code = run_all.main([str(a) for a in argv])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def spawn(*argv):
    """run_all.py as its own process group, SIGINT at its default (a terminal's foreground job)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_all.py"), *map(str, argv)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_line(proc, prefix, lines):
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return
    raise AssertionError("".join(lines))


def run_children(pid):
    """The run processes (multiprocessing spawn children, not its resource tracker) of ``pid``."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"], capture_output=True,
                           text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def base_folder(archive, tmp_path_factory, checkout):
    """A finished two-architecture grid; tests copy it."""
    out = tmp_path_factory.mktemp("base") / "res"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(environment, "git_state", lambda: (checkout[1], False))
        assert run_all.main(grid(archive, out, "--archs", "rnn,bag_of_embeddings")) == 0
    return out


@pytest.fixture
def results(base_folder, tmp_path):
    out = tmp_path / "res"
    shutil.copytree(base_folder, out)
    return out


def snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted((out / "runs").rglob("*")) if p.is_file()}


# 1 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "difference"),
    [(["--epochs", "1"], "train.epochs is 2 there, 1 here"),
     (["--set", "model.hidden_dim=8"], "model.hidden_dim is 16 there, 8 here"),
     (["--threads", "2"], "threads is 1 there, 2 here")],
)
def test_resume_with_other_settings_is_refused_naming_the_difference(capfd, archive, results, extra, difference):
    # run_all.py --profile smoke --archs rnn --epochs 1 --out R --resume
    before = snapshot(results)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume", *extra))
    assert code == 2 and err.count("\n") == 1
    assert difference in err and "--out elsewhere" in err and "--overwrite" in err
    assert snapshot(results) == before


def test_the_manifest_records_the_settings_and_the_same_settings_resume(capfd, archive, results):
    manifest = records.read_manifest(results)
    assert manifest["settings"]["train.epochs"] == 2 and manifest["settings"]["profile"] == "smoke"
    assert "arch" not in manifest["settings"] and "seed" not in manifest["settings"]
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 0 and "1 run(s) already succeeded, 0 to go" in err
    # --overwrite is the way on with other settings
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--epochs", "1",
                                        "--overwrite"))
    assert code == 0, err
    assert [r["spec"]["train"]["epochs"] for r in records.load_records(results)] == [1]


def test_resume_from_another_commit_or_a_dirty_tree_needs_allow_other_commit(capfd, archive, results, monkeypatch, checkout):
    commit = checkout[1]
    monkeypatch.setattr(environment, "git_state", lambda: (commit, True))
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 2 and err.count("\n") == 1
    assert f"created by commit {commit[:12]} and this checkout is {commit[:12]} with uncommitted changes" in err
    monkeypatch.setattr(environment, "git_state", lambda: ("d" * 40, False))
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 2 and "--allow-other-commit" in err
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume",
                                        "--allow-other-commit"))
    assert code == 0, err
    commits = [c["commit"] for c in records.read_manifest(results)["commits"]]
    assert commits == [commit, "d" * 40]
    report = (results / "report.md").read_text()
    assert f"`{commit[:12]}`, `{'d' * 12}`" in report  # the report lists the commits


# 2 -----------------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_while_the_first_runs_and_reading_needs_no_lock(capfd, archive, results, tmp_path):
    # run_all.py ... --out R            (training)
    # run_all.py ... --out R --resume   (in another terminal) -> refused, naming the first
    out = tmp_path / "busy"
    first = spawn(*grid(archive, out, "--archs", "rnn"))
    lines = []
    try:
        wait_for_line(first, "[1/1]", lines)
        code, _, err = run_cli(capfd, *grid(archive, out, "--archs", "rnn", "--resume"))
        assert code == 2 and err.count("\n") == 1
        assert f"results folder {out} is being written by pid {first.pid} on " in err
        code, _, err = run_cli(capfd, "--report-only", "--out", str(results))  # no lock needed
        assert code == 0, err
        shutil.copytree(results, tmp_path / "reader")
        with folder.locked(tmp_path / "reader", ["holder"]):
            code, _, err = run_cli(capfd, "--report-only", "--out", str(tmp_path / "reader"))
            assert code == 0, err
    finally:
        lines.append(first.communicate(timeout=300)[0])
    assert first.returncode == 0, "".join(lines)
    assert [r["status"] for r in records.load_records(out)] == ["ok"]
    assert (out / folder.LOCK_NAME).read_text() == ""  # released: it names no holder


# 3 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lr", "message"), [
    ("1e38", "makes Adam's first step (1e+39) larger than the weights' largest value"),
    ("1e6", "exceeds 10x the first batch's"),
])
def test_a_diverging_grid_exits_1_naming_the_runs_without_a_traceback(capfd, archive, tmp_path, lr, message):
    # run_all.py --profile smoke --set train.lr=1e38
    out = tmp_path / "res"
    code, _, err = run_cli(capfd, *grid(archive, out, "--archs", "rnn", "--set", f"train.lr={lr}"))
    assert code == 1 and "Traceback" not in err
    (record,) = records.load_records(out)
    assert record["status"] == "failed" and record["error"]["type"] == "diverged"
    assert message in record["error"]["message"]
    assert f"1 of 1 run(s) failed: {record['run_id']} (diverged)" in err
    assert "--resume retries the failed runs" in err and "lower train.lr" in err


#: The failure cases below run with one job and with two (issue 17: --jobs keeps every behaviour).
JOBS = pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="two jobs need two cores"))])


@JOBS
def test_a_killed_run_is_recorded_as_killed_exits_1_and_resume_retries_it(capfd, archive, tmp_path, jobs):
    # run_all.py ... while the kernel (or a user) kills the run's process, then --resume
    out = tmp_path / "res"
    archs = ("--archs", "rnn,bag_of_embeddings", "--jobs", jobs)
    proc = spawn(*grid(archive, out, *archs))
    lines = []
    wait_for_line(proc, f"[{jobs}/2]", lines)
    deadline = time.monotonic() + 60
    while len(children := run_children(proc.pid)) < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(children[0], signal.SIGKILL)  # with two jobs, either run
    lines.append(proc.communicate(timeout=300)[0])
    output = "".join(lines)
    assert proc.returncode == 1, output
    (killed,) = [r for r in records.load_records(out) if r["status"] == "failed"]
    assert killed["error"]["type"] == "killed" and len(records.load_records(out)) == 2
    if jobs == 1:
        assert killed["arch"] == "rnn"
    assert "signal 9 (SIGKILL)" in killed["error"]["message"]
    assert f"1 of 2 run(s) failed: {killed['run_id']} (killed)" in output
    code, _, err = run_cli(capfd, *grid(archive, out, *archs, "--resume"))
    assert code == 0, err
    assert f"1 run(s) already succeeded, 1 to go, retrying {killed['run_id']} (killed)" in err
    assert all(r["status"] == "ok" for r in records.load_records(out))


# 4 -----------------------------------------------------------------------------------------------
def test_out_inside_a_read_only_folder(capfd, archive, tmp_path):
    # run_all.py --profile smoke --out /read-only/res
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent):
        code, _, err = run_cli(capfd, *grid(archive, parent / "res", "--archs", "rnn"))
    assert code == 2 and err == f"run_all.py: error: cannot write {parent / 'res'}: Read-only file system\n"
    assert list(parent.iterdir()) == []


def test_runs_folder_made_read_only_mid_grid_keeps_the_finished_record(archive, tmp_path):
    out = tmp_path / "res"
    proc = spawn(*grid(archive, out, "--archs", "rnn,bag_of_embeddings"))
    lines = []
    wait_for_line(proc, "[2/2]", lines)  # the first record is written
    try:
        with read_only(out / "runs"):
            lines.append(proc.communicate(timeout=300)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 2 and "Traceback" not in output
    assert output.rstrip().splitlines()[-1].startswith(f"run_all.py: error: cannot write {out / 'runs'}/")
    assert output.rstrip().endswith(": Read-only file system")
    assert [r["arch"] for r in records.load_records(out)] == ["rnn"]


@JOBS
def test_a_run_folder_that_cannot_be_made_stops_the_grid_with_one_line(capfd, archive, results, jobs):
    # Runs everywhere (no mount): the second run's folder is blocked by a file of that name, so its
    # child process fails to write and reports it to the parent. With two jobs the first run is
    # re-run beside it, and is stopped before it writes anything.
    bag = next(p.name for p in (results / "runs").iterdir() if p.name.startswith("bag"))
    shutil.rmtree(results / "runs" / bag)
    (results / "runs" / bag).write_text("in the way")
    if jobs == 2:
        next((results / "runs").glob("rnn-*/record.json")).unlink()
    before = snapshot(results)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn,bag_of_embeddings",
                                        "--resume", "--jobs", jobs))
    assert code == 2 and "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == f"run_all.py: error: cannot write {results / 'runs' / bag}: File exists"
    assert snapshot(results) == before


def test_a_full_disk(capfd, archive, tmp_path):
    # run_all.py ... --out /a/full/disk/res
    with tiny_disk(tmp_path / "disk", 40) as disk:
        code, _, err = run_cli(capfd, *grid(archive, disk / "res", "--archs", "rnn"))
        assert not [p for p in disk.rglob("*.tmp")]  # no half-written file left behind
    assert code == 2 and "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith(f"run_all.py: error: cannot write {disk / 'res'}/")
    assert last.endswith(": No space left on device")


@pytest.mark.filterwarnings("ignore:could not write the dataset cache")
def test_a_full_disk_injected(capfd, archive, results, monkeypatch):
    # The same path everywhere: ENOSPC raised when the parent writes the manifest.
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    before = snapshot(results)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 2
    assert err.endswith(f"run_all.py: error: cannot write {results / 'manifest.json'}: No space left on device\n")
    assert snapshot(results) == before
    code, _, err = run_cli(capfd, "--report-only", "--out", str(results))
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err


def test_report_only_on_a_read_only_folder(capfd, results):
    report = (results / "report.md").read_bytes()
    with read_only(results):
        code, _, err = run_cli(capfd, "--report-only", "--out", str(results))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"run_all.py: error: cannot write {results}/") and "Read-only file system" in err
    assert (results / "report.md").read_bytes() == report


# 5 -----------------------------------------------------------------------------------------------
def test_a_corrupt_record_is_named_the_rest_renders_and_resume_or_run_id_rerun_it(capfd, archive, results):
    (rnn_dir,) = (results / "runs").glob("rnn-*")
    path = rnn_dir / "record.json"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    code, out, err = run_cli(capfd, "--report-only", "--out", str(results))
    assert code == 1
    assert f"unreadable record left out of the report: {path}: cannot read record" in err
    assert "bag_of_embeddings" in out  # the rest still renders
    report = (results / "report.md").read_text()
    assert "`bag_of_embeddings`" in report
    assert f"- `{rnn_dir.name}` (`runs/{rnn_dir.name}/record.json`): cannot read record" in report
    # --run-id re-runs it
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn,bag_of_embeddings",
                                        "--run-id", rnn_dir.name))
    assert code == 0, err
    assert f"unreadable record {path}: cannot read record" in err and "it is run again" in err
    assert records.read_record(path)["status"] == "ok"
    # and so does --resume
    path.write_text("{")
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn,bag_of_embeddings", "--resume"))
    assert code == 0, err
    assert f"1 to go, retrying {rnn_dir.name} (unreadable)" in err
    assert "## Runs that could not be read" not in (results / "report.md").read_text()


def test_an_old_version_1_folder_still_renders(capfd, tmp_path):
    out = tmp_path / "example"
    shutil.copytree(ROOT / "tests" / "fixtures" / "example-report-v1", out)
    code, _, err = run_cli(capfd, "--report-only", "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["schema_version"] == 1  # not rewritten


# 6 -----------------------------------------------------------------------------------------------
@JOBS
@pytest.mark.parametrize("delay_s", [0.0, 0.5])
def test_ctrl_c_as_a_run_starts_prints_no_traceback(archive, tmp_path, delay_s, jobs):
    out = tmp_path / "res"
    # With two jobs, two runs: Ctrl-C comes as the second starts, the first still starting too.
    archs = "rnn" if jobs == 1 else "rnn,bag_of_embeddings"
    proc = spawn(*grid(archive, out, "--archs", archs, "--jobs", jobs))
    lines = []
    wait_for_line(proc, f"[{jobs}/{jobs}]", lines)
    time.sleep(delay_s)
    children = run_children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    lines.append(proc.communicate(timeout=120)[0])
    output = "".join(lines)
    assert proc.returncode == 130 and "Traceback" not in output, output
    assert "KeyboardInterrupt" not in output and output.rstrip().endswith("continue with --resume")
    assert not any(running(pid) for pid in children)
    assert records.load_folder(out).records == []  # nothing half-written counts as a run


@JOBS
def test_killing_only_the_parent_stops_the_training_child(archive, tmp_path, jobs):
    out = tmp_path / "res"
    archs = "rnn" if jobs == 1 else "rnn,lstm"
    proc = spawn(*grid(archive, out, "--archs", archs, "--epochs", "50", "--jobs", jobs))
    lines = []
    wait_for_line(proc, f"[{jobs}/{jobs}]", lines)
    deadline = time.monotonic() + 60
    while len(children := run_children(proc.pid)) < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children) == jobs and all(running(pid) for pid in children)
    proc.kill()  # SIGKILL to the parent alone: it cannot clean up
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in children)


# 7 (issue 21) ------------------------------------------------------------------------------------
def tree(out):
    """Every file under ``out`` with its bytes (the lock file aside)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != folder.LOCK_NAME}


def test_overwrite_and_resume_refuse_a_folder_whose_manifest_is_not_rnnbench_s(capfd, archive, tmp_path):
    # a web project's folder: its own manifest.json, plots/ and runs/
    web = tmp_path / "site"
    (web / "plots").mkdir(parents=True)
    (web / "runs").mkdir()
    (web / "manifest.json").write_text('{"name": "shop", "icons": []}')
    (web / "plots" / "sales.png").write_bytes(b"\x89PNG sales")
    (web / "runs" / "nightly.sh").write_text("#!/bin/sh\n")
    before = tree(web)
    for flag in ("--overwrite", "--resume"):
        code, _, err = run_cli(capfd, *grid(archive, web, "--archs", "rnn", flag))
        assert code == 2 and err.count("\n") == 1, err
        assert "is not an rnnbench manifest" in err and "choose another --out" in err
        assert tree(web) == before


def test_overwrite_removes_only_what_rnnbench_wrote(capfd, archive, results):
    held = {r["run_id"] for r in records.load_records(results)}
    mine = {"plots/my_figure.png": b"mine", "runs/my_analysis.ipynb": b"{}",
            "runs/old-experiment/results.csv": b"a,b\n", "notes.md": b"# notes",
            f"runs/{sorted(held)[0]}/my_notes.txt": b"keep"}
    for name, payload in mine.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_bytes(payload)
    # an interrupted atomic write of a report file is rnnbench's too
    (results / ".report.md.abcd1234.tmp").write_text("half")
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--epochs", "1",
                                        "--overwrite"))
    assert code == 0, err
    assert "--overwrite: kept 5 file(s) rnnbench did not write" in err
    after = tree(results)
    assert {name: after.get(name) for name in mine} == mine
    assert ".report.md.abcd1234.tmp" not in after
    # the old runs' own files are gone; the new run is the only record
    new = {r["run_id"] for r in records.load_records(results)}
    assert len(new) == 1 and not new & held
    leftovers = [name for name in after if name.startswith("runs/") and name.split("/")[1] in held]
    assert leftovers == [f"runs/{sorted(held)[0]}/my_notes.txt"]


def test_overwrite_refuses_a_folder_that_git_tracks(capfd, archive, results, monkeypatch):
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name)
    repo = results.parent
    for command in (["init", "-q"], ["add", "res"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "example"]):
        subprocess.run(["git", "-C", str(repo), *command], check=True, capture_output=True)
    before = tree(results)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--overwrite"))
    assert code == 2 and err.count("\n") == 1, err
    assert "tracked by git" in err and "--resume" in err
    assert tree(results) == before


def _damage(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif how == "not JSON":
        path.write_text("this is not json")
    elif how == "not UTF-8":
        path.write_bytes(b"\xff\xfe" + path.read_bytes())
    elif how == "a list":
        path.write_text("[1, 2]")
    elif how == "old version":
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 99}))


@pytest.mark.parametrize("how", ["truncated", "not JSON", "not UTF-8", "a list", "old version"])
@pytest.mark.parametrize("mode", ["--resume", "--report-only"])
def test_a_damaged_manifest_gives_one_line_and_exit_2(capfd, archive, results, how, mode):
    _damage(results / records.MANIFEST_NAME, how)
    before = tree(results)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", mode))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "manifest.json" in err
    assert tree(results) == before


def _wrong_type(value):
    """A value of a type the manifest never has where ``value`` stands."""
    return "not a number" if isinstance(value, int | float) and not isinstance(value, bool) else 12345


def test_every_manifest_field_of_the_wrong_type_gives_one_line(capfd, archive, results):
    # The classes of fault go through one path, the manifest's validation: each field in turn.
    manifest = json.loads((results / records.MANIFEST_NAME).read_text())
    manifest["commits"] = [*manifest["commits"], "not an entry"]  # an entry of the wrong type too
    cases = {key: {**manifest, key: _wrong_type(value)} for key, value in manifest.items()}
    cases["commit entry"] = manifest
    for key, damaged in cases.items():
        (results / records.MANIFEST_NAME).write_text(json.dumps(damaged))
        for mode in ("--resume", "--report-only"):
            code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", mode))
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (key, mode, err)
            assert "manifest.json" in err, (key, err)


def test_overwrite_replaces_a_folder_whose_manifest_is_damaged_when_its_records_are_ours(capfd, archive, results):
    _damage(results / records.MANIFEST_NAME, "truncated")
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--overwrite"))
    assert code == 0, err
    assert records.read_manifest(results)["archs"] == ["rnn"]


def test_resume_on_another_cpu_model_needs_allow_other_machine(capfd, archive, results, monkeypatch):
    monkeypatch.setattr(environment, "cpu_model", lambda: "Imaginary CPU 9000")
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 2 and err.count("\n") == 1, err
    assert "this machine is Imaginary CPU 9000" in err and "--allow-other-machine" in err
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume",
                                        "--allow-other-machine"))
    assert code == 0, err


def test_ctrl_c_while_the_report_renders_marks_the_manifest_interrupted(capfd, archive, results, monkeypatch):
    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(Command, "render", interrupted)
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--resume"))
    assert code == 130 and "Traceback" not in err
    assert records.read_manifest(results)["interrupted"] is True


def test_an_empty_data_path_is_refused_not_taken_as_absent(capfd, tmp_path):
    code, _, err = run_cli(capfd, "--profile", "smoke", "--data", "", "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "--data is empty" in err
    assert not (tmp_path / "o").exists()


def test_resume_runs_again_a_run_whose_test_predictions_are_missing(capfd, archive, results):
    run_id = sorted(r["run_id"] for r in records.load_records(results))[0]
    (results / "runs" / run_id / records.TEST_PROBS_NAME).unlink()
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn,bag_of_embeddings",
                                        "--resume"))
    assert code == 0, err
    assert f"retrying {run_id} (test predictions missing)" in err
    assert (results / "runs" / run_id / records.TEST_PROBS_NAME).is_file()


def test_a_huge_model_is_an_oom_record_and_a_batch_above_the_split_says_its_timing_is_cold(capfd, archive, tmp_path):
    out = tmp_path / "o"
    code, _, err = run_cli(capfd, *grid(archive, out, "--archs", "rnn", "--set",
                                        "rnn.hidden_dim=100000000"))
    assert code == 1 and "Traceback" not in err and "(oom)" in err, err
    assert [r["error"]["type"] for r in records.load_folder(out).records] == ["oom"]
    code, _, err = run_cli(capfd, *grid(archive, tmp_path / "b", "--archs", "bag_of_embeddings",
                                        "--set", "train.batch_size=100000", "--epochs", "1"))
    assert code == 0, err
    assert err.count("note: training throughput includes the cold first batch") == 1, err
    [record] = records.load_records(tmp_path / "b")
    assert record["timing_notes"][0].startswith("training throughput includes the cold first batch")


def test_tune_resume_over_a_damaged_tuning_file_gives_one_line(capfd, archive, tmp_path):
    from tests.factories import make_manifest

    results = tmp_path / "tuned"
    results.mkdir()
    manifest = make_manifest(["rnn"], [0], protocol="tuned")
    (results / records.MANIFEST_NAME).write_text(json.dumps(manifest))
    (results / "tuning.json").write_text('{"trials": [')
    code, _, err = run_cli(capfd, *grid(archive, results, "--archs", "rnn", "--tune", "--resume"))
    assert code == 2 and err.count("run_all.py: error:") == 1 and "Traceback" not in err, err
    assert "tuning.json" in err and "remove it to run the trials again" in err


@pytest.mark.parametrize(("damage", "reason"), [
    ("missing", "test predictions missing"), ("truncated", "test predictions unreadable"),
    ("empty", "test predictions unreadable"), ("labels of another length", "test predictions unreadable"),
])
def test_resume_plans_again_a_run_whose_test_predictions_are_damaged(results, damage, reason):
    from types import SimpleNamespace

    import numpy as np

    from bench.grid.runner import GridOutcome, pending_specs
    from reports.compare import load_predictions

    ids = sorted(r["run_id"] for r in records.load_records(results))
    run_dir = results / "runs" / ids[0]
    probs = run_dir / records.TEST_PROBS_NAME
    if damage == "missing":
        probs.unlink()
    elif damage == "truncated":
        probs.write_bytes(probs.read_bytes()[:-8])
    elif damage == "empty":
        probs.write_bytes(b"")
    else:
        np.save(run_dir / records.TEST_LABELS_NAME, np.zeros(3, dtype=np.int8))
    log, outcome = [], GridOutcome()
    todo = pending_specs([SimpleNamespace(run_id=i) for i in ids], results, resume=True,
                         log=log.append, outcome=outcome)
    assert [s.run_id for s in todo] == [ids[0]] and outcome.skipped == [ids[1]]
    assert log == [f"resuming: 1 run(s) already succeeded, 1 to go, retrying {ids[0]} ({reason})"]
    # The report says so instead of failing (an empty file raises EOFError, not ValueError).
    [record] = [r for r in records.load_records(results) if r["run_id"] == ids[0]]
    assert isinstance(load_predictions(results, record), str)
