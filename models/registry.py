"""The model registry: a plain dict from name to builder, filled by ``@register_model``.

A model is one builder function with one decorator, in its own module::

    @register_model(description="Unidirectional LSTM, read at each review's last real token",
                    default=True)
    def lstm(*, vocab_size: int, pad_index: int, hidden_dim: int = 256, ...) -> nn.Module:
        ...

The builder's keyword defaults are the model's defaults; ``model_info(name).hyperparams`` exposes
them so callers (the bench layer, the CLI) can tell which overrides a model accepts. Registration
order is the order ``list_models`` returns, which is the order of rows in a report.

Mistakes fail loudly (as in lm-evaluation-harness, unlike timm which only warns on duplicates): a
duplicate name raises, an unknown name raises :class:`UnknownModelError` with close matches and the
full list, an unknown override raises naming the accepted ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = [
    "ModelInfo",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]

# Arguments every builder takes from the data pipeline; everything else is a hyperparameter.
_DATA_ARGS = ("vocab_size", "pad_index")

Builder = Callable[..., nn.Module]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Attributes:
        name: registry name, as passed to :func:`create_model`.
        description: one line, shown by the CLI and in the report.
        default: whether the model is part of the default comparison set.
        builder: ``fn(*, vocab_size, pad_index, **hyperparams) -> nn.Module``.
        hyperparams: the builder's keyword defaults (the model's defaults), by name.
    """

    name: str
    description: str
    default: bool
    builder: Builder
    # A dict is unhashable; leaving it out of the hash keeps the frozen dataclass hashable.
    hyperparams: dict[str, Any] = dataclasses.field(hash=False)


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
    name: str | None = None, *, description: str, default: bool = False
) -> Callable[[Builder], Builder]:
    """Decorator registering a model builder under ``name`` (the function's name when omitted).

    Args:
        name: registry name; defaults to ``fn.__name__``.
        description: a single line describing the model.
        default: include the model in the default comparison set.

    Raises:
        ValueError: the name is already registered, or the description is empty or multi-line.
        TypeError: the builder's signature does not follow the builder contract.
    """
    if not description or not description.strip() or "\n" in description:
        raise ValueError("a model's description must be a single non-empty line")

    def decorator(fn: Builder) -> Builder:
        model_name = name if name is not None else fn.__name__
        if model_name in _REGISTRY:
            existing = _REGISTRY[model_name].builder
            raise ValueError(
                f"model {model_name!r} is already registered "
                f"(by {existing.__module__}.{existing.__qualname__})"
            )
        _REGISTRY[model_name] = ModelInfo(
            name=model_name,
            description=description.strip(),
            default=default,
            builder=fn,
            hyperparams=_hyperparams_of(model_name, fn),
        )
        return fn

    return decorator


def _lookup(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        names = list(_REGISTRY)
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r};{hint} registered models: {', '.join(names)}"
        ) from None


def list_models(pattern: str = "*", *, default_only: bool = False) -> list[str]:
    """Registered model names matching the fnmatch glob ``pattern``, in registration order.

    Args:
        pattern: a shell-style glob, e.g. ``"*lstm*"``.
        default_only: keep only the models of the default comparison set.
    """
    return [
        name
        for name, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (info.default or not default_only)
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
    unknown = sorted(set(overrides) - set(info.hyperparams))
    if unknown:
        raise ValueError(
            f"model {name!r} does not accept hyperparameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(info.hyperparams) or '(none)'}"
        )
    return info.builder(vocab_size=vocab_size, pad_index=pad_index, **overrides)
