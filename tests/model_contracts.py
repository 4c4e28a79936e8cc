"""The contract every registered model must keep, as functions of a registry name.

``tests/test_models.py`` applies them to every name ``list_models()`` returns (so a new module is
checked with no test edit), and ``tests/test_models_registry.py`` applies them to throwaway models
to show they pass a good model and catch a broken one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models import create_model, model_info

VOCAB_SIZE = 50
PAD_INDEX = 1
SMALL = {"embedding_dim": 8, "hidden_dim": 8, "num_layers": 2, "dropout": 0.5}


def build(name: str, **extra: object) -> nn.Module:
    """A small instance of ``name``, passing only the hyperparameters it accepts."""
    accepted = model_info(name).hyperparams
    kwargs = {key: value for key, value in {**SMALL, **extra}.items() if key in accepted}
    return create_model(name, vocab_size=VOCAB_SIZE, pad_index=PAD_INDEX, **kwargs)


def small_hyperparams(name: str) -> dict[str, object]:
    """The hyperparameters :func:`build` passes to ``name``."""
    accepted = model_info(name).hyperparams
    return {key: value for key, value in SMALL.items() if key in accepted}


def make_batch(lengths: list[int], max_time: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random token ids (never the pad id inside a review) and their lengths."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, VOCAB_SIZE, (len(lengths), max_time), generator=generator)
    lengths_tensor = torch.tensor(lengths)
    tokens[torch.arange(max_time).unsqueeze(0) >= lengths_tensor.unsqueeze(1)] = PAD_INDEX
    return tokens, lengths_tensor


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_output_and_gradients(model: nn.Module) -> None:
    """Logits ``[B]`` float32 and finite; a gradient-trained model's parameters all get a nonzero,
    finite gradient (callers skip the gradient part for a self-fitting model)."""
    model.train()
    tokens, lengths = make_batch([7, 3, 12, 1, 12], max_time=12)
    logits = model(tokens, lengths)
    assert logits.shape == (5,)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 0, 1, 0, 1])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} received no gradient"
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, f"{param_name} has an all-zero gradient"


def check_padding_invariance(model: nn.Module, device: torch.device | None = None) -> None:
    """A review's logit does not change with the padding around it (alone, batched, wider).

    ``device``: where the model lives (tokens go there; lengths stay on the CPU, as batches do).
    """
    model.eval()
    lengths = [37, 250, 5, 1, 180, 249]
    tokens, lengths_tensor = make_batch(lengths, max_time=250)
    tokens = tokens.to(device or torch.device("cpu"))
    with torch.no_grad():
        batched = model(tokens, lengths_tensor)
        for row, length in enumerate(lengths):
            alone = model(tokens[row : row + 1, :length], torch.tensor([length]))
            torch.testing.assert_close(alone[0], batched[row], rtol=0, atol=1e-5)
        # Extra padding past the longest review (trimmed by the model) changes nothing either.
        wider = torch.cat([tokens, torch.full_like(tokens[:, :30], PAD_INDEX)], dim=1)
        torch.testing.assert_close(model(wider, lengths_tensor), batched, rtol=0, atol=1e-5)


def check_declared_param_count(name: str) -> None:
    """A gradient-trained model declares its size, and the declaration matches the module's at
    small sizes and at its defaults."""
    info = model_info(name)
    assert info.param_count is not None, f"{name} declares no param_count"
    assert info.declared_param_count(VOCAB_SIZE, **small_hyperparams(name)) == trainable_params(build(name))
    default = create_model(name, vocab_size=1_000, pad_index=PAD_INDEX)
    assert info.declared_param_count(1_000) == trainable_params(default)


def carried_floats(model: nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> list[int]:
    """Floats ``model.final_state`` holds per review (a complex number counts two), per review."""
    states = model.final_state(tokens, lengths)
    for state in states:
        assert state.shape[0] == len(lengths), f"a state of shape {tuple(state.shape)} is not [B, ...]"
    return [sum(s[row].numel() * (2 if s.is_complex() else 1) for s in states)
            for row in range(len(lengths))]  # fmt: skip


def check_declared_state_size(name: str) -> None:
    """A recurrent model declares the floats it carries from step to step, and its
    ``final_state(tokens, lengths)`` holds that many per review, at small sizes and at its
    defaults; a review's state does not depend on the batch's padding."""
    info = model_info(name)
    assert info.state_size is not None, f"recurrent model {name} declares no state_size"
    model = build(name).eval()
    lengths = [7, 3, 12, 1]
    tokens, lengths_tensor = make_batch(lengths, max_time=12)
    with torch.no_grad():
        sizes = carried_floats(model, tokens, lengths_tensor)
        assert sizes == [info.declared_state_size(**small_hyperparams(name))] * len(lengths)
        batched = model.final_state(tokens, lengths_tensor)
        alone = model.final_state(tokens[1:2, :3], torch.tensor([3]))
        torch.testing.assert_close([s[1:2] for s in batched], alone, rtol=0, atol=1e-5)
        default = create_model(name, vocab_size=VOCAB_SIZE, pad_index=PAD_INDEX).eval()
        assert carried_floats(default, tokens, lengths_tensor)[0] == info.declared_state_size()
