"""Registry behaviour: registration, lookup errors, overrides, listing and the default set."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from models import (
    FAMILIES,
    ModelInfo,
    TextClassifier,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)
from models import registry as registry_module
from tests.model_contracts import (
    build,
    check_declared_param_count,
    check_output_and_gradients,
    check_padding_invariance,
)

# The default comparison set includes at least these (README); more may be added.
DEFAULT_AT_LEAST = {"rnn", "lstm", "gru", "bilstm", "bag_of_embeddings", "tfidf_logreg"}


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModelInfo]:
    """A copy of the registry, so registering test models leaves the real one untouched."""
    copy = dict(registry_module._REGISTRY)
    monkeypatch.setattr(registry_module, "_REGISTRY", copy)
    return copy


@pytest.fixture
def glob_registry(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty registry holding a few throwaway models, in this order, two in the default set."""
    monkeypatch.setattr(registry_module, "_REGISTRY", {})
    names = ["rnn", "lstm", "gru", "bilstm", "lstm_scratch", "bigru_matched"]
    for name in names:
        register_model(name, description="throwaway", recurrent=True, family="classic",
                       default=name in ("lstm", "bilstm"))(_embedding_builder)  # fmt: skip
    return names


def _embedding_builder(*, vocab_size: int, pad_index: int, width: int = 3) -> nn.Module:
    return nn.Embedding(vocab_size, width, padding_idx=pad_index)


def test_the_default_set_is_the_registry_s_default_flags_in_registration_order() -> None:
    assert list_models(default_only=True) == [n for n in list_models() if model_info(n).default]
    assert set(list_models(default_only=True)) >= DEFAULT_AT_LEAST
    assert list_models()[-1] == "tfidf_logreg"  # the linear floor is the report's last row


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", ["rnn", "lstm", "gru", "bilstm", "lstm_scratch", "bigru_matched"]),
        ("*lstm*", ["lstm", "bilstm", "lstm_scratch"]),
        ("bi*", ["bilstm", "bigru_matched"]),
        ("?ru", ["gru"]),
        ("[rg]*", ["rnn", "gru"]),
        ("transformer*", []),
    ],
)
def test_list_models_globs(glob_registry: list[str], pattern: str, expected: list[str]) -> None:
    assert list_models(pattern) == expected


def test_list_models_glob_and_default_only_combine(glob_registry: list[str]) -> None:
    assert list_models("*lstm*", default_only=True) == ["lstm", "bilstm"]


def test_duplicate_name_raises_and_keeps_the_original(scratch_registry: dict[str, ModelInfo]) -> None:
    original = scratch_registry["lstm"]
    with pytest.raises(ValueError, match=r"model 'lstm' is already registered \(by models\.rnn\.lstm\)"):

        @register_model("lstm", description="an impostor", recurrent=False, family="floor")
        def impostor(*, vocab_size: int, pad_index: int) -> nn.Module:
            return nn.Linear(1, 1)

    assert scratch_registry["lstm"] is original


@pytest.mark.parametrize("lookup", [model_info, lambda name: create_model(name, vocab_size=10, pad_index=1)])
def test_unknown_name_suggests_close_matches_and_lists_all(lookup: Callable[[str], object]) -> None:
    with pytest.raises(UnknownModelError) as raised:
        lookup("lsmt")
    message = str(raised.value)
    assert "did you mean 'lstm'" in message
    assert "registered models: " + ", ".join(list_models()) in message
    assert isinstance(raised.value, ValueError)
    with pytest.raises(UnknownModelError, match=r"unknown model 'GRU'; did you mean 'gru'\?"):
        lookup("GRU")  # the wrong case: the right name, alone
    assert not isinstance(raised.value, KeyError)


def test_unknown_name_without_close_match_still_lists_all() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'transformer'; registered models: rnn, "):
        model_info("transformer")


def test_unknown_override_names_the_accepted_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"model 'bag_of_embeddings' does not accept hyperparameter\(s\) hidden_dim, num_layers; "
        r"accepted: embedding_dim, dropout",
    ):
        create_model("bag_of_embeddings", vocab_size=10, pad_index=1, hidden_dim=8, num_layers=1)


def test_overrides_reach_the_model() -> None:
    model = create_model("bilstm", vocab_size=30, pad_index=0, embedding_dim=6, hidden_dim=5, num_layers=3)
    assert model.embedding.weight.shape == (30, 6)
    assert model.encoder.rnn.num_layers == 3
    assert model.classifier.in_features == 10  # both directions' states


def test_model_info_exposes_the_builder_defaults() -> None:
    info = model_info("lstm")
    assert info.name == "lstm"
    assert info.hyperparams == {
        "embedding_dim": 100,
        "hidden_dim": 256,
        "num_layers": 2,
        "dropout": 0.5,
        "padding_mode": "auto",
    }
    assert model_info("lstm_scratch").hyperparams == {
        "embedding_dim": 100,
        "hidden_dim": 256,
        "num_layers": 2,
        "dropout": 0.5,
    }
    assert model_info("bag_of_embeddings").hyperparams == {"embedding_dim": 100, "dropout": 0.5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.default = False  # type: ignore[misc]
    info.hyperparams["hidden_dim"] = 1  # a copy: the registry's defaults are unchanged
    assert model_info("lstm").hyperparams["hidden_dim"] == 256
    assert hash(info) == hash(model_info("lstm"))


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_a_one_line_description(name: str) -> None:
    description = model_info(name).description
    assert description and "\n" not in description


def test_a_new_model_is_registered_listed_and_built(scratch_registry: dict[str, ModelInfo]) -> None:
    @register_model(description="Tiny test model", recurrent=False, family="floor")
    def tiny(*, vocab_size: int, pad_index: int, width: int = 3) -> nn.Module:
        return nn.Embedding(vocab_size, width, padding_idx=pad_index)

    assert list_models()[-1] == "tiny"
    assert "tiny" not in list_models(default_only=True)
    assert model_info("tiny").hyperparams == {"width": 3}
    assert model_info("tiny").builder is tiny
    assert create_model("tiny", vocab_size=7, pad_index=0, width=5).weight.shape == (7, 5)


def test_builder_contract_is_checked_at_registration(scratch_registry: dict[str, ModelInfo]) -> None:
    before = list_models()
    with pytest.raises(TypeError, match="hyperparameter 'width' of model 'no_default' has no default"):

        @register_model(description="x", recurrent=False, family="floor")
        def no_default(*, vocab_size: int, pad_index: int, width: int) -> nn.Module:
            return nn.Linear(width, 1)

    with pytest.raises(TypeError, match=r"takes \*\*kwargs"):

        @register_model(description="x", recurrent=False, family="floor")
        def open_ended(*, vocab_size: int, pad_index: int, **kwargs: object) -> nn.Module:
            return nn.Linear(1, 1)

    with pytest.raises(TypeError, match=r"must accept keyword arguments \['pad_index'\]"):

        @register_model(description="x", recurrent=False, family="floor")
        def no_pad(*, vocab_size: int) -> nn.Module:
            return nn.Linear(1, 1)

    with pytest.raises(ValueError, match="single non-empty line"):
        register_model(description="two\nlines", recurrent=False, family="floor")
    assert list_models() == before


def test_facts_are_declared_and_checked_at_registration(scratch_registry: dict[str, ModelInfo]) -> None:
    with pytest.raises(TypeError, match="recurrent"):
        register_model(description="x")  # type: ignore[call-arg]  # recurrent has no default
    with pytest.raises(TypeError, match="recurrent must be True or False, got None"):
        register_model(description="x", recurrent=None, family="floor")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="family"):
        register_model(description="x", recurrent=False)  # type: ignore[call-arg]  # no default
    with pytest.raises(ValueError, match="family must be one of classic, modern, floor, got 'novel'"):
        register_model(description="x", recurrent=True, family="novel")
    with pytest.raises(ValueError, match="training must be one of gradient, self_fit, got 'closed_form'"):
        register_model(description="x", recurrent=False, family="floor", training="closed_form")
    with pytest.raises(ValueError, match="model 'free' declares flops_per_token 0.0 at its defaults"):
        register_model("free", description="x", recurrent=False, family="floor", flops_per_token=lambda hp: 0.0)(
            _embedding_builder
        )
    assert "free" not in scratch_registry
    register_model("declared", description="x", recurrent=True, family="classic", training="self_fit",
                   param_count=lambda vocab_size, hp: vocab_size * hp["width"],
                   flops_per_token=lambda hp: 2.0 * hp["width"])(_embedding_builder)  # fmt: skip
    info = model_info("declared")
    assert (info.recurrent, info.training) == (True, "self_fit")
    assert info.declared_flops_per_token() == 6.0 and info.declared_flops_per_token(width=5) == 10.0
    assert info.declared_param_count(7, width=5) == 35
    register_model("undeclared", description="x", recurrent=False, family="floor")(_embedding_builder)
    assert model_info("undeclared").declared_flops_per_token() is None
    assert model_info("undeclared").declared_param_count(7) is None
    assert model_info("undeclared").declared_state_size() is None


def test_every_model_has_a_family_and_families_select() -> None:
    names = list_models()
    by_family = {family: list_models(family=family) for family in FAMILIES}
    assert sorted(sum(by_family.values(), [])) == sorted(names)
    assert {"rnn", "lstm", "gru", "bilstm"} <= set(by_family["classic"])
    assert {"mingru", "minlstm", "mingru_max", "minlstm_max"} <= set(by_family["modern"])
    assert set(by_family["floor"]) == {"bag_of_embeddings", "tfidf_logreg"}
    assert all(model_info(name).recurrent for name in by_family["classic"] + by_family["modern"])
    assert not set(list_models(default_only=True)) & set(by_family["modern"])
    with pytest.raises(ValueError, match="unknown family 'novel'; families: classic, modern, floor"):
        list_models(family="novel")


class _MeanPool(TextClassifier):
    """A throwaway model: the mean of the real tokens' embeddings, then one logit."""

    def __init__(self, *, vocab_size: int, pad_index: int, embedding_dim: int, read_padding: bool) -> None:
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.head = nn.Linear(embedding_dim, 1)
        self.read_padding = read_padding

    def classify(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(tokens)
        if self.read_padding:  # the bug the padding contract exists for: padding enters the mean
            return self.head(embedded.mean(dim=1)).squeeze(1)
        real = (torch.arange(tokens.shape[1]) < lengths.unsqueeze(1)).unsqueeze(2)
        return self.head((embedded * real).sum(1) / lengths.unsqueeze(1)).squeeze(1)


def _register_mean_pool(name: str, *, read_padding: bool = False, extra_params: int = 0) -> None:
    def builder(*, vocab_size: int, pad_index: int, embedding_dim: int = 4) -> nn.Module:
        return _MeanPool(vocab_size=vocab_size, pad_index=pad_index, embedding_dim=embedding_dim,
                         read_padding=read_padding)  # fmt: skip

    register_model(
        name, description="throwaway mean-pool model", recurrent=False, family="floor",
        param_count=lambda vocab_size, hp: (vocab_size + 1) * hp["embedding_dim"] + 1 + extra_params,
        flops_per_token=lambda hp: 2.0 * hp["embedding_dim"],
    )(builder)


def test_a_throwaway_model_is_held_to_the_contracts_with_no_test_edit(
    scratch_registry: dict[str, ModelInfo],
) -> None:
    # The checks tests/test_models.py runs on every registered name, run on a model registered here.
    _register_mean_pool("throwaway")
    assert "throwaway" in list_models()
    torch.manual_seed(0)
    check_output_and_gradients(build("throwaway"))
    check_padding_invariance(build("throwaway"))
    check_declared_param_count("throwaway")
    # And they catch a broken one: padding that reaches the logit, a size declared wrong.
    _register_mean_pool("reads_padding", read_padding=True)
    with pytest.raises(AssertionError):
        check_padding_invariance(build("reads_padding"))
    _register_mean_pool("miscounted", extra_params=1)
    with pytest.raises(AssertionError):
        check_declared_param_count("miscounted")


def _readme_example() -> tuple[str, str]:
    """The "Adding an architecture" example of the extending guide (it moved there from the
    README): (module file name, source)."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "extending.md").read_text(encoding="utf-8")
    section = guide.split("## Adding an architecture", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    first_line = source.splitlines()[0]
    assert first_line.startswith("# models/"), first_line
    return first_line.removeprefix("# models/"), source


def test_the_readme_example_is_one_module_that_registers_itself_and_keeps_the_contracts(tmp_path):
    """Adding an architecture is one module: the package finds it, the contracts hold for it, and
    what the README says about its width under a profile is true."""
    root = Path(__file__).resolve().parent.parent
    pkg = tmp_path / "models"
    shutil.copytree(root / "models", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    file_name, source = _readme_example()
    (pkg / file_name).write_text(source)
    name = file_name.removesuffix(".py")
    code = f"""
import sys
sys.path.insert(1, {str(root)!r})  # the tests package; models comes from the copy (the cwd)
import torch
import models
from bench.run.config import profile_config, split_model_settings, parse_model_settings
from bench.run.execute import model_hyperparams
from bench.grid.runner import plan_grid
from tests.model_contracts import (build, check_declared_param_count, check_declared_state_size,
                                   check_output_and_gradients, check_padding_invariance)
assert models.__file__.startswith({str(pkg)!r}), models.__file__
names = models.list_models()
print(names[-2], names[-1])
torch.manual_seed(0)
check_output_and_gradients(build({name!r}))
check_padding_invariance(build({name!r}))
check_declared_param_count({name!r})
check_declared_state_size({name!r})
assert models.model_info({name!r}).family == "classic"
# quick profile: hidden_dim 64 reaches the model, which doubles it; --set {name}.hidden_dim=256
# gives this model alone 512 units.
quick = profile_config("quick")
_, per_model = split_model_settings({{"{name}.hidden_dim": "256"}})
settings = parse_model_settings(per_model, [{name!r}, "gru"], quick.data.vocab_size)
specs = plan_grid([{name!r}, "gru"], 1, profile="quick", config=quick, device="cpu", threads=1,
                  model_settings=settings)
plain = plan_grid([{name!r}], 1, profile="quick", config=quick, device="cpu", threads=1)[0]
def width(spec):
    model = models.create_model(spec.arch, vocab_size=100, pad_index=1, **model_hyperparams(spec))
    return model.encoder.hidden_dim
print(width(plain), width(specs[0]), width(specs[1]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [name, "tfidf_logreg", "128", "512", "64"]


def test_every_network_has_one_embedding_table_so_old_records_core_params_are_exact():
    # reports.table.metric_value derives core_param_count for records written before it as
    # param_count - vocabulary x embedding_dim: true only while every network keeps one table.
    from bench.run.execute import core_params, trainable_params
    from models import create_model, list_models, model_info

    for name in list_models():
        if model_info(name).training != "gradient":
            continue
        sizes = {"embedding_dim": 8, "hidden_dim": 6}
        accepted = model_info(name).hyperparams
        model = create_model(name, vocab_size=97, pad_index=1,
                             **{k: v for k, v in sizes.items() if k in accepted})
        assert core_params(model) == trainable_params(model) - 97 * 8, name
        assert 0 < core_params(model) < trainable_params(model), name
