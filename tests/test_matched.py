"""Parameter-matched variants: their recurrent layers hold as many parameters as lstm's."""

from __future__ import annotations

import pytest
from torch import nn

from models import create_model, list_models, model_info
from models.matched import matched_hidden_dim
from models.recurrent import recurrent_param_count

MATCHED = list_models("*_matched")
SIZES = [  # (embedding_dim, hidden_dim, num_layers): smoke, quick, full and odd shapes
    (16, 16, 1),
    (64, 64, 1),
    (100, 256, 2),
    (32, 100, 3),
    (300, 512, 1),
]


def recurrent_params(model: nn.Module) -> int:
    """Trainable parameters of the model's fused recurrent layer(s), counted by torch."""
    return sum(
        p.numel() for m in model.modules() if isinstance(m, nn.RNNBase) for p in m.parameters()
    )


def test_the_matched_variants_are_registered_outside_the_default_set() -> None:
    assert {"rnn_matched", "gru_matched", "bilstm_matched", "bigru_matched"} <= set(MATCHED)
    for name in MATCHED:
        info = model_info(name)
        assert not info.default
        assert "parameter-matched to lstm" in info.description


@pytest.mark.parametrize(("embedding_dim", "hidden_dim", "num_layers"), SIZES)
@pytest.mark.parametrize("name", MATCHED)
def test_recurrent_parameters_match_lstm(
    name: str, embedding_dim: int, hidden_dim: int, num_layers: int
) -> None:
    shape = {"embedding_dim": embedding_dim, "hidden_dim": hidden_dim, "num_layers": num_layers}
    budget = recurrent_params(create_model("lstm", vocab_size=100, pad_index=1, **shape))
    model = create_model(name, vocab_size=100, pad_index=1, **shape)
    count = recurrent_params(model)
    rnn = next(m for m in model.modules() if isinstance(m, nn.RNNBase))
    if abs(count - budget) > 0.01 * budget:
        # Small sizes can miss 1%: then no other integer hidden size may come closer.
        def at(hidden: int) -> int:
            return recurrent_param_count(
                rnn.mode.lower().replace("rnn_tanh", "rnn"), input_dim=embedding_dim,
                hidden_dim=hidden, num_layers=num_layers, bidirectional=rnn.bidirectional,
            )  # fmt: skip

        assert at(rnn.hidden_size) == count
        assert abs(count - budget) <= abs(at(rnn.hidden_size - 1) - budget)
        assert abs(count - budget) <= abs(at(rnn.hidden_size + 1) - budget)
    # The matched model differs from lstm only where intended.
    assert rnn.input_size == embedding_dim and rnn.num_layers == num_layers


def test_the_count_formula_agrees_with_torch() -> None:
    for cell, module in (("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)):
        for bidirectional in (False, True):
            torch_count = sum(
                p.numel() for p in module(24, 40, num_layers=3, bidirectional=bidirectional).parameters()
            )
            assert torch_count == recurrent_param_count(
                cell, input_dim=24, hidden_dim=40, num_layers=3, bidirectional=bidirectional
            )


def test_matched_hidden_sizes_at_the_full_profile() -> None:
    # lstm 100 -> 256 x 2 has 4 gate blocks; a tanh RNN needs about twice the width, a GRU a bit
    # more than 256, a bidirectional LSTM about 1/sqrt(2) of it.
    shape = {"embedding_dim": 100, "lstm_hidden_dim": 256, "num_layers": 2}
    rnn = matched_hidden_dim("rnn", bidirectional=False, **shape)
    gru = matched_hidden_dim("gru", bidirectional=False, **shape)
    bilstm = matched_hidden_dim("lstm", bidirectional=True, **shape)
    assert 480 < rnn < 540 and 290 < gru < 310 and 150 < bilstm < 190
    assert matched_hidden_dim("lstm", bidirectional=False, **shape) == 256  # lstm matches itself


def test_a_matched_variant_refuses_a_hidden_size_below_one(capsys, tmp_path) -> None:
    import run_all

    code = run_all.main(["--profile", "smoke", "--archs", "gru_matched", "--set",
                         "gru_matched.hidden_dim=-1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--set gru_matched.*: hidden_dim (the lstm's, whose size this model matches) must be at least 1, got -1" in err
    assert not (tmp_path / "o").exists()
