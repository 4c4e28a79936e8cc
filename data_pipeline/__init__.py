"""The IMDb data pipeline: locate/download/verify the archive, read it, tokenize (torchtext's
``basic_english``), build the vocabulary on train only, encode, cache, and batch.

Typical use::

    data = load_imdb(DataConfig(vocab_size=10_000, max_len=250))
    for batch in make_batches(data.train, 64, pad_index=data.pad_index, shuffle=True, seed=epoch):
        logits = model(batch.tokens, batch.lengths)

``python -m data_pipeline --data PATH`` prints what was loaded and how long each stage took.

The task registry (:mod:`data_pipeline.tasks`) names what a run trains on: IMDb is its first task
(``task_info("imdb").loader`` wraps :func:`load_imdb`), and another task is one ``register_task``.
"""

from . import memory  # registers the generated memory task  # noqa: F401
from .batching import Batch, make_batches
from .config import PIPELINE_VERSION, DataConfig
from .encode import EncodedSplit
from .errors import DataError
from .pipeline import ImdbData, load_imdb
from .source import Source, default_cache_dir, resolve_source
from .synthetic import make_synthetic_archive
from .tasks import (
    DEFAULT_TASK,
    TaskData,
    TaskInfo,
    UnknownTaskError,
    ensure_task,
    list_tasks,
    register_task,
    task_info,
)
from .tokenizer import tokenize, tokenize_reference
from .vocab import Vocab, build_vocab

__all__ = [
    "DEFAULT_TASK",
    "TaskData",
    "TaskInfo",
    "UnknownTaskError",
    "ensure_task",
    "list_tasks",
    "register_task",
    "task_info",
    "PIPELINE_VERSION",
    "Batch",
    "DataConfig",
    "DataError",
    "EncodedSplit",
    "ImdbData",
    "Source",
    "Vocab",
    "build_vocab",
    "default_cache_dir",
    "load_imdb",
    "make_batches",
    "make_synthetic_archive",
    "resolve_source",
    "tokenize",
    "tokenize_reference",
]
