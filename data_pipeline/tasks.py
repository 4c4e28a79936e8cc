"""The task registry: a task is one registration, shaped like the model registry.

A task names its own frozen settings dataclass (IMDb's is :class:`DataConfig`), a loader turning
those settings into encoded splits and a vocabulary, the prose the report shows (description,
citation) and the facts the report and the tools need (whether inputs are raw text, whether one
example's latency means anything). ``register_task`` adds one; ``list_tasks`` and ``task_info``
are the whole public surface. IMDb is registered here, first.

A task registered outside this package (a test's, say) is found again in a fresh process (a run's
child, a cluster worker) by importing the module that registered it: ``TaskInfo.module``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DataConfig
from .encode import EncodedSplit
from .vocab import Vocab

DEFAULT_TASK = "imdb"


class UnknownTaskError(KeyError):
    """A task name that is not registered; the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class TaskData:
    """What a task's loader returns: the encoded splits, the vocabulary, and what the run record
    says about where they came from (``details``: JSON-ready, e.g. source path and checksum)."""

    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    vocab: Vocab
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def pad_index(self) -> int:
        """The id of ``<pad>``."""
        return self.vocab.pad_index


#: ``loader(settings, data_path, progress=...)``: the task's splits under ``settings``.
TaskLoader = Callable[..., TaskData]


@dataclass(frozen=True)
class TaskInfo:
    """One registered task.

    Attributes:
        name: the registry name (``--task NAME``).
        settings: the frozen dataclass of the task's settings (the run config's ``data`` section).
        loader: ``loader(settings, data_path, progress=bool) -> TaskData``.
        description: what the task is, for the report ("IMDb large movie review dataset").
        title: the task's short name in the report's titles ("IMDb"; default: its name).
        citation: where the data comes from, for the report ("" when generated here).
        example: what one example is called in prose ("review", "sequence").
        text_inputs: whether an example is raw text the project's tokenizer encodes (so
            ``bench.predict`` can classify text typed by a user).
        reads_data: whether the loader reads a dataset the user supplies (``--data``; a cluster
            executor ships it to the workers); a generated task does not.
        profile_deltas: per profile (``smoke``, ``quick``, ``full``), the settings that profile
            changes for this task (field name -> value). The profiles' ``model.*``, ``train.*``
            and ``measure.*`` deltas are shared by every task; a task's data differ, so only the
            task knows what "small" means for them.
        module: the module that registered the task (imported by a fresh process to find it).
    """

    name: str
    settings: type
    loader: TaskLoader
    description: str
    title: str = ""
    citation: str = ""
    example: str = "example"
    text_inputs: bool = False
    reads_data: bool = False
    profile_deltas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    module: str = ""

    def record_facts(self) -> dict[str, Any]:
        """What a run record keeps of this registration (``task_info``), so a report renders
        without the registry (a task registered by a test or a plug-in is not registered where
        the report is rendered)."""
        return {"name": self.name, "title": self.title, "description": self.description,
                "citation": self.citation, "example": self.example, "text_inputs": self.text_inputs}


_TASKS: dict[str, TaskInfo] = {}


def register_task(
    name: str,
    *,
    settings: type,
    loader: TaskLoader,
    description: str,
    title: str = "",
    citation: str = "",
    example: str = "example",
    text_inputs: bool = False,
    reads_data: bool = False,
    profile_deltas: Mapping[str, Mapping[str, Any]] | None = None,
) -> TaskInfo:
    """Register a task; a duplicate name, or settings that are not a frozen dataclass, raise."""
    if name in _TASKS:
        raise ValueError(f"task {name!r} is already registered")
    if not dataclasses.is_dataclass(settings) or not settings.__dataclass_params__.frozen:
        raise TypeError(f"task {name!r}: settings must be a frozen dataclass, got {settings!r}")
    fields = {f.name for f in dataclasses.fields(settings)}
    for profile, delta in (profile_deltas or {}).items():
        unknown = sorted(set(delta) - fields)
        if unknown:
            raise ValueError(f"task {name!r}: profile {profile!r} sets unknown settings {unknown}")
    info = TaskInfo(
        name=name, settings=settings, loader=loader, description=description,
        title=title or name, citation=citation,
        example=example, text_inputs=text_inputs, reads_data=reads_data,
        profile_deltas={p: dict(d) for p, d in (profile_deltas or {}).items()},
        module=getattr(loader, "__module__", "") or "",
    )
    _TASKS[name] = info
    return info


def list_tasks() -> list[str]:
    """Registered task names, in registration order (IMDb first)."""
    return list(_TASKS)


def task_info(name: str) -> TaskInfo:
    """The registration of ``name``; an unknown name raises :class:`UnknownTaskError` with the
    closest registered names."""
    try:
        return _TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_TASKS), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownTaskError(
            f"unknown task {name!r}; {hint}registered: {', '.join(_TASKS)}"
        ) from None


def ensure_task(name: str, module: str | None) -> TaskInfo:
    """:func:`task_info`, importing ``module`` first when the task is not registered in this
    process yet (a run's child process, a cluster worker)."""
    if name not in _TASKS and module:
        importlib.import_module(module)
    return task_info(name)


# --- IMDb -------------------------------------------------------------------------------------

IMDB_CITATION = (
    "Andrew L. Maas, Raymond E. Daly, Peter T. Pham, Dan Huang, Andrew Y. Ng and Christopher "
    'Potts. 2011. "Learning Word Vectors for Sentiment Analysis." In *Proceedings of the 49th '
    "Annual Meeting of the Association for Computational Linguistics (ACL 2011)*, pages 142–150."
)


def _load_imdb_task(settings: DataConfig, data: str | Path | None, *, progress: bool = True) -> TaskData:
    from .pipeline import load_imdb  # the pipeline pulls in the reader; only IMDb runs need it

    loaded = load_imdb(settings, data, progress=progress)
    details = {
        # The name only: records are committed, and a path names the machine they ran on.
        "source": loaded.source.path.name,
        "source_kind": loaded.source.kind,
        "origin": loaded.source.origin,
        "checksum": loaded.source.checksum,
        "cache_hit": loaded.cache_hit,
        "n_decode_errors": loaded.n_decode_errors,
        "prep_time_s": sum(loaded.timings_s.values()),
    }
    return TaskData(loaded.train, loaded.val, loaded.test, loaded.vocab, details)


register_task(
    "imdb",
    settings=DataConfig,
    loader=_load_imdb_task,
    description="IMDb large movie review dataset",
    title="IMDb",
    citation=IMDB_CITATION,
    example="review",
    text_inputs=True,
    reads_data=True,
    # smoke: a few thousand reviews and a small vocabulary, so the whole pipeline runs in seconds.
    profile_deltas={
        "smoke": {"vocab_size": 2_000, "max_len": 100, "train_limit": 2_000, "test_limit": 1_000},
        # long: reviews whole or nearly (the train split's p99 is 1,041 tokens; 250 cuts 36.8%)
        # and a larger vocabulary, so the models and the TF-IDF floor read what a person reads.
        "long": {"vocab_size": 30_000, "max_len": 1_000},
    },
)
