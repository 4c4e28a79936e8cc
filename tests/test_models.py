"""Contract tests for every registered model, parametrized over the registry.

A newly registered model is picked up by ``list_models()`` with no edit here. Sizes are tiny where
the test is not about the defaults, so the file runs in seconds.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models import PADDING_MODES, check_batch, create_model, list_models, model_info
from models.lstm_scratch import ScratchLSTM
from models.recurrent import (
    AUTO_PADDING_MODE,
    pool_over_time,
    recurrent_flops_per_token,
    reverse_index,
)
from tests.model_contracts import (
    VOCAB_SIZE,
    build,
    check_declared_param_count,
    check_declared_state_size,
    check_output_and_gradients,
    check_padding_invariance,
    make_batch,
    trainable_params,
)

EXACT_MODES = [mode for mode in PADDING_MODES if mode != "auto"]
GRADIENT_MODELS = [name for name in list_models() if model_info(name).training == "gradient"]

# The notebook's four models at its configuration (vocabulary 10,000, embedding 100, hidden 256,
# 2 layers): trainable parameters, both bias vectors of every PyTorch recurrent layer and one
# Linear(hidden * directions -> 1) included. Written out, not derived, so the formulas are checked.
NOTEBOOK_PARAM_COUNTS = {
    "rnn": 1_223_489,
    "lstm": 1_893_185,
    "gru": 1_669_953,
    "bilstm": 3_310_657,
}


def model_mode_cases() -> list[object]:
    """(name, padding_mode) for every model; both exact modes for models that have them."""
    cases = []
    for name in list_models():
        if "padding_mode" in model_info(name).hyperparams:
            cases += [pytest.param(name, mode, id=f"{name}-{mode}") for mode in EXACT_MODES]
        else:
            cases.append(pytest.param(name, None, id=name))
    return cases


def build_with_mode(name: str, mode: str | None, **extra: object) -> nn.Module:
    return build(name, **extra) if mode is None else build(name, padding_mode=mode, **extra)


RECURRENT_MODELS = [name for name in list_models() if "padding_mode" in model_info(name).hyperparams]


@pytest.mark.parametrize(("name", "mode"), model_mode_cases())
def test_output_shape_finite_and_every_parameter_gets_a_gradient(name: str, mode: str | None) -> None:
    torch.manual_seed(0)
    check_output_and_gradients(build_with_mode(name, mode))


@pytest.mark.parametrize(("name", "mode"), model_mode_cases())
def test_logit_does_not_depend_on_padding(name: str, mode: str | None) -> None:
    torch.manual_seed(0)
    check_padding_invariance(build_with_mode(name, mode))


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_declared_parameter_count_is_the_module_s(name: str) -> None:
    check_declared_param_count(name)


@pytest.mark.parametrize("name", [name for name in GRADIENT_MODELS if model_info(name).recurrent])
def test_declared_state_size_is_the_carried_state_s(name: str) -> None:
    torch.manual_seed(0)
    check_declared_state_size(name)


def test_state_size_counts_every_layer_direction_and_cell() -> None:
    # Written out: the notebook's LSTM carries h and c of 2 layers of 256; the BiLSTM twice that.
    assert model_info("lstm").declared_state_size() == 2 * 2 * 256
    assert model_info("bilstm").declared_state_size() == 2 * 2 * 2 * 256
    assert model_info("gru").declared_state_size() == model_info("rnn").declared_state_size() == 512
    assert model_info("mingru").declared_state_size(hidden_dim=64, num_layers=3) == 3 * 64


@pytest.mark.parametrize("name", list(NOTEBOOK_PARAM_COUNTS))
def test_notebook_parameter_counts(name: str) -> None:
    model = create_model(name, vocab_size=10_000, pad_index=1)
    assert trainable_params(model) == NOTEBOOK_PARAM_COUNTS[name]
    assert model_info(name).declared_param_count(10_000) == NOTEBOOK_PARAM_COUNTS[name]


def test_recurrent_flops_follow_the_formula() -> None:
    # LSTM, I=100, H=256: per token 2 * 4 * 256 * (100 + 256) for layer 0, (256 + 256) for layer 1
    shape = {"input_dim": 100, "hidden_dim": 256, "num_layers": 2, "bidirectional": False}
    expected = 2 * 4 * 256 * (100 + 256) + 2 * 4 * 256 * (256 + 256)
    assert recurrent_flops_per_token("lstm", **shape) == expected
    # A bidirectional GRU: both directions, three gate blocks each.
    gru = {"input_dim": 8, "hidden_dim": 16, "num_layers": 1, "bidirectional": True}
    assert recurrent_flops_per_token("gru", **gru) == 2 * 2 * 3 * 16 * (8 + 16)
    # The lstm classifier: its recurrence plus the head (hidden -> 1) counted at every token.
    assert model_info("lstm").declared_flops_per_token() == expected + 2 * 256


def test_the_hand_written_lstm_declares_the_lstm_s_size_and_cost() -> None:
    for shape in ({}, {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1}):
        assert (model_info("lstm_scratch").declared_flops_per_token(**shape)
                == model_info("lstm").declared_flops_per_token(**shape) > 0)  # fmt: skip
        assert (model_info("lstm_scratch").declared_param_count(10_000, **shape)
                == model_info("lstm").declared_param_count(10_000, **shape))  # fmt: skip
    assert model_info("lstm_scratch").recurrent and model_info("lstm").recurrent


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_logits(name: str) -> None:
    tokens, lengths = make_batch([9, 4, 9], max_time=9)
    logits = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build(name).eval()
        with torch.no_grad():
            logits.append(model(tokens, lengths))
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=0)
    torch.manual_seed(124)
    with torch.no_grad():
        other = build(name).eval()(tokens, lengths)
    assert not torch.allclose(other, logits[0]), "the seed does not reach the initialisation"


BAD_CALLS = {
    "float tokens": (lambda t, n: (t.float(), n), r"tokens must be integer token ids"),
    "1-D tokens": (lambda t, n: (t[0], n), r"tokens must be 2-D"),
    "2-D lengths": (lambda t, n: (t, n.unsqueeze(1)), r"lengths must be 1-D"),
    "float lengths": (lambda t, n: (t, n.float()), r"lengths must be an integer tensor"),
    "batch mismatch": (lambda t, n: (t, n[:2]), r"batch size mismatch: tokens has 3 rows, lengths has 2"),
    "zero length": (lambda t, n: (t, torch.tensor([4, 0, 2])), r"length 0 at batch row 1"),
    "too long": (lambda t, n: (t, torch.tensor([4, 7, 2])), r"length 7 at batch row 1 exceeds the padded width T=6"),
    "id too large": (lambda t, n: (t.index_put((torch.tensor([2]), torch.tensor([1])), torch.tensor(VOCAB_SIZE)), n), r"token id 50 at \(row 2, position 1\) is outside \[0, vocab_size=50\)"),
    "negative id": (lambda t, n: (t.index_put((torch.tensor([0]), torch.tensor([0])), torch.tensor(-3)), n), r"token id -3 at \(row 0, position 0\)"),
    "empty batch": (lambda t, n: (t[:0], n[:0]), r"empty batch"),
    "not tensors": (lambda t, n: (t.tolist(), n), r"must be torch tensors"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
@pytest.mark.parametrize("name", list_models())
def test_bad_calls_raise_value_error_naming_the_problem(name: str, case: str) -> None:
    model = build(name)
    tokens, lengths = make_batch([4, 6, 2], max_time=6)
    corrupt, message = BAD_CALLS[case]
    with pytest.raises(ValueError, match=message):
        model(*corrupt(tokens, lengths))


def test_value_checks_skip_tokens_off_the_cpu() -> None:
    # Reading ids on an accelerator would force a sync per step; "meta" tensors hold no values, so
    # any value check on them would fail. Shape checks still apply.
    tokens = torch.empty(2, 5, dtype=torch.long, device="meta")
    check_batch(tokens, torch.tensor([5, 3]), vocab_size=VOCAB_SIZE)
    with pytest.raises(ValueError, match="batch size mismatch"):
        check_batch(tokens, torch.tensor([5]), vocab_size=VOCAB_SIZE)
    with pytest.raises(ValueError, match="lengths must be a CPU tensor"):
        check_batch(tokens, torch.tensor([5, 3], device="meta"), vocab_size=VOCAB_SIZE)


def test_reverse_index_reverses_within_each_length_and_leaves_padding() -> None:
    index = reverse_index(torch.tensor([3, 1, 5]), 5, torch.device("cpu"))
    assert index.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]


@pytest.mark.parametrize("name", RECURRENT_MODELS)
def test_padded_and_packed_give_the_same_logits_and_gradients(name: str) -> None:
    # Three layers so a bidirectional model exercises the composition of stacked layers.
    torch.manual_seed(0)
    padded = build(name, padding_mode="padded", num_layers=3).eval()
    packed = build(name, padding_mode="packed", num_layers=3).eval()
    packed.load_state_dict(padded.state_dict())  # one parameter layout serves both modes
    tokens, lengths = make_batch([40, 3, 17, 40, 1, 25], max_time=40, seed=1)
    targets = torch.tensor([1.0, 0, 1, 1, 0, 0])
    results = []
    for model in (padded, packed):
        logits = model(tokens, lengths)
        F.binary_cross_entropy_with_logits(logits, targets).backward()
        results.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-5)
    for param_name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][param_name], rtol=0, atol=1e-5, msg=param_name)


@pytest.mark.parametrize("name", RECURRENT_MODELS)
def test_auto_mode_follows_the_measured_table(name: str) -> None:
    # AUTO_PADDING_MODE is the measurement's record (bench.dev.gpu_check checks the CUDA entry).
    encoder = build(name).encoder
    assert encoder.padding_mode == "auto"
    for device_type, mode in AUTO_PADDING_MODE.items():
        assert encoder.resolve_padding_mode(torch.device(device_type)) == mode
    assert AUTO_PADDING_MODE["cpu"] == "padded"  # measured here, in every CI run's benchmarks


def test_unknown_padding_mode_raises() -> None:
    with pytest.raises(ValueError, match="unknown padding_mode 'sorted'"):
        build("lstm", padding_mode="sorted")


def test_scratch_lstm_matches_nn_lstm_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    reference = nn.LSTM(5, 7, num_layers=2, batch_first=True)
    scratch = ScratchLSTM(5, 7, num_layers=2, dropout=0.0)
    scratch.load_state_dict(reference.state_dict())
    lengths = torch.tensor([6, 2, 9, 1])
    inputs = torch.randn(4, 9, 5)
    real = (torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)

    inputs_ref = inputs.clone().requires_grad_()
    packed_out, (h_n, c_n) = reference(
        pack_padded_sequence(inputs_ref, lengths, batch_first=True, enforce_sorted=False)
    )
    outputs_ref, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=9)
    final_ref = h_n[-1]

    inputs_scratch = inputs.clone().requires_grad_()
    outputs_scratch, finals = scratch(inputs_scratch, lengths)
    final_scratch = finals[-2]

    carried_ref = [state for layer in range(2) for state in (h_n[layer], c_n[layer])]
    torch.testing.assert_close(finals, carried_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(outputs_scratch * real, outputs_ref * real, rtol=0, atol=1e-5)

    # A loss touching every real output and the final state, with uneven weights.
    weights = torch.randn(4, 9, 7)
    head = torch.randn(4, 7)
    ((outputs_ref * real * weights).sum() + (final_ref * head).sum()).backward()
    ((outputs_scratch * real * weights).sum() + (final_scratch * head).sum()).backward()
    torch.testing.assert_close(inputs_scratch.grad, inputs_ref.grad, rtol=0, atol=1e-5)
    for param_name, param in reference.named_parameters():
        torch.testing.assert_close(
            getattr(scratch, param_name).grad, param.grad, rtol=0, atol=1e-5, msg=param_name
        )


@pytest.mark.parametrize("mode", EXACT_MODES)
def test_lstm_scratch_model_matches_lstm_model(mode: str) -> None:
    torch.manual_seed(0)
    fused = build("lstm", padding_mode=mode).eval()
    scratch = build("lstm_scratch").eval()
    assert fused.state_dict().keys() == scratch.state_dict().keys()
    scratch.load_state_dict(fused.state_dict())
    tokens, lengths = make_batch([11, 4, 1, 11], max_time=11, seed=2)
    targets = torch.tensor([1.0, 0, 0, 1])
    grads = []
    logits = []
    for model in (fused, scratch):
        out = model(tokens, lengths)
        F.binary_cross_entropy_with_logits(out, targets).backward()
        logits.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-5)
    for param_name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][param_name], grad, rtol=0, atol=1e-5, msg=param_name)


def test_bag_of_embeddings_is_the_mean_of_real_token_embeddings() -> None:
    model = build("bag_of_embeddings").eval()
    tokens, lengths = make_batch([3, 5], max_time=5)
    tokens[0, 3:] = 7  # not the pad id: only the length says where the review ends
    expected = model.classifier(
        torch.stack([model.embedding(tokens[0, :3]).mean(0), model.embedding(tokens[1]).mean(0)])
    ).squeeze(1)
    torch.testing.assert_close(model(tokens, lengths), expected)


POOLED_MODELS = list_models("*_max") + list_models("*_mean")


def test_pool_over_time_reads_only_the_real_steps() -> None:
    outputs = torch.tensor([[[1.0], [5.0], [99.0]], [[-2.0], [-4.0], [99.0]]])  # 99 = padding
    lengths = torch.tensor([2, 2])
    assert pool_over_time(outputs, lengths, "max").flatten().tolist() == [5.0, -2.0]
    assert pool_over_time(outputs, lengths, "mean").flatten().tolist() == [3.0, -3.0]


@pytest.mark.parametrize("mode", EXACT_MODES)
@pytest.mark.parametrize("name", POOLED_MODELS)
def test_pooled_gradient_reaches_every_real_step_and_no_padding(name: str, mode: str) -> None:
    # Width 32: with max pooling a step gets gradient when some unit peaks at or after it (before
    # it, for the backward direction); with 32 units over 12 steps one peaks at the last step.
    # (A residual block model pools its stream, embedding_dim wide; a classic one its hidden_dim.)
    torch.manual_seed(0)
    model = build(name, padding_mode=mode, hidden_dim=32, embedding_dim=32, dropout=0.0).eval()
    embedded: list[torch.Tensor] = []
    model.embedding.register_forward_hook(lambda _m, _i, out: embedded.append(out) or out.retain_grad())
    tokens, lengths = make_batch([12, 7], max_time=12, seed=3)
    model(tokens, lengths).sum().backward()
    per_step = embedded[0].grad.abs().sum(dim=2)  # [B, T]
    for row, length in enumerate(lengths.tolist()):
        assert (per_step[row, :length] > 0).all(), f"{name}: a real step got no gradient"
        assert (per_step[row, length:] == 0).all(), f"{name}: padding got a gradient"
