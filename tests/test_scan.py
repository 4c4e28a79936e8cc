"""The linear scan (models.scan) against the recurrence written out step by step in float64.

Issue 25's bar: forward and backward, real and complex, every method, at T = 4,096 under strong
forgetting (gates at most 0.1) and weak forgetting (1 - a in [1e-6, 1e-3]); the relative error
norm of each sequence at most 1e-5. Measured when written (B 2, width 3): at most 2.5e-6 forward
and 3.9e-6 backward, the tree method under weak forgetting the largest.
"""

from __future__ import annotations

import pytest
import torch

from models import list_models
from models.scan import AUTO_METHOD, SCAN_METHODS, linear_scan, reference_scan, resolve_method
from tests.model_contracts import build, make_batch

METHODS = [method for method in SCAN_METHODS if method != "auto"]
TOLERANCE = 1e-5


def gates(kind: str, shape: tuple[int, ...], complex_: bool, generator: torch.Generator) -> torch.Tensor:
    """float64 gates: ``strong`` magnitudes in [0, 0.1), ``weak`` 1 - 10^u for u in [-6, -3)."""
    u = torch.rand(shape, dtype=torch.float64, generator=generator)
    magnitude = u * 0.1 if kind == "strong" else 1 - 10 ** (u * 3 - 6)
    if not complex_:
        return magnitude
    phase = torch.rand(shape, dtype=torch.float64, generator=generator) * 0.2 - 0.1
    return torch.polar(magnitude, phase)


def inputs_like(a: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    real = torch.randn(a.shape, dtype=torch.float64, generator=generator)
    if not a.is_complex():
        return real
    return torch.complex(real, torch.randn(a.shape, dtype=torch.float64, generator=generator))


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest, over sequences, of ``||x - ref|| / ||ref||`` (each row of the batch)."""
    difference = (x.to(reference.dtype) - reference).flatten(1).norm(dim=1)
    return (difference / reference.flatten(1).norm(dim=1)).max().item()


def scan_with_grads(scan, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, h0=None):
    """``h`` and the gradients of ``Re(sum(h * weights))`` with respect to ``a``, ``b`` (and ``h0``)."""
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
    if h0 is not None:
        leaves.append(h0.clone().requires_grad_())
    h = scan(*leaves)
    (h * weights).real.sum().backward() if h.is_complex() else (h * weights).sum().backward()
    return h.detach(), [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("kind", ["strong", "weak"])
def test_float32_scan_matches_the_float64_recurrence_at_4096_steps(method, complex_, kind) -> None:
    generator = torch.Generator().manual_seed(0)
    a64 = gates(kind, (2, 4096, 3), complex_, generator)
    b64 = inputs_like(a64, generator)
    weights64 = inputs_like(a64, generator)
    h64, grads64 = scan_with_grads(reference_scan, a64, b64, weights64)

    single = torch.complex64 if complex_ else torch.float32
    h, grads = scan_with_grads(lambda a, b: linear_scan(a, b, method=method), a64.to(single),
                               b64.to(single), weights64.to(single))  # fmt: skip
    assert h.dtype == single
    assert relative_error(h, h64) <= TOLERANCE
    for grad, grad64 in zip(grads, grads64, strict=True):
        assert relative_error(grad, grad64) <= TOLERANCE


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_initial_state_and_its_gradient(method, complex_) -> None:
    generator = torch.Generator().manual_seed(1)
    a = gates("strong", (3, 9, 2), complex_, generator) * 5  # magnitudes up to 0.5
    b, weights, h0 = inputs_like(a, generator), inputs_like(a, generator), inputs_like(a[:, 0], generator)
    h_ref, grads_ref = scan_with_grads(reference_scan, a, b, weights, h0)
    h, grads = scan_with_grads(lambda *x: linear_scan(*x, method=method), a, b, weights, h0)
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads, grads_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_in_float64(method) -> None:
    generator = torch.Generator().manual_seed(2)
    a = gates("strong", (2, 7, 3), False, generator).requires_grad_()
    b = inputs_like(a, generator).requires_grad_()
    h0 = torch.randn(2, 3, dtype=torch.float64, generator=generator).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, method=method), (a, b, h0))


@pytest.mark.parametrize("method", METHODS)
def test_right_padding_never_reaches_a_real_step(method) -> None:
    # Two sequences of lengths 5 and 2 padded to 8 with garbage (gates at 1, the models' widest,
    # inputs at 1e6): the real steps' states, exactly, and the gradients reaching the real steps
    # are those of each sequence scanned alone (the backward tree groups the sums by position).
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(2, 8, 4, generator=generator)
    b = torch.randn(2, 8, 4, generator=generator)
    lengths = [5, 2]
    for row, length in enumerate(lengths):
        a[row, length:] = 1.0
        b[row, length:] = 1e6
    weights = torch.randn(2, 8, 4, generator=generator)
    real = (torch.arange(8).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(2)
    h, (grad_a, grad_b) = scan_with_grads(lambda a, b: linear_scan(a, b, method=method), a, b,
                                          weights * real)  # fmt: skip
    for row, length in enumerate(lengths):
        alone, (alone_a, alone_b) = scan_with_grads(
            lambda a, b: linear_scan(a, b, method=method), a[row:row + 1, :length],
            b[row:row + 1, :length], weights[row:row + 1, :length])  # fmt: skip
        torch.testing.assert_close(h[row, :length], alone[0], rtol=0, atol=0)
        torch.testing.assert_close(grad_a[row, :length], alone_a[0], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad_b[row, :length], alone_b[0], rtol=1e-6, atol=1e-6)


def test_methods_agree_and_auto_follows_the_device_table() -> None:
    generator = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 100, 5, generator=generator), torch.randn(3, 100, 5, generator=generator)
    results = {method: linear_scan(a, b, method=method) for method in SCAN_METHODS}
    torch.testing.assert_close(results["tree"], results["sequential"], rtol=1e-5, atol=1e-5)
    assert torch.equal(results["auto"], results[AUTO_METHOD["cpu"]])
    assert resolve_method("auto", torch.device("cpu")) == "sequential"
    assert resolve_method("auto", torch.device("cuda")) == "tree"
    assert resolve_method("tree", torch.device("cpu")) == "tree"
    # A single step, and trailing dimensions beyond one channel axis.
    one = linear_scan(a[:, :1], b[:, :1])
    torch.testing.assert_close(one, b[:, :1])
    grid = torch.rand(2, 6, 3, 4, generator=generator)
    torch.testing.assert_close(linear_scan(grid, grid, method="tree"), reference_scan(grid, grid))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.ones(2, 3, 4), torch.ones(2, 3, 5)), {}, "a and b must have one shape"),
        ((torch.ones(2, 0, 4), torch.ones(2, 0, 4)), {}, "time >= 1"),
        ((torch.ones(3), torch.ones(3)), {}, r"expected \[batch, time, ...\]"),
        ((torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)), {}, "must be float or complex"),
        ((torch.ones(2, 3, 4), torch.ones(2, 3, 4), torch.ones(2, 5)), {}, r"h0 must be \(2, 4\)"),
        ((torch.ones(2, 3), torch.ones(2, 3)), {"method": "blelloch"}, "unknown scan method 'blelloch'"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(args, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        linear_scan(*args, **kwargs)


def test_half_precision_and_mixed_inputs_scan_in_float32_and_keep_their_gradients() -> None:
    # Under bf16 autocast the models hand the scan bf16 products beside float32 gates: the state
    # is accumulated in float32 (bf16 rounds a slowly forgetting state away) and returned so.
    generator = torch.Generator().manual_seed(6)
    a64 = gates("weak", (2, 512, 3), False, generator)
    b64 = inputs_like(a64, generator)
    a, b = a64.float().requires_grad_(), b64.to(torch.bfloat16).requires_grad_()
    h = linear_scan(a, b)
    assert h.dtype == torch.float32
    assert relative_error(h, reference_scan(a64, b.detach().double())) <= TOLERANCE
    h.sum().backward()
    assert a.grad.dtype == torch.float32 and b.grad.dtype == torch.bfloat16
    complex_gate = torch.polar(torch.full((2, 4, 3), 0.5), torch.zeros(2, 4, 3))
    assert linear_scan(complex_gate, torch.ones(2, 4, 3)).dtype == torch.complex64
    assert linear_scan(torch.ones(2, 4, dtype=torch.float64), torch.ones(2, 4)).dtype == torch.float64


@pytest.mark.parametrize("name", [n for n in list_models(family="modern") if not n.endswith("_max")])
def test_every_modern_model_trains_under_bf16_autocast(name: str) -> None:
    # The trainer's CUDA default (bf16 autocast, float32 weights), run on the CPU's autocast.
    torch.manual_seed(0)
    model = build(name)
    tokens, lengths = make_batch([9, 4, 12], max_time=12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(tokens, lengths)
    assert torch.isfinite(logits.float()).all()
    logits.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", SCAN_METHODS)
def test_cuda_scan_matches_the_cpu_float64_recurrence(method) -> None:
    generator = torch.Generator().manual_seed(5)
    a64 = gates("weak", (4, 512, 8), True, generator)
    b64, weights64 = inputs_like(a64, generator), inputs_like(a64, generator)
    h64, grads64 = scan_with_grads(reference_scan, a64, b64, weights64)
    cuda = torch.device("cuda")
    h, grads = scan_with_grads(lambda a, b: linear_scan(a, b, method=method),
                               a64.to(cuda, torch.complex64), b64.to(cuda, torch.complex64),
                               weights64.to(cuda, torch.complex64))  # fmt: skip
    assert relative_error(h.cpu(), h64) <= TOLERANCE
    for grad, grad64 in zip(grads, grads64, strict=True):
        assert relative_error(grad.cpu(), grad64) <= TOLERANCE
