"""The model registry: a plain dict from name to builder, filled by ``@register_model``.

A model is one builder function with one decorator, in its own module::

    @register_model(description="Bag of embeddings", recurrent=False,
                    param_count=lambda vocab_size, hp: ..., flops_per_token=lambda hp: ...)
    def bag(*, vocab_size: int, pad_index: int, embedding_dim: int = 100) -> nn.Module:
        ...

The builder's keyword defaults are the model's defaults; ``model_info(name).hyperparams`` exposes
them so callers (the bench layer, the CLI) can tell which overrides a model accepts. Registration
order is the order ``list_models`` returns, which is the order of rows in a report.

What a model *is* is declared here, beside its builder, and read from here; nothing downstream
guesses it from the module's attributes (an attribute someone forgets gives a wrong answer, a
missing declaration gives "not declared"):

- ``recurrent``: whether the model has a recurrence (required: there is no safe default);
- ``training``: ``"gradient"`` (the shared trainer's epochs) or ``"self_fit"`` (the model fits
  itself in one call, :class:`models.fitted.SelfFitting`);
- ``param_count(vocab_size, hyperparams)``: its trainable parameters, for a gradient-trained model
  (the contract tests hold it equal to the built module's);
- ``flops_per_token(hyperparams)``: forward FLOPs per real token; without it a run reports no
  efficiency rather than a wrong one;
- ``state_size(hyperparams)``: the floats a recurrent model carries from one step to the next per
  sequence (Zoology's axis for recall: what a fixed-size state can hold), tested against the
  tensors the model returns as its final state;
- ``family``: one of :data:`FAMILIES` (required: the report groups rows by it and
  ``--archs family:NAME`` selects one).

Mistakes fail loudly (as in lm-evaluation-harness, unlike timm which only warns on duplicates): a
duplicate name raises, an unknown name raises :class:`UnknownModelError` with close matches and the
full list, an unknown override raises naming the accepted ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

__all__ = [
    "FAMILIES",
    "TRAINING_KINDS",
    "ModelInfo",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]

# Arguments every builder takes from the data pipeline; everything else is a hyperparameter.
_DATA_ARGS = ("vocab_size", "pad_index")

#: How a model learns: through the shared trainer's gradient steps, or by fitting itself.
TRAINING_KINDS = ("gradient", "self_fit")

#: What a model is, for grouping: the notebook's recurrences and their variants, the
#: parallel-trainable recurrences of 2023-2024 (minGRU, Mamba, LRU, Hawk...), and the baselines
#: without recurrence a recurrent model must beat.
FAMILIES = ("classic", "modern", "floor")

Builder = Callable[..., nn.Module]
#: ``fn(hyperparams) -> forward FLOPs per real token``, hyperparams being the resolved builder
#: arguments (defaults updated by overrides).
FlopsPerToken = Callable[[Mapping[str, Any]], float]
#: ``fn(vocab_size, hyperparams) -> trainable parameters``.
ParamCount = Callable[[int, Mapping[str, Any]], int]
#: ``fn(hyperparams) -> floats carried from one step to the next, per sequence``.
StateSize = Callable[[Mapping[str, Any]], int]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Attributes:
        name: registry name, as passed to :func:`create_model`.
        description: one line, shown by the CLI and in the report.
        default: whether the model is part of the default comparison set.
        builder: ``fn(*, vocab_size, pad_index, **hyperparams) -> nn.Module``.
        hyperparams: the builder's keyword defaults (the model's defaults), by name.
        recurrent: whether the model has a recurrence.
        family: one of :data:`FAMILIES`.
        training: one of :data:`TRAINING_KINDS`.
        param_count: declared trainable parameters, or None (not declared).
        flops_per_token: declared forward FLOPs per real token, or None (not declared).
        state_size: declared floats carried per sequence from step to step, or None (not
            declared; a model without recurrence carries none).
    """

    name: str
    description: str
    default: bool
    builder: Builder
    # A dict is unhashable; leaving it out of the hash keeps the frozen dataclass hashable.
    hyperparams: dict[str, Any] = dataclasses.field(hash=False)
    recurrent: bool
    training: str
    family: str
    param_count: ParamCount | None = None
    flops_per_token: FlopsPerToken | None = None
    state_size: StateSize | None = None

    def resolve(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The builder's hyperparameters: its defaults updated by ``overrides``.

        Raises:
            ValueError: an override is not one of the model's hyperparameters.
        """
        unknown = sorted(set(overrides) - set(self.hyperparams))
        if unknown:
            raise ValueError(
                f"model {self.name!r} does not accept hyperparameter(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(self.hyperparams) or '(none)'}"
            )
        return {**self.hyperparams, **overrides}

    def declared_flops_per_token(self, **overrides: Any) -> float | None:
        """Forward FLOPs per real token at these hyperparameters; None if not declared."""
        if self.flops_per_token is None:
            return None
        return float(self.flops_per_token(self.resolve(overrides)))

    def declared_state_size(self, **overrides: Any) -> int | None:
        """Floats carried per sequence from one step to the next; None if not declared."""
        if self.state_size is None:
            return None
        return int(self.state_size(self.resolve(overrides)))

    def declared_param_count(self, vocab_size: int, **overrides: Any) -> int | None:
        """Trainable parameters at this vocabulary and these hyperparameters; None if not declared."""
        if self.param_count is None:
            return None
        return int(self.param_count(vocab_size, self.resolve(overrides)))


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered."""


_REGISTRY: dict[str, ModelInfo] = {}


def _hyperparams_of(name: str, fn: Builder) -> dict[str, Any]:
    """Read the hyperparameters (keyword defaults) from a builder's signature, checking its shape.

    Every hyperparameter needs a default and ``**kwargs`` is refused: the registry must be able to
    tell a caller exactly which overrides a model accepts.
    """
    params = inspect.signature(fn).parameters
    missing = [arg for arg in _DATA_ARGS if arg not in params]
    if missing:
        raise TypeError(f"builder for model {name!r} must accept keyword arguments {missing}")
    hyperparams: dict[str, Any] = {}
    for param in params.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise TypeError(
                f"builder for model {name!r} takes **{param.name}; declare each hyperparameter "
                "with its default so overrides can be checked"
            )
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"builder for model {name!r} takes *{param.name}; use keywords only")
        if param.name in _DATA_ARGS:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(
                f"hyperparameter {param.name!r} of model {name!r} has no default; "
                "the builder's defaults are the model's defaults"
            )
        hyperparams[param.name] = param.default
    return hyperparams


def register_model(
    name: str | None = None,
    *,
    description: str,
    recurrent: bool,
    family: str,
    training: str = "gradient",
    param_count: ParamCount | None = None,
    flops_per_token: FlopsPerToken | None = None,
    state_size: StateSize | None = None,
    default: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator registering a model builder under ``name`` (the function's name when omitted).

    Args:
        name: registry name; defaults to ``fn.__name__``.
        description: a single line describing the model.
        recurrent: whether the model has a recurrence.
        family: one of :data:`FAMILIES`.
        training: ``"gradient"`` (the shared trainer) or ``"self_fit"`` (the model implements
            :class:`models.fitted.SelfFitting` and fits itself).
        param_count: ``fn(vocab_size, hyperparams) -> int``, the trainable parameters of a
            gradient-trained model (a self-fitting model's size is known only after fitting).
        flops_per_token: ``fn(hyperparams) -> float``, forward FLOPs per real token.
        state_size: ``fn(hyperparams) -> int``, floats carried per sequence from step to step
            (a recurrent model's; the contract tests hold it equal to its final state's size).
        default: include the model in the default comparison set.

    Raises:
        ValueError: the name is already registered, the description is empty or multi-line,
            ``training`` or ``family`` is not a known kind, or a declared cost is not a positive
            number at the builder's defaults.
        TypeError: the builder's signature does not follow the builder contract, or ``recurrent``
            is not a bool.
    """
    if not description or not description.strip() or "\n" in description:
        raise ValueError("a model's description must be a single non-empty line")
    if not isinstance(recurrent, bool):
        raise TypeError(f"recurrent must be True or False, got {recurrent!r}")
    if training not in TRAINING_KINDS:
        raise ValueError(f"training must be one of {', '.join(TRAINING_KINDS)}, got {training!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")

    def decorator(fn: Builder) -> Builder:
        model_name = name if name is not None else fn.__name__
        if model_name in _REGISTRY:
            existing = _REGISTRY[model_name].builder
            raise ValueError(
                f"model {model_name!r} is already registered "
                f"(by {existing.__module__}.{existing.__qualname__})"
            )
        info = ModelInfo(
            name=model_name,
            description=description.strip(),
            default=default,
            builder=fn,
            hyperparams=_hyperparams_of(model_name, fn),
            recurrent=recurrent,
            training=training,
            family=family,
            param_count=param_count,
            flops_per_token=flops_per_token,
            state_size=state_size,
        )
        _check_declared_costs(info)
        _REGISTRY[model_name] = info
        return fn

    return decorator


def _check_declared_costs(info: ModelInfo) -> None:
    """A declared cost must evaluate to a positive number at the builder's defaults."""
    for what, value in (
        ("flops_per_token", info.declared_flops_per_token()),
        ("state_size", info.declared_state_size()),
        # Any vocabulary will do: the check is that the function runs and gives a count.
        ("param_count", info.declared_param_count(vocab_size=2)),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"model {info.name!r} declares {what} {value!r} at its defaults; it must be positive"
            )


def _lookup(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        names = list(_REGISTRY)
        # A name in the wrong case ("GRU") is the likeliest slip: offer it first.
        same = [n for n in names if n.lower() == name.lower()]
        close = same or difflib.get_close_matches(name.lower(), names, n=3)
        hint = f" did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r};{hint} registered models: {', '.join(names)}"
        ) from None


def list_models(
    pattern: str = "*", *, default_only: bool = False, family: str | None = None
) -> list[str]:
    """Registered model names matching the fnmatch glob ``pattern``, in registration order.

    Args:
        pattern: a shell-style glob, e.g. ``"*lstm*"``.
        default_only: keep only the models of the default comparison set.
        family: keep only the models of this family (one of :data:`FAMILIES`).

    Raises:
        ValueError: ``family`` is not one of :data:`FAMILIES`.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return [
        name
        for name, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (info.default or not default_only)
        and (family is None or info.family == family)
    ]


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; its ``hyperparams`` is a copy, safe to modify."""
    info = _lookup(name)
    return dataclasses.replace(info, hyperparams=dict(info.hyperparams))


def create_model(name: str, *, vocab_size: int, pad_index: int, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with its defaults updated by ``overrides``.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ValueError: an override is not one of the model's hyperparameters.
    """
    info = _lookup(name)
    return info.builder(vocab_size=vocab_size, pad_index=pad_index, **info.resolve(overrides))
