"""One scan for the linear recurrences: ``h_t = a_t * h_{t-1} + b_t``, element by element.

minGRU, minLSTM, the selective state-space block, LRU and RG-LRU all reduce their recurrence to
this form (real gates for minGRU, minLSTM, Mamba and RG-LRU; complex ones for LRU), so one function serves them all:
:func:`linear_scan`. It is exact (no approximation of any kind: the same products and sums as the
sequential recurrence, in an order that keeps float32 safe) and never divides, so no gate in
``(0, 1]``, however small, can overflow it. It is causal: a right-padded batch's padding comes
after every real step and cannot reach one.

Two ways to compute it, chosen by device (``method="auto"``) or by name, both under one
``torch.autograd.Function`` whose backward is the same scan run backwards in time:

``sequential``
    A loop over time, one fused ``addcmul`` per step into a preallocated time-major buffer. On a
    CPU this is the fastest exact form: the recurrence is memory-bound, each step touches
    ``B * H`` floats once, and the loop's T small kernels cost microseconds each. The log-space
    form of the minGRU paper (cumsum + ``logcumsumexp``) took longer than a whole ``nn.GRU``
    layer here (issue 25's calibration); a chunked form that divides by running products of
    gates overflows float32 when the gates are small.
``tree``
    Hillis-Steele's log-depth scan in real space: ``ceil(log2 T)`` rounds, round ``k`` combining
    each step with the one ``2^k`` before it by ``(a, b) <- (a * a', a * b' + b)``. Only products
    of gates appear (an underflow to zero is the exact answer rounded), and each round is a few
    large kernels: the form for a GPU, where T sequential kernel launches would dominate. It does
    ``O(T log T)`` work against the loop's ``O(T)``.

The gradients (for complex tensors, PyTorch's conjugate Wirtinger convention) follow from
``h_t = a_t h_{t-1} + b_t``: with ``g_t = dL/dh_t`` accumulated backwards,
``g_t = grad_t + conj(a_{t+1}) g_{t+1}``, then ``dL/db_t = g_t``, ``dL/da_t = g_t conj(h_{t-1})``
and ``dL/dh0 = conj(a_0) g_0``. The first line is itself a linear scan, run by the same method.

Reference read: Blelloch (1990), "Prefix sums and their applications" (a linear recurrence as a
scan over the operator ``(a, b) o (a', b') = (a a', a' b + b')``); Martin & Cundy (2018),
"Parallelizing linear recurrent neural nets over sequence length". No code copied.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["SCAN_METHODS", "linear_scan", "reference_scan", "resolve_method", "scan_dtype"]

#: How the scan may be computed; ``"auto"`` picks by device (:data:`AUTO_METHOD`).
SCAN_METHODS = ("auto", "sequential", "tree")
#: The method ``"auto"`` means per device type: the loop on a CPU, log depth on a GPU.
AUTO_METHOD = {"cpu": "sequential", "cuda": "tree"}


def resolve_method(method: str, device: torch.device) -> str:
    """The concrete method for ``method`` on ``device`` (``"auto"`` read from :data:`AUTO_METHOD`).

    Raises:
        ValueError: ``method`` is not one of :data:`SCAN_METHODS`.
    """
    if method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {method!r}; expected one of {', '.join(SCAN_METHODS)}")
    if method == "auto":
        return AUTO_METHOD.get(device.type, "tree")
    return method


def _sequential(a: Tensor, b: Tensor) -> Tensor:
    """The scan along dim 0 of time-major ``a, b [T, ...]`` (``h_{-1} = 0``), one step at a time."""
    h = torch.empty_like(b)
    # unbind once: indexing h[t] in the loop costs more than the step's arithmetic at small B * H.
    hs, gates, inputs = h.unbind(0), a.unbind(0), b.unbind(0)
    hs[0].copy_(inputs[0])
    for t in range(1, len(hs)):
        torch.addcmul(inputs[t], gates[t], hs[t - 1], out=hs[t])
    return h


def _sequential_reverse(a: Tensor, grad: Tensor) -> Tensor:
    """``g_t = grad_t + conj(a_{t+1}) g_{t+1}`` along dim 0, one step at a time, last step first."""
    g = torch.empty_like(grad)
    gs, gates, inputs = g.unbind(0), a.conj().resolve_conj().unbind(0), grad.unbind(0)
    last = len(gs) - 1
    gs[last].copy_(inputs[last])
    for t in range(last - 1, -1, -1):
        torch.addcmul(inputs[t], gates[t + 1], gs[t + 1], out=gs[t])
    return g


def _tree(a: Tensor, b: Tensor) -> Tensor:
    """The scan along dim 0 of time-major ``a, b [T, ...]`` (``h_{-1} = 0``) in log depth."""
    steps = a.shape[0]
    offset = 1
    while offset < steps:
        # Each step absorbs the partial result `offset` steps before it; the first `offset`
        # steps are already complete. Out of place: a round reads the previous round's values.
        b = torch.cat([b[:offset], torch.addcmul(b[offset:], a[offset:], b[:-offset])])
        a = torch.cat([a[:offset], a[offset:] * a[:-offset]])
        offset *= 2
    return b


_METHODS = {"sequential": _sequential, "tree": _tree}


def _scan_time_major(a: Tensor, b: Tensor, method: str) -> Tensor:
    return _METHODS[method](a, b)


def _reverse_scan(a: Tensor, grad: Tensor, method: str) -> Tensor:
    """``g_t = grad_t + conj(a_{t+1}) g_{t+1}`` for time-major ``a, grad [T, ...]``: the forward scan
    run on time reversed, with each step's gate taken from the step after it."""
    if method == "sequential":
        return _sequential_reverse(a, grad)
    a_next = torch.cat([a[1:], torch.zeros_like(a[:1])]).conj()
    return _scan_time_major(a_next.flip(0), grad.flip(0), method).flip(0)


class _LinearScan(torch.autograd.Function):
    """``h = scan(a, b)`` along dim 0 of time-major tensors, with the initial state folded into
    ``b_0``; the backward is the reverse scan (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor | None, method: str) -> Tensor:
        b_first = b if h0 is None else torch.cat([torch.addcmul(b[:1], a[:1], h0.unsqueeze(0)), b[1:]])
        h = _scan_time_major(a.contiguous(), b_first.contiguous(), method)
        ctx.method = method
        ctx.has_h0 = h0 is not None
        ctx.save_for_backward(a, h, h0 if h0 is not None else h.new_zeros(h.shape[1:]))
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        a, h, h0 = ctx.saved_tensors
        g = _reverse_scan(a, grad.contiguous(), ctx.method)
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        grad_a = g * h_prev.conj() if ctx.needs_input_grad[0] else None
        grad_h0 = a[0].conj() * g[0] if ctx.has_h0 and ctx.needs_input_grad[2] else None
        return grad_a, g, grad_h0, None


def _check(a: Tensor, b: Tensor, h0: Tensor | None) -> None:
    if a.shape != b.shape:
        raise ValueError(f"linear_scan: a and b must have one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.dim() < 2 or a.shape[1] == 0:
        raise ValueError(f"linear_scan: expected [batch, time, ...] with time >= 1, got "
                         f"{tuple(a.shape)}")
    for tensor in (a, b) if h0 is None else (a, b, h0):
        if not (tensor.is_floating_point() or tensor.is_complex()):
            raise ValueError(f"linear_scan: a, b and h0 must be float or complex, got {tensor.dtype}")
    if h0 is not None and h0.shape != a.shape[:1] + a.shape[2:]:
        raise ValueError(f"linear_scan: h0 must be {tuple(a.shape[:1] + a.shape[2:])}, "
                         f"got {tuple(h0.shape)}")


def scan_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the scan runs in: the inputs' common one, at least float32 (complex64 for
    complex inputs). Half-precision inputs (bf16 autocast on a GPU) are promoted: a recurrence
    accumulated in bf16 loses its state to rounding within a few hundred steps."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, *, method: str = "auto") -> Tensor:
    """States ``h [B, T, ...]`` of ``h_t = a_t * h_{t-1} + b_t`` with ``h_{-1} = h0`` (zero if None).

    Args:
        a: the gates, ``[B, T, ...]``, real or complex (any magnitude; the models keep it in
            ``(0, 1]``, where the scan is numerically safe in float32).
        b: the inputs, the same shape as ``a``.
        h0: the state before the first step, ``[B, ...]``, or None for zeros.
        method: ``"sequential"``, ``"tree"`` or ``"auto"`` (:data:`AUTO_METHOD`).

    The scan and ``h`` are in :func:`scan_dtype` of the inputs (float32 at least, whatever
    autocast made of them); gradients flow back to each input in its own dtype.

    Raises:
        ValueError: shapes that do not fit, an input that is not float or complex, or an unknown
            method.
    """
    _check(a, b, h0)
    dtype = scan_dtype(a, b) if h0 is None else scan_dtype(a, b, h0)
    a, b = a.to(dtype), b.to(dtype)
    h0 = h0.to(dtype) if h0 is not None else None
    resolved = resolve_method(method, a.device)
    h = _LinearScan.apply(a.transpose(0, 1), b.transpose(0, 1), h0, resolved)
    return h.transpose(0, 1)


def reference_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The recurrence written out, step by step, through autograd's own operations: the
    reference the tests hold :func:`linear_scan` to (run it in float64)."""
    h = h0 if h0 is not None else torch.zeros_like(b[:, 0])
    states = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)
