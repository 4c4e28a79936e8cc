"""Model registry and architectures: every model maps ``(tokens, lengths)`` to logits ``[B]``.

Most models learn through the shared trainer; a model registered with ``training="self_fit"``
implements :class:`SelfFitting` (the TF-IDF floor) and fits itself instead, with the same
inference contract. What each model is (recurrent, how it learns, its size and FLOPs) is declared
at registration and read through :func:`model_info`.

Importing this package registers every model, in the order rows appear in a report::

    >>> import models
    >>> models.list_models(default_only=True)
    ['rnn', 'lstm', 'gru', 'bilstm', 'bag_of_embeddings', 'tfidf_logreg']
    >>> model = models.create_model("lstm", vocab_size=10_000, pad_index=1, hidden_dim=128)
"""

from models.base import TextClassifier, check_batch
from models.fitted import SelfFitReport, SelfFitting, SplitLike
from models.recurrent import PADDING_MODES, FusedRecurrentEncoder, RecurrentClassifier
from models.registry import (
    FAMILIES,
    TRAINING_KINDS,
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)

# Importing a module registers its models. Registration order is report order (within each
# family): the built-in models first, in a fixed order; then any other module of this package,
# alphabetically (so a new architecture needs only its own module); the linear floor last.
_FIRST = ("rnn", "lstm_scratch", "bag_of_embeddings", "matched", "pooled", "min_rnn", "mamba",
          "lru", "hawk")
_LAST = ("tfidf",)


def _import_models() -> None:
    import importlib
    import pkgutil

    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    middle = [name for name in found if name not in _FIRST + _LAST]
    for name in (*_FIRST, *middle, *_LAST):
        importlib.import_module(f"{__name__}.{name}")


_import_models()

__all__ = [
    "FAMILIES",
    "PADDING_MODES",
    "TRAINING_KINDS",
    "FusedRecurrentEncoder",
    "ModelInfo",
    "RecurrentClassifier",
    "SelfFitReport",
    "SelfFitting",
    "SplitLike",
    "TextClassifier",
    "UnknownModelError",
    "check_batch",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
