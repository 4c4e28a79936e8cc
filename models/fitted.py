"""The self-fitting protocol, for models that are not trained by gradient steps.

A model registered with ``training="self_fit"`` implements :class:`SelfFitting`. It still follows
the inference contract of every model (``model(tokens, lengths) -> logits``, a ``state_dict`` of
plain tensors), so evaluation, latency, checkpoints and prediction treat it like any other. Only
learning differs: instead of going through the trainer's epochs, the model fits itself on the
training split in one call and chooses its own regularisation on the validation split. The splits
are duck-typed (:class:`SplitLike`), so ``models`` keeps knowing nothing of the data pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["SelfFitReport", "SelfFitting", "SplitLike"]


class SplitLike(Protocol):
    """An encoded split: review ``i`` is ``tokens[offsets[i]:offsets[i + 1]]`` (token ids)."""

    tokens: Tensor  # int64, all reviews back to back
    offsets: Tensor  # int64 [N + 1]
    labels: Tensor  # int64 [N], 1 positive, 0 negative

    @property
    def lengths(self) -> Tensor:
        """int64 [N]: each review's length, >= 1."""
        ...


@dataclass
class SelfFitReport:
    """What a self-fitting model reports about its fit, in the trainer's terms.

    Attributes:
        history: one entry, as the trainer writes per epoch (``epoch`` 1, train/val loss and
            accuracy of the selected fit, ``epoch_time_s`` the selected fit's time).
        timed_s: seconds of the work that produced the kept model from the training split
            (featurising it and the selected fit), the basis of training throughput.
        chosen: the hyperparameters chosen on validation, by name (e.g. ``{"C": 4.0}``).
    """

    history: list[dict[str, float]]
    timed_s: float
    chosen: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class SelfFitting(Protocol):
    """A model that learns by ``fit(train, val, seed=...)`` rather than by the trainer."""

    def fit(self, train: SplitLike, val: SplitLike, *, seed: int) -> SelfFitReport:
        """Fit on ``train``, choose hyperparameters on ``val`` (never on test); keep the choice."""
        ...
