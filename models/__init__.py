"""Model registry and architectures: every model maps ``(tokens, lengths)`` to logits ``[B]``.

Most models learn through the shared trainer; a model that implements :class:`FitsInOneGo`
(the TF-IDF floor) fits itself instead and follows the same inference contract.

Importing this package registers every model, in the order rows appear in a report::

    >>> import models
    >>> models.list_models(default_only=True)
    ['rnn', 'lstm', 'gru', 'bilstm', 'bag_of_embeddings', 'tfidf_logreg']
    >>> model = models.create_model("lstm", vocab_size=10_000, pad_index=1, hidden_dim=128)
"""

from models.base import TextClassifier, check_batch
from models.fitted import FitsInOneGo, OneGoFit, SplitLike
from models.recurrent import PADDING_MODES, FusedRecurrentEncoder, RecurrentClassifier
from models.registry import (
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)

# Import order is registration order, which is report order; keep the sorter away from it.
# isort: off
from models import rnn  # noqa: F401  (registers rnn, lstm, gru, bilstm, bigru)
from models import lstm_scratch  # noqa: F401
from models import bag_of_embeddings  # noqa: F401
from models import matched  # noqa: F401  (rnn_matched, gru_matched, bilstm_matched, bigru_matched)
from models import tfidf  # noqa: F401  (last: the linear floor is the last row)
# isort: on

__all__ = [
    "PADDING_MODES",
    "FitsInOneGo",
    "FusedRecurrentEncoder",
    "ModelInfo",
    "OneGoFit",
    "RecurrentClassifier",
    "SplitLike",
    "TextClassifier",
    "UnknownModelError",
    "check_batch",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
