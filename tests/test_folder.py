"""The results folder's guarantees: one writer, one set of settings, one commit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import folder
from bench.run import environment
from bench.run.config import RunSpec, profile_config

ROOT = Path(__file__).resolve().parent.parent

_HOLD = """
import sys, time
from bench.results import folder
with folder.locked(sys.argv[1], ["run_all.py", "--out", sys.argv[1]]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holder_frees_the_folder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(folder.FolderError) as caught, folder.locked(tmp_path, ["run_all.py"]):
            pass
        message = str(caught.value)
        assert f"results folder {tmp_path} is being written by pid {holder.pid} on " in message
        assert f"(run_all.py --out {tmp_path})" in message and "choose another --out" in message
    finally:
        holder.kill()  # however the holder dies, the kernel drops its lock
        holder.wait()
    with folder.locked(tmp_path, ["run_all.py", "again"]):
        assert "again" in (tmp_path / folder.LOCK_NAME).read_text()


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    with folder.locked(tmp_path, ["first"]):
        pass
    with folder.locked(tmp_path, ["second"]):
        pass


def _spec(arch="lstm", seed=0, **overrides):
    return RunSpec(arch, seed, "smoke", "cpu", 1, profile_config("smoke", overrides))


def test_settings_leave_out_what_identifies_a_run_and_what_tune_chooses():
    settings = folder.grid_settings([_spec()], per_arch=("train.lr",))
    assert settings["train.epochs"] == 2 and settings["threads"] == 1 and settings["profile"] == "smoke"
    assert "arch" not in settings and "seed" not in settings and "train.lr" not in settings
    assert folder.settings_of(_spec("gru", 3).to_dict(), ("train.lr",)) == settings


def test_other_settings_are_refused_naming_what_differs(tmp_path):
    held = folder.grid_settings([_spec()])
    asked = folder.grid_settings([_spec(**{"train.epochs": 1})])
    with pytest.raises(folder.FolderError) as caught:
        folder.check_settings(tmp_path, {"settings": held}, [], asked)
    assert "train.epochs is 2 there, 1 here" in str(caught.value)
    assert "--out elsewhere" in str(caught.value) and "--overwrite" in str(caught.value)
    folder.check_settings(tmp_path, {"settings": held}, [], held)  # the same settings pass


def test_a_folder_without_manifest_settings_is_checked_against_its_records(tmp_path):
    # A version-1 folder: the manifest has no settings; a record's spec holds only the model
    # hyperparameters its architecture takes, plus the recurrent flag.
    spec = _spec().to_dict()
    spec["model"] = {"embedding_dim": 16, "recurrent": False}
    record = {"spec": spec}
    folder.check_settings(tmp_path, {}, [record], folder.grid_settings([_spec()]))
    with pytest.raises(folder.FolderError, match="model.embedding_dim is 16 there, 32 here"):
        folder.check_settings(tmp_path, {}, [record],
                              folder.grid_settings([_spec(**{"model.embedding_dim": 32})]))


def test_another_commit_or_a_dirty_tree_is_refused(tmp_path, monkeypatch):
    manifest = {"commits": [{"commit": "a" * 40, "dirty": False}]}
    monkeypatch.setattr(environment, "git_state", lambda: ("a" * 40, False))
    folder.check_commit(tmp_path, manifest, [])
    monkeypatch.setattr(environment, "git_state", lambda: ("b" * 40, False))
    with pytest.raises(folder.FolderError, match=f"created by commit {'a' * 12} and this checkout "
                       f"is {'b' * 12}, .*--allow-other-commit"):
        folder.check_commit(tmp_path, manifest, [])
    monkeypatch.setattr(environment, "git_state", lambda: ("a" * 40, True))
    with pytest.raises(folder.FolderError, match="with uncommitted changes"):
        folder.check_commit(tmp_path, manifest, [])
    # a version-1 folder: the commit of its records
    monkeypatch.setattr(environment, "git_state", lambda: ("a" * 40, False))
    folder.check_commit(tmp_path, {}, [{"environment": {"git_commit": "a" * 40}}])
    with pytest.raises(folder.FolderError):
        folder.check_commit(tmp_path, {}, [{"environment": {"git_commit": "c" * 40}}])


def test_the_manifest_lists_each_commit_that_wrote_once(monkeypatch):
    monkeypatch.setattr(environment, "git_state", lambda: ("a" * 40, False))
    first = folder.with_commit({})
    assert [c["commit"] for c in folder.with_commit({"commits": first})] == ["a" * 40]
    monkeypatch.setattr(environment, "git_state", lambda: ("b" * 40, True))
    both = folder.with_commit({"commits": first})
    assert [(c["commit"], c["dirty"]) for c in both] == [("a" * 40, False), ("b" * 40, True)]
    json.dumps(both)


def test_a_later_commit_with_the_same_code_may_continue_the_folder(tmp_path, monkeypatch):
    # Committing finished records moves HEAD without changing the code: no flag is needed.
    codes = {"a" * 40: "same", "b" * 40: "same", "c" * 40: "other"}
    monkeypatch.setattr(environment, "code_hash", lambda commit="HEAD": codes.get(commit))
    manifest = {"commits": [{"commit": "a" * 40, "dirty": False}]}  # written before "code"
    monkeypatch.setattr(environment, "git_state", lambda: ("b" * 40, False))
    folder.check_commit(tmp_path, manifest, [])
    monkeypatch.setattr(environment, "git_state", lambda: ("c" * 40, False))
    with pytest.raises(folder.FolderError, match="whose code differs .*--allow-other-commit"):
        folder.check_commit(tmp_path, manifest, [])
    # the hash the manifest recorded is read first (the creating commit may be gone)
    codes.pop("a" * 40)
    folder.check_commit(tmp_path, {"commits": [{"commit": "a" * 40, "code": "other"}]}, [])
    monkeypatch.setattr(environment, "git_state", lambda: ("b" * 40, True))
    with pytest.raises(folder.FolderError, match="with uncommitted changes to the code"):
        folder.check_commit(tmp_path, manifest | {"commits": [{"commit": "a" * 40,
                                                               "code": "same"}]}, [])


def test_the_code_hash_ignores_docs_and_sees_the_code(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))

    def commit(path, text):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        for command in (["add", path], ["-c", "user.name=t", "-c", "user.email=t@t", "commit",
                                        "-q", "-m", path]):
            subprocess.run(["git", *command], check=True, capture_output=True)
        return subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()

    subprocess.run(["git", "init", "-q"], check=True, capture_output=True)
    first = commit("bench/x.py", "x = 1\n")
    records_only = commit("docs/report/runs/r/record.json", "{}\n")
    code_change = commit("bench/x.py", "x = 2\n")
    assert environment.code_hash(first) == environment.code_hash(records_only)
    assert environment.code_hash(code_change) != environment.code_hash(first)
    assert environment.code_hash("0" * 40) is None  # a commit this checkout does not have


def test_another_machine_is_refused_naming_both(tmp_path):
    held = [{"environment": {"device": "cpu", "cpu_model": "CPU A", "device_name": "CPU A"}}]
    folder.check_machine(tmp_path, held, "CPU A")
    with pytest.raises(folder.FolderError, match="measured on CPU A and this machine is CPU B"):
        folder.check_machine(tmp_path, held, "CPU B")
    gpu = [{"environment": {"device": "cuda", "cpu_model": "CPU A", "device_name": "GPU X"}}]
    folder.check_machine(tmp_path, gpu, "GPU X")
    folder.check_machine(tmp_path, [{"environment": {}}], "CPU B")  # nothing recorded: no check
