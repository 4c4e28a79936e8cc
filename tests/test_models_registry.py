"""Registry behaviour: registration, lookup errors, overrides, listing and the default set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from torch import nn

from models import (
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)
from models import registry as registry_module

ALL_MODELS = ["rnn", "lstm", "gru", "bilstm", "bigru", "lstm_scratch", "bag_of_embeddings",
              "rnn_matched", "gru_matched", "bilstm_matched", "bigru_matched", "tfidf_logreg"]
DEFAULT_MODELS = ["rnn", "lstm", "gru", "bilstm", "bag_of_embeddings", "tfidf_logreg"]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModelInfo]:
    """A copy of the registry, so registering test models leaves the real one untouched."""
    copy = dict(registry_module._REGISTRY)
    monkeypatch.setattr(registry_module, "_REGISTRY", copy)
    return copy


def test_registration_order_is_report_order() -> None:
    assert list_models() == ALL_MODELS


def test_default_set() -> None:
    assert list_models(default_only=True) == DEFAULT_MODELS
    assert [name for name in ALL_MODELS if name not in DEFAULT_MODELS] == [
        name for name in ALL_MODELS if not model_info(name).default
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", ALL_MODELS),
        ("*lstm*", ["lstm", "bilstm", "lstm_scratch", "bilstm_matched"]),
        ("bi*", ["bilstm", "bigru", "bilstm_matched", "bigru_matched"]),
        ("?ru", ["gru"]),
        ("[rg]*", ["rnn", "gru", "rnn_matched", "gru_matched"]),
        ("transformer*", []),
    ],
)
def test_list_models_globs(pattern: str, expected: list[str]) -> None:
    assert list_models(pattern) == expected


def test_list_models_glob_and_default_only_combine() -> None:
    assert list_models("*lstm*", default_only=True) == ["lstm", "bilstm"]


def test_duplicate_name_raises_and_keeps_the_original(scratch_registry: dict[str, ModelInfo]) -> None:
    original = scratch_registry["lstm"]
    with pytest.raises(ValueError, match=r"model 'lstm' is already registered \(by models\.rnn\.lstm\)"):

        @register_model("lstm", description="an impostor")
        def impostor(*, vocab_size: int, pad_index: int) -> nn.Module:
            return nn.Linear(1, 1)

    assert scratch_registry["lstm"] is original


@pytest.mark.parametrize("lookup", [model_info, lambda name: create_model(name, vocab_size=10, pad_index=1)])
def test_unknown_name_suggests_close_matches_and_lists_all(lookup: Callable[[str], object]) -> None:
    with pytest.raises(UnknownModelError) as raised:
        lookup("lsmt")
    message = str(raised.value)
    assert "did you mean 'lstm'" in message
    assert "registered models: " + ", ".join(ALL_MODELS) in message
    assert isinstance(raised.value, ValueError)
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


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_has_a_one_line_description(name: str) -> None:
    description = model_info(name).description
    assert description and "\n" not in description


def test_a_new_model_is_registered_listed_and_built(scratch_registry: dict[str, ModelInfo]) -> None:
    @register_model(description="Tiny test model")
    def tiny(*, vocab_size: int, pad_index: int, width: int = 3) -> nn.Module:
        return nn.Embedding(vocab_size, width, padding_idx=pad_index)

    assert list_models()[-1] == "tiny"
    assert "tiny" not in list_models(default_only=True)
    assert model_info("tiny").hyperparams == {"width": 3}
    assert model_info("tiny").builder is tiny
    assert create_model("tiny", vocab_size=7, pad_index=0, width=5).weight.shape == (7, 5)


def test_builder_contract_is_checked_at_registration(scratch_registry: dict[str, ModelInfo]) -> None:
    with pytest.raises(TypeError, match="hyperparameter 'width' of model 'no_default' has no default"):

        @register_model(description="x")
        def no_default(*, vocab_size: int, pad_index: int, width: int) -> nn.Module:
            return nn.Linear(width, 1)

    with pytest.raises(TypeError, match=r"takes \*\*kwargs"):

        @register_model(description="x")
        def open_ended(*, vocab_size: int, pad_index: int, **kwargs: object) -> nn.Module:
            return nn.Linear(1, 1)

    with pytest.raises(TypeError, match=r"must accept keyword arguments \['pad_index'\]"):

        @register_model(description="x")
        def no_pad(*, vocab_size: int) -> nn.Module:
            return nn.Linear(1, 1)

    with pytest.raises(ValueError, match="single non-empty line"):
        register_model(description="two\nlines")
    assert list_models() == ALL_MODELS


def test_a_new_module_in_the_package_is_registered_with_no_other_edit(tmp_path):
    """Adding an architecture is one module: the package finds it (README, "Adding an architecture")."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pkg = tmp_path / "models"
    shutil.copytree(root / "models", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "wide_gru.py").write_text(
        "from models.recurrent import RecurrentClassifier\n"
        "from models.registry import register_model\n\n"
        "@register_model(description='GRU with a wider hidden state')\n"
        "def wide_gru(*, vocab_size: int, pad_index: int, hidden_dim: int = 32):\n"
        "    return RecurrentClassifier.fused('gru', vocab_size=vocab_size, pad_index=pad_index,\n"
        "        embedding_dim=8, hidden_dim=hidden_dim, num_layers=1, bidirectional=False,\n"
        "        dropout=0.0, padding_mode='auto')\n"
    )
    code = "import models; names = models.list_models(); print(names[-2], names[-1])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.split() == ["wide_gru", "tfidf_logreg"]
