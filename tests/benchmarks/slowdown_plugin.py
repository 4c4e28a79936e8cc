"""Proof-only pytest plugin: make one model's forward pass twice as slow, to show the gate fails.

Never loaded by the suite itself. ``prove_gate.py`` (or a person) loads it explicitly::

    RNNBENCH_SLOWDOWN=lstm python -m pytest tests/benchmarks -p tests.benchmarks.slowdown_plugin

Every instance that ``create_model("lstm", ...)`` builds then computes its forward pass twice and
returns the second result: exactly 2x the forward work, identical outputs and gradients.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from torch import nn

from models import registry

ENV = "RNNBENCH_SLOWDOWN"


def _doubled_forward(model: nn.Module) -> None:
    forward = model.forward

    def twice(*args: Any, **kwargs: Any) -> Any:
        forward(*args, **kwargs)
        return forward(*args, **kwargs)

    model.forward = twice  # an instance attribute: nn.Module.__call__ dispatches to it


def pytest_configure(config: pytest.Config) -> None:
    """Wrap the registry's builder of the model named by $RNNBENCH_SLOWDOWN."""
    name = os.environ.get(ENV)
    if not name:
        return
    info = registry._REGISTRY[name]
    build = info.builder

    def slow_builder(**kwargs: Any) -> nn.Module:
        model = build(**kwargs)
        _doubled_forward(model)
        return model

    registry._REGISTRY[name] = dataclasses.replace(info, builder=slow_builder)
