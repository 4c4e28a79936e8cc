"""Run configuration: profiles, typed overrides, range checks, stable run ids."""

import dataclasses
import json

import pytest

from bench.run.config import (
    PROFILES,
    ConfigError,
    RunConfig,
    RunSpec,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    profile_config,
)
from models import list_models


def test_full_profile_is_the_notebook_configuration():
    cfg = profile_config("full")
    assert (cfg.data.vocab_size, cfg.data.max_len) == (10_000, 250)
    assert (cfg.model.embedding_dim, cfg.model.hidden_dim, cfg.model.num_layers) == (100, 256, 2)
    assert cfg.model.dropout == 0.5
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs) == (64, 1e-3, 5)


def test_profiles_are_deltas_on_one_base():
    quick, smoke = profile_config("quick"), profile_config("smoke")
    assert quick.model.hidden_dim < 256 and quick.data == RunConfig().data
    assert smoke.data.train_limit is not None and smoke.train.epochs <= 2


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [("train.lr", "3e-3", 3e-3), ("lr", "0.01", 0.01), ("model.hidden_dim", "128", 128),
     ("train.bf16", "false", False), ("data.train_limit", "none", None), ("epochs", "7", 7)],
)
def test_overrides_are_parsed_to_the_field_type(key, text, expected):
    cfg = apply_overrides(RunConfig(), {key: text})
    section, name = ("train", key) if "." not in key else key.split(".")
    if "." not in key:
        section = next(s for s in ("data", "model", "train", "measure")
                       if name in {f.name for f in dataclasses.fields(getattr(cfg, s))})
    assert getattr(getattr(cfg, section), name) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"train.lr": "-1"}, "train.lr must be > 0"),
     ({"train.batch_size": "0"}, "train.batch_size must be >= 1"),
     ({"data.max_len": "0"}, "max_len"),
     ({"train.lr": "fast"}, "train.lr expects float"),
     ({"hidden": "3"}, "unknown setting 'hidden'"),
     ({"train.nope": "3"}, "unknown setting 'train.nope'"),
     ({"model.padding_mode": "sideways"}, "padding_mode")],
)
def test_bad_overrides_fail_with_a_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        apply_overrides(RunConfig(), overrides)


def test_the_long_profile_reads_whole_reviews_with_a_larger_vocabulary():
    long, quick = profile_config("long"), profile_config("quick")
    assert (long.data.vocab_size, long.data.max_len) == (30_000, 1_000)
    assert long.data.train_limit is None and long.data.test_limit is None
    assert long.model.embedding_dim > quick.model.embedding_dim
    # only IMDb's data deltas change; the memory task keeps its own settings
    memory = profile_config("long", task="memory")
    assert memory.data == profile_config("full", task="memory").data


def test_unknown_profile_is_refused():
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        profile_config("fast")


def test_config_round_trips_through_a_dict():
    cfg = profile_config("smoke", {"train.lr": "0.02"})
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown train settings: bogus"):
        config_from_dict({**config_to_dict(cfg), "train": {"bogus": 1}})


def test_run_id_is_stable_and_depends_on_the_spec():
    cfg = profile_config("smoke")
    spec = RunSpec("lstm", 0, "smoke", "cpu", 2, cfg)
    assert spec.run_id == RunSpec("lstm", 0, "smoke", "cpu", 2, cfg, data_path="/elsewhere").run_id
    assert spec.run_id.startswith("lstm-s0-") and len(spec.run_id) == len("lstm-s0-") + 8
    other = RunSpec("lstm", 0, "smoke", "cpu", 2, apply_overrides(cfg, {"train.lr": "0.1"}))
    assert other.run_id != spec.run_id
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_configuration_page_is_generated_from_the_code():
    from pathlib import Path

    from bench.run.config import configuration_markdown

    page = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    assert page.read_text() == configuration_markdown(), (
        "docs/configuration.md is stale: run `python -m bench.config > docs/configuration.md`"
    )


def test_a_setting_added_later_changes_no_earlier_run_id_until_it_is_used():
    cfg = profile_config("smoke")
    spec = RunSpec("lstm", 0, "smoke", "cpu", 1, cfg)
    assert "target_accuracy" not in spec.to_dict()["train"]
    assert RunSpec.from_dict(spec.to_dict()).config == cfg
    used = RunSpec("lstm", 0, "smoke", "cpu", 1,
                   apply_overrides(cfg, {"train.target_accuracy": 0.9}))
    assert used.to_dict()["train"]["target_accuracy"] == 0.9
    assert used.run_id != spec.run_id
    assert RunSpec.from_dict(used.to_dict()).config.train.target_accuracy == 0.9


def test_one_model_s_own_settings_reach_only_that_model_and_its_run_id():
    from bench.grid.runner import plan_grid
    from bench.run.config import parse_model_settings, split_model_settings
    from bench.run.execute import model_hyperparams

    run, per_model = split_model_settings(
        {"model.hidden_dim": "32", "lstm.hidden_dim": "128", "tfidf_logreg.c_grid": "0.5, 2,8",
         "tfidf_logreg.min_df": "3"})  # fmt: skip
    assert run == {"model.hidden_dim": "32"}
    cfg = profile_config("smoke", run)
    settings = parse_model_settings(per_model, ["gru", "lstm", "tfidf_logreg"], cfg.data.vocab_size)
    assert settings == {"lstm": (("hidden_dim", 128),),
                        "tfidf_logreg": (("c_grid", (0.5, 2.0, 8.0)), ("min_df", 3))}  # fmt: skip
    specs = {s.arch: s for s in plan_grid(["gru", "lstm", "tfidf_logreg"], 1, profile="smoke",
                                          config=cfg, device="cpu", threads=1,
                                          model_settings=settings)}  # fmt: skip
    assert model_hyperparams(specs["lstm"])["hidden_dim"] == 128
    assert model_hyperparams(specs["gru"])["hidden_dim"] == 32  # the model.* value, untouched
    assert model_hyperparams(specs["tfidf_logreg"])["c_grid"] == (0.5, 2.0, 8.0)
    # A run without its own settings keeps the run id it had; one with them gets another, and the
    # settings survive the round trip through config.json (the predictor rebuilds from it).
    plain = RunSpec("lstm", 0, "smoke", "cpu", 1, cfg)
    assert "model_settings" not in plain.to_dict() and specs["lstm"].run_id != plain.run_id
    assert RunSpec.from_dict(json.loads(json.dumps(specs["tfidf_logreg"].to_dict()))) == specs["tfidf_logreg"]


def test_the_long_profile_runs_the_pooled_readouts_beside_the_last_state_models():
    import run_all

    archs = run_all.resolve_archs(None, "long")
    assert {"lstm", "gru", "bilstm", "gru_max", "bilstm_max", "tfidf_logreg"} <= set(archs)
    assert run_all.resolve_archs(None, "quick") == run_all.resolve_archs(None)
    assert run_all.resolve_archs(["gru_max"], "long") == ["gru_max"]


def test_archs_select_a_family_in_registry_order() -> None:
    import run_all

    modern = run_all.resolve_archs(["family:modern"])
    assert {"mingru", "mingru_max", "minlstm", "minlstm_max"} <= set(modern)
    assert run_all.resolve_archs(["family:floor", "lstm"]) == ["lstm", "bag_of_embeddings", "tfidf_logreg"]
    # the command line offers every profile (it lists them itself, so --help needs no torch)
    (profile_option,) = [a for a in run_all.build_parser()._actions if "--profile" in a.option_strings]
    assert tuple(profile_option.choices) == PROFILES


@pytest.mark.parametrize("arch", list_models())
def test_a_model_setting_is_checked_without_allocating_the_model(arch):
    # run_all.py --set lstm.hidden_dim=100000000: the check builds on the meta device, so a
    # model far larger than memory passes it (its run then fails as an oom record), and every
    # registered model must build there.
    from bench.run.config import parse_model_settings
    from models import model_info

    sizes = [k for k in ("hidden_dim", "embedding_dim") if k in model_info(arch).hyperparams]
    huge = {k: 100_000_000 for k in sizes}
    assert parse_model_settings({arch: huge}, [arch], 10_000) == {arch: tuple(sorted(huge.items()))}
    # A value the builder rejects is still refused in one line (torch's shape check raises a
    # RuntimeError, as lstm_scratch's and bag_of_embeddings' builders do).
    if "embedding_dim" in sizes:
        with pytest.raises(ConfigError, match=rf"--set {arch}\.\*: "):
            parse_model_settings({arch: {"embedding_dim": -1}}, [arch], 10_000)
