"""Proof-only pytest plugin: slow the candidate down on purpose, to show the gate fails.

Never loaded by the suite itself. ``prove_gate.py`` (or a person) loads it into the candidate's
passes only::

    RNNBENCH_SLOWDOWN=lstm python -m bench.gate run --candidate-plugin tests.benchmarks.slowdown_plugin
    RNNBENCH_STEP_DELAY_MS=4 python -m bench.gate run --candidate-plugin tests.benchmarks.slowdown_plugin

``RNNBENCH_SLOWDOWN=<model>``: every instance ``create_model(<model>, ...)`` builds computes its
forward pass twice and returns the second result: exactly 2x the forward work, identical outputs
and gradients.

``RNNBENCH_STEP_DELAY_MS=<ms>``: every ``Trainer.train_step`` first spins for that much process
CPU time (the suite's clock on the CPU counts CPU time, so a sleep would not show).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import pytest
from torch import nn

from bench.run.trainer import Trainer
from models import registry

ENV = "RNNBENCH_SLOWDOWN"
STEP_DELAY_ENV = "RNNBENCH_STEP_DELAY_MS"


def _doubled_forward(model: nn.Module) -> None:
    forward = model.forward

    def twice(*args: Any, **kwargs: Any) -> Any:
        forward(*args, **kwargs)
        return forward(*args, **kwargs)

    model.forward = twice  # an instance attribute: nn.Module.__call__ dispatches to it


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def pytest_configure(config: pytest.Config) -> None:
    """Wrap the registry's builder of $RNNBENCH_SLOWDOWN; delay each step by $RNNBENCH_STEP_DELAY_MS."""
    name = os.environ.get(ENV)
    if name:
        info = registry._REGISTRY[name]
        build = info.builder

        def slow_builder(**kwargs: Any) -> nn.Module:
            model = build(**kwargs)
            _doubled_forward(model)
            return model

        registry._REGISTRY[name] = dataclasses.replace(info, builder=slow_builder)
    delay_ms = float(os.environ.get(STEP_DELAY_ENV) or 0)
    if delay_ms > 0:
        train_step = Trainer.train_step

        def delayed_step(self: Trainer, *args: Any, **kwargs: Any) -> Any:
            _spin(delay_ms / 1e3)
            return train_step(self, *args, **kwargs)

        Trainer.train_step = delayed_step  # type: ignore[method-assign]
