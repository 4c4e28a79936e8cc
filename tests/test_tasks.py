"""Tasks as a registry: IMDb is the first task, and a second one is one registration.

The tiny task below is registered here, when this module is imported: a run's child process finds
it again by importing this module (the registration's ``module``), as it would a plug-in's.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.grid.runner import plan_grid
from bench.predict import main as predict_main
from bench.results import records
from bench.run.config import ConfigError, RunSpec, profile_config
from data_pipeline import (
    EncodedSplit,
    TaskData,
    UnknownTaskError,
    Vocab,
    list_tasks,
    make_synthetic_archive,
    register_task,
    task_info,
)
from tests.factories import run_cli

ROOT = Path(__file__).resolve().parent.parent
TINY = "tiny_first_symbol"
SYMBOLS = ("a", "b", "c", "d", "e", "f")


@dataclass(frozen=True)
class TinySettings:
    """A generated task: is the first of ``length`` random symbols one of the first three?"""

    n_train: int = 300
    n_test: int = 100
    length: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_train < 10 or self.n_test < 2 or self.length < 1:
            raise ValueError("n_train must be >= 10, n_test >= 2 and length >= 1")


def _split(name: str, rng: np.random.Generator, n: int, length: int) -> EncodedSplit:
    ids = rng.integers(2, 2 + len(SYMBOLS), size=(n, length))
    split = EncodedSplit.unlabeled(name, ids.tolist())
    labels = torch.from_numpy((ids[:, 0] < 2 + len(SYMBOLS) // 2).astype(np.int64))
    return dataclasses.replace(split, labels=labels)


def load_tiny(settings: TinySettings, data_path: object, *, progress: bool = True) -> TaskData:
    rng = np.random.default_rng(settings.seed)
    n_val = settings.n_train // 5
    train = _split("train", rng, settings.n_train - n_val, settings.length)
    val = _split("val", rng, n_val, settings.length)
    test = _split("test", rng, settings.n_test, settings.length)
    return TaskData(train, val, test, Vocab(["<unk>", "<pad>", *SYMBOLS]),
                    {"source": f"generated (seed {settings.seed})"})


if TINY not in list_tasks():
    register_task(
        TINY, settings=TinySettings, loader=load_tiny, title="Tiny first symbol",
        description="Generated sequences of six symbols, labelled by their first symbol",
        example="sequence", profile_deltas={"smoke": {"n_train": 200}},
    )


pytestmark = pytest.mark.usefixtures("clean_checkout")


# ---- the registry ------------------------------------------------------------------------------


def test_imdb_is_the_first_task_and_mistakes_fail_loudly():
    assert list_tasks()[0] == "imdb" and TINY in list_tasks()
    with pytest.raises(UnknownTaskError, match="did you mean imdb"):
        task_info("imbd")
    with pytest.raises(ValueError, match="already registered"):
        register_task(TINY, settings=TinySettings, loader=load_tiny, description="again")

    @dataclass
    class Mutable:
        n: int = 1

    with pytest.raises(TypeError, match="frozen dataclass"):
        register_task("mutable", settings=Mutable, loader=load_tiny, description="x")
    with pytest.raises(ValueError, match="unknown settings"):
        register_task("bad_delta", settings=TinySettings, loader=load_tiny, description="x",
                      profile_deltas={"smoke": {"vocab_size": 10}})
    assert "mutable" not in list_tasks() and "bad_delta" not in list_tasks()


def test_the_cli_lists_tasks_and_refuses_an_unknown_one(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "--list-tasks")
    assert code == 0 and out.startswith("imdb ") and f"\n{TINY} " in out
    assert "inputs: text" in out and "inputs: not text" in out and "data.n_train" in out
    code, _, err = run_cli(capsys, "--task", "imbd", "--profile", "smoke", "--out", str(tmp_path / "o"))
    assert code == 2 and "did you mean imdb" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_task_has_its_own_settings_and_profile_deltas(capsys, tmp_path):
    smoke = profile_config("smoke", task=TINY)
    assert smoke.data == TinySettings(n_train=200) and smoke.model.hidden_dim == 16
    assert profile_config("quick", {"data.length": "5"}, task=TINY).data.length == 5
    assert profile_config("smoke").data.train_limit == 2_000  # IMDb's smoke delta, as before
    with pytest.raises(ConfigError, match="unknown setting 'data.vocab_size'"):
        profile_config("smoke", {"data.vocab_size": "10"}, task=TINY)
    code, _, err = run_cli(capsys, "--task", TINY, "--profile", "smoke", "--set", "data.length=0",
                           "--out", str(tmp_path / "o"))
    assert code == 2 and "length" in err


def test_the_task_enters_the_run_id_only_when_it_is_not_imdb():
    imdb = plan_grid(["gru"], 1, profile="smoke", config=profile_config("smoke"), device="cpu", threads=1)[0]
    assert "task" not in imdb.to_dict() and imdb.run_id.startswith("gru-s0-")
    tiny = plan_grid(["gru"], 1, profile="smoke", config=profile_config("smoke", task=TINY),
                     device="cpu", threads=1, task=TINY)[0]  # fmt: skip
    assert tiny.to_dict()["task"] == TINY and tiny.run_id.startswith(f"{TINY}-gru-s0-")
    assert RunSpec.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    # The same spec under another task's name hashes differently, not only by its prefix.
    other = dataclasses.replace(tiny, task="imdb", config=tiny.config)
    assert other.run_id.rsplit("-", 1)[1] != tiny.run_id.rsplit("-", 1)[1]


def test_the_committed_example_keeps_its_run_ids():
    example = ROOT / "docs" / "example-report"
    manifest = json.loads((example / "manifest.json").read_text())
    specs = plan_grid(manifest["archs"], manifest["seeds"], profile=manifest["profile"],
                      config=profile_config(manifest["profile"]), device=manifest["device"],
                      threads=manifest["threads"])  # fmt: skip
    assert sorted(s.run_id for s in specs) == sorted(p.name for p in (example / "runs").iterdir())


# ---- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_registered_task_runs_beside_imdb_in_one_folder(capsys, tmp_path):
    archive = make_synthetic_archive(tmp_path / "imdb.tar.gz", n_per_class_train=100, n_per_class_test=40)
    out = tmp_path / "res"
    # No CPU inference-memory process per run (seconds each; test_bench_run.py measures it).
    common = ["--profile", "smoke", "--archs", "bag_of_embeddings", "--out", str(out), "--no-progress",
              "--set", "measure.infer_memory=false"]
    imdb = [*common, "--data", str(archive), "--set", "data.train_limit=none",
            "--set", "data.test_limit=none"]
    code, _, err = run_cli(capsys, *imdb)
    assert code == 0, err
    # The tiny task joins the folder; none of its runs is taken for the IMDb run already there.
    code, stdout, err = run_cli(capsys, "--task", TINY, *common, "--resume")
    assert code == 0, err
    assert "0 run(s) already succeeded, 1 to go" in err and f"task {TINY}" in err
    held = {records.task_of(r): r for r in records.load_records(out)}
    assert sorted(held) == ["imdb", TINY] and all(r["status"] == "ok" for r in held.values())
    assert held[TINY]["run_id"].startswith(f"{TINY}-bag_of_embeddings-s0-")
    assert held[TINY]["task_info"]["description"].startswith("Generated sequences")
    assert held[TINY]["data"]["n_test"] == 100 and held[TINY]["data"]["n_train"] == 160
    assert held[TINY]["spec"]["data"]["n_train"] == 200  # the task's own smoke delta
    # Each task continues on its own: nothing runs again, for either.
    for argv in (imdb, ["--task", TINY, *common]):
        code, _, err = run_cli(capsys, *argv, "--resume")
        assert code == 0 and "1 run(s) already succeeded, 0 to go" in err, err
    # Settings are checked per task: the tiny task's runs refuse other tiny settings.
    code, _, err = run_cli(capsys, "--task", TINY, *common, "--resume", "--set", "data.length=20")
    assert code == 2 and "data.length is 12 there, 20 here" in err
    manifest = records.read_manifest(out)
    assert manifest["tasks"] == ["imdb", TINY] and set(manifest["task_settings"]) == {"imdb", TINY}
    # The report: a section per task, each named from its registration, with its own figures.
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# rnnbench: recurrent text classifiers on IMDb and Tiny first symbol")
    assert "## Task `imdb`: IMDb" in report and f"## Task `{TINY}`: Tiny first symbol" in report
    tiny_part = report[report.index(f"## Task `{TINY}`"):]
    assert "Generated sequences of six symbols" in tiny_part and "### Results" in tiny_part
    assert f"plots/{TINY}/accuracy_vs_throughput.png" in tiny_part
    assert "#### Single-sequence latency" in tiny_part and "#### Single-review latency" in report
    assert (out / "plots" / TINY / "accuracy_vs_throughput.png").is_file()
    assert "Published results" not in tiny_part and "Published results" in report
    assert "| **Splits (Tiny first symbol, sequences)** | train 160, validation 40, test 100" in report
    csv = (out / "summary.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("arch,task,") and {line.split(",")[1] for line in csv[1:]} == {"imdb", TINY}
    # The tiny task's inputs are not text: predict says so in one line.
    code = predict_main([str(out / "runs" / held[TINY]["run_id"]), "some words"])
    assert code == 2 and "whose inputs are not text" in capsys.readouterr().err


def test_tuning_works_on_a_task_whose_inputs_are_not_text(tmp_path):
    # Tuning reads only the encoded train and validation splits, so it serves every task.
    from bench.grid.tune import TUNING_NAME, TuneConfig, tune_grid

    config = profile_config("smoke", task=TINY)
    specs = plan_grid(["bag_of_embeddings"], 1, profile="smoke", config=config, device="cpu",
                      threads=1, task=TINY)  # fmt: skip
    grid = TuneConfig(lr_factors=(0.5, 2.0), dropout_factors=(1.0,), epochs=1)
    chosen = tune_grid(specs, load_tiny(config.data, None), tmp_path, grid, progress=False,
                       log=lambda _: None)  # fmt: skip
    trials = json.loads((tmp_path / TUNING_NAME).read_text())["trials"]
    assert len(trials) == 2 and all(t["trial_id"].startswith(f"{TINY}-") for t in trials)
    best = min(trials, key=lambda t: t["val_loss"])
    assert chosen == {"bag_of_embeddings": best["settings"]}
