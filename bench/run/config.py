"""Run configuration: frozen dataclasses, one base, profiles as small deltas, typed overrides.

The base configuration is the notebook's (``full``): vocabulary 10,000, max length 250, embedding
100, hidden 256, 2 layers, dropout 0.5, batch 64, Adam 1e-3, 5 epochs. ``quick`` and ``smoke`` are
deltas on it, applied with :func:`dataclasses.replace`, and so are the user's ``--set`` overrides,
which are type-checked against the field they name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import torch

from data_pipeline import DEFAULT_TASK, DataConfig, task_info
from models import create_model, list_models, model_info

PROFILES = ("smoke", "quick", "long", "full")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type, or out of range."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters handed to the model builder (only those a builder accepts)."""

    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int = 2
    dropout: float = 0.5
    # "auto" lets each model pick its fastest exact way of keeping padding out, per device.
    padding_mode: str = "auto"

    def __post_init__(self) -> None:
        _check(self.embedding_dim >= 1, "model.embedding_dim must be >= 1")
        _check(self.hidden_dim >= 1, "model.hidden_dim must be >= 1")
        _check(self.num_layers >= 1, "model.num_layers must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)")
        _check(
            self.padding_mode in ("auto", "padded", "packed"),
            "model.padding_mode must be one of auto, padded, packed",
        )


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop: one trainer for every model."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    patience: int = 2  # epochs without a better validation loss before stopping
    # Stop once validation accuracy reaches this (0 disables): a memory probe stops when solved.
    target_accuracy: float = 0.0
    max_time_s: float = 0.0  # wall-clock limit of the training loop; 0 means none
    # A budget extension (0: an ordinary run): this run repeats, with ``epochs`` epochs, a run of
    # this many epochs that its epoch cap ended while it was still improving (budget-bound). It
    # changes no number (``epochs`` does); it names what the run extends, so its record tells it
    # apart and a results folder counts it as that run's settings (the memory sweep extends runs).
    extends_epochs: int = 0
    bf16: bool = True  # bf16 autocast, used on CUDA only
    # Flush denormal floats to zero on CPU. Early in training the recurrent backward pass is full
    # of denormals, which x86 cores process ~100x slower: measured here, an LSTM epoch ran 7x
    # faster with flushing and gave the same losses to 4 decimals.
    flush_denormal: bool = True
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(self.lr > 0, "train.lr must be > 0")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0 (0 disables clipping)")
        _check(self.patience >= 1, "train.patience must be >= 1")
        _check(0.0 <= self.target_accuracy <= 1.0,
               "train.target_accuracy must be in [0, 1] (0 disables it)")
        _check(self.max_time_s >= 0, "train.max_time_s must be >= 0 (0 means no limit)")
        _check(0 <= self.extends_epochs < self.epochs,
               "train.extends_epochs must be 0 (not an extension) or fewer than train.epochs")
        _check(self.eval_batch_size >= 1, "train.eval_batch_size must be >= 1")


@dataclass(frozen=True)
class MeasureConfig:
    """How speed and memory are measured."""

    warmup_batches: int = 5  # training batches per run excluded from throughput
    infer_warmup_batches: int = 2  # evaluation batches excluded from inference throughput
    latency_warmup: int = 5
    latency_reps: int = 50
    matmul_size: int = 1024  # side of the square matmul that calibrates `efficiency`
    # CPU inference peak memory, measured in a fresh process (seconds per run: the memory suite,
    # whose runs train for seconds, turns it off; on CUDA it costs nothing and is always taken).
    infer_memory: bool = True

    def __post_init__(self) -> None:
        _check(self.warmup_batches >= 0, "measure.warmup_batches must be >= 0")
        _check(self.infer_warmup_batches >= 0, "measure.infer_warmup_batches must be >= 0")
        _check(self.latency_warmup >= 0, "measure.latency_warmup must be >= 0")
        _check(self.latency_reps >= 3, "measure.latency_reps must be >= 3")
        _check(self.matmul_size >= 16, "measure.matmul_size must be >= 16")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers, except the task, the architecture and the seed.

    ``data`` holds the task's own settings (its registered frozen dataclass; IMDb's is
    :class:`DataConfig`)."""

    data: Any = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# Profiles are deltas on the base (= full). Each delta maps "section.field" to a value.
# quick: sized so every default architecture trains on the real data in about 20 minutes on 2 CPU
# cores: a smaller, single-layer model (embedding and hidden 64) learns faster per second with a
# higher learning rate, and lighter dropout suits the smaller capacity. Measured on IMDb, one seed,
# one thread: lr 3e-3 gave lstm 84.4% / bilstm 84.8% test accuracy, 5e-3 gave 84.8% / ~86% (bilstm
# validation 86.7%); dropout 0.5 at 5e-3 gave lstm 80.9%; hidden 128 tripled the epoch time.
PROFILE_DELTAS: dict[str, dict[str, Any]] = {
    "full": {},
    "quick": {
        "model.embedding_dim": 64,
        "model.hidden_dim": 64,
        "model.num_layers": 1,
        "model.dropout": 0.3,
        "train.lr": 5e-3,
        "train.epochs": 5,
    },
    # long: whole reviews, one setting sized on GRUs (IMDb's data delta: max length 1,000,
    # vocabulary 30,000). Chosen on validation loss (2,500 reviews, one seed, best epoch), quick's
    # model widened to embedding 128, on the real data: gru_max hidden 64 lr 5e-3 dropout 0.3
    # 0.2826 (88.40%); hidden 128, same 0.2750 (89.44%) at twice the epoch time (107 vs 62 s);
    # hidden 64, lr 2e-3, dropout 0.5 0.2835 (88.76%, 8 epochs to get there); bigru_max hidden
    # 64, lr 3e-3, dropout 0.5 0.2591 (89.68%, 110 s per epoch). Both widths overfit within
    # 2-4 epochs at lr 5e-3 and dropout 0.3; early stopping picks the epoch (at most 10).
    "long": {
        "model.embedding_dim": 128,
        "model.hidden_dim": 64,
        "model.num_layers": 1,
        "model.dropout": 0.5,
        "train.lr": 3e-3,
        "train.epochs": 10,
    },
    # The data deltas of a profile are the task's (declared at its registration, see
    # profile_delta): what "a small run" means depends on the data.
    "smoke": {
        "model.embedding_dim": 16,
        "model.hidden_dim": 16,
        "model.num_layers": 1,
        "model.dropout": 0.1,
        "train.lr": 5e-3,
        "train.epochs": 2,
        "measure.warmup_batches": 2,
        "measure.latency_reps": 10,
        "measure.latency_warmup": 2,
        "measure.matmul_size": 256,
    },
}


#: A profile's own default architectures (``run_all.py`` without ``--archs``), where they differ
#: from the registry's default set: ``long`` also reads each recurrent cell max-pooled, so it adds the
#: max-pooled readouts (Johnson & Zhang's 91.9% reads max-pooled states; the mean-pooled ones stay
#: out to keep the grid within a CPU sitting) beside the notebook's last-state models and floors.
PROFILE_ARCHS: dict[str, tuple[str, ...]] = {
    "long": ("rnn", "lstm", "gru", "bilstm", "lstm_max", "gru_max", "bilstm_max", "bigru_max",
             "bag_of_embeddings", "tfidf_logreg"),
}


def profile_delta(profile: str, task: str = DEFAULT_TASK) -> dict[str, Any]:
    """The profile's delta for ``task``: the shared ``model/train/measure`` delta, then the
    task's own ``data.*`` delta from its registration."""
    task_delta = task_info(task).profile_deltas.get(profile, {})
    return {**PROFILE_DELTAS[profile], **{f"data.{k}": v for k, v in task_delta.items()}}


def field_types(section_cls: type) -> dict[str, Any]:
    """The resolved type hints of a config dataclass's fields."""
    return typing.get_type_hints(section_cls)


def _section_classes(config: RunConfig | None = None) -> dict[str, type]:
    """Each section's dataclass; ``data`` is the task's settings class of ``config``."""
    classes = {f.name: f.type_cls for f in _SECTIONS}
    if config is not None:
        classes["data"] = type(config.data)
    return classes


@dataclass(frozen=True)
class _Section:
    name: str
    type_cls: type


_SECTIONS = (
    _Section("data", DataConfig),
    _Section("model", ModelConfig),
    _Section("train", TrainConfig),
    _Section("measure", MeasureConfig),
)


def all_keys(config: RunConfig | None = None) -> list[str]:
    """Every settable key, as ``section.field`` (``data.*``: the task's settings of ``config``,
    IMDb's when None)."""
    return [f"{name}.{f.name}" for name, cls in _section_classes(config).items()
            for f in dataclasses.fields(cls)]


def resolve_key(key: str, config: RunConfig | None = None) -> tuple[str, str]:
    """Map ``section.field`` or an unambiguous bare ``field`` to (section, field)."""
    keys = all_keys(config)
    if "." in key:
        if key not in keys:
            raise ConfigError(f"unknown setting {key!r}; settable keys: {', '.join(keys)}")
        section, name = key.split(".", 1)
        return section, name
    matches = [k for k in keys if k.split(".", 1)[1] == key]
    if not matches:
        raise ConfigError(f"unknown setting {key!r}; settable keys: {', '.join(keys)}")
    if len(matches) > 1:
        raise ConfigError(f"setting {key!r} is ambiguous; write one of {', '.join(matches)}")
    section, name = matches[0].split(".", 1)
    return section, name


def parse_value(key: str, text: str, annotation: Any) -> Any:
    """Parse ``text`` as the type ``annotation`` of field ``key``; raise ConfigError if it isn't."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        return parse_value(key, text, args[0])
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            return int(text.replace("_", ""))
        if annotation is float:
            value = float(text)
        if annotation is str:
            return text
    except ValueError:
        raise ConfigError(f"{key} expects {annotation.__name__}, got {text!r}") from None
    if annotation is float:
        # inf or nan would pass every range check (nan compares false) and fail mid-run.
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {text!r}")
        return value
    raise ConfigError(f"{key} has an unsupported type {annotation!r}")


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return ``config`` with ``{"section.field" | "field": value}`` applied.

    String values are parsed to the field's type; other values must already have it. Each section
    is rebuilt with :func:`dataclasses.replace`, so its range checks run on the result.
    """
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = resolve_key(key, config)
        annotation = field_types(_section_classes(config)[section])[name]
        if isinstance(value, str) and annotation is not str:
            value = parse_value(f"{section}.{name}", value, annotation)
        elif not _is_instance(value, annotation):
            raise ConfigError(f"{section}.{name} expects {annotation}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{name} must be a finite number, got {value!r}")
        by_section.setdefault(section, {})[name] = value
    changes = {}
    for section, values in by_section.items():
        try:
            changes[section] = dataclasses.replace(getattr(config, section), **values)
        except ValueError as exc:  # a section's own range check (DataConfig raises ValueError)
            raise ConfigError(str(exc)) from None
    return dataclasses.replace(config, **changes)


def _is_instance(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def profile_config(
    profile: str, overrides: dict[str, Any] | None = None, task: str = DEFAULT_TASK
) -> RunConfig:
    """The base configuration of ``task`` (its default settings as ``data``) with the profile's
    delta (see :func:`profile_delta`), then ``overrides``, applied."""
    if profile not in PROFILE_DELTAS:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    base = RunConfig(data=task_info(task).settings())
    config = apply_overrides(base, profile_delta(profile, task))
    return apply_overrides(config, overrides or {})


#: One model's own hyperparameters, as a RunSpec carries them: sorted (name, value) pairs.
ModelSettings = tuple[tuple[str, Any], ...]


def split_model_settings(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Separate ``<model>.<hyperparameter>`` keys (a registered model's name before the dot) from
    the run settings; returns (run settings, {model: {hyperparameter: value}})."""
    models = set(list_models())
    run: dict[str, Any] = {}
    per_model: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        name, sep, hyperparam = key.partition(".")
        if sep and name in models:
            per_model.setdefault(name, {})[hyperparam] = value
        else:
            run[key] = value
    return run, per_model


def _parse_like(key: str, text: str, default: Any) -> Any:
    """Parse ``text`` as a value of ``default``'s type (a tuple: comma-separated elements)."""
    if isinstance(default, tuple):
        element = type(default[0]) if default else str
        return tuple(parse_value(key, part.strip(), element) for part in text.split(",") if part.strip())
    return parse_value(key, text, type(default))


def parse_model_settings(
    per_model: dict[str, dict[str, Any]], archs: list[str], vocab_size: int
) -> dict[str, ModelSettings]:
    """Check and type one model's own hyperparameters (``--set lstm.hidden_dim=128``).

    A setting must name a model of this grid and one of its builder's hyperparameters; a text
    value is parsed to the type of the builder's default; the model is then built once with the
    settings, so a value the builder rejects stops the command before anything runs.

    Raises:
        ConfigError: naming the setting and what is accepted.
    """
    settings: dict[str, ModelSettings] = {}
    for arch, values in per_model.items():
        if arch not in archs:
            raise ConfigError(f"--set {arch}.{next(iter(values))}: {arch} is not among the "
                              f"architectures of this run ({', '.join(archs)})")
        defaults = model_info(arch).hyperparams
        parsed = {}
        for name, value in values.items():
            if name not in defaults:
                raise ConfigError(f"model {arch!r} has no hyperparameter {name!r}; accepted: "
                                  f"{', '.join(defaults) or '(none)'}")
            key = f"{arch}.{name}"
            parsed[name] = _parse_like(key, value, defaults[name]) if isinstance(value, str) else value
        try:
            # On the meta device: the check allocates nothing, so a model too large for this
            # machine is not refused here but fails as its run's data (an ``oom`` record).
            with torch.device("meta"):
                create_model(arch, vocab_size=vocab_size, pad_index=0, **parsed)
        # RuntimeError: torch refusing a shape ("negative dimension"); on the meta device
        # nothing is allocated, so it never means memory ran out.
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"--set {arch}.*: {exc}") from None
        settings[arch] = tuple(sorted(parsed.items()))
    return settings


#: Settings added after run ids were first published, with the value that means "as before": a
#: spec leaves them out while they hold it, so every earlier run keeps its id (and its folder's
#: settings still match). A missing key reads back as the field's default.
_ADDED_LATER: dict[tuple[str, str], Any] = {
    ("train", "target_accuracy"): 0.0,
    ("train", "extends_epochs"): 0,
    ("measure", "infer_memory"): True,
}


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """A JSON-ready nested dict of ``config`` (without the later settings at their old value)."""
    payload = dataclasses.asdict(config)
    for (section, name), unchanged in _ADDED_LATER.items():
        if payload.get(section, {}).get(name, unchanged) == unchanged:
            payload.get(section, {}).pop(name, None)
    return payload


def config_from_dict(payload: dict[str, Any], task: str = DEFAULT_TASK) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :func:`config_to_dict`'s output (unknown keys rejected);
    ``data`` is read as ``task``'s settings."""
    sections = {}
    for name, cls in _section_classes(RunConfig(data=task_info(task).settings())).items():
        values = dict(payload.get(name, {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {name} settings: {', '.join(unknown)}")
        sections[name] = cls(**values)
    return RunConfig(**sections)


@dataclass(frozen=True)
class RunSpec:
    """One run: a task, an architecture and a seed under a configuration, on a device."""

    arch: str
    seed: int
    profile: str
    device: str  # "cpu" or "cuda"
    threads: int
    config: RunConfig
    data_path: str | None = None  # explicit dataset path; None means RNNBENCH_IMDB or the cache
    keep_artifacts: bool = True  # checkpoint + vocab beside the record
    # This architecture's own hyperparameters (``--set <arch>.<name>=...``), over config.model.
    model_settings: ModelSettings = ()
    task: str = DEFAULT_TASK  # a registered task (data_pipeline.tasks); config.data is its settings
    # The module that registers the task, imported by a process that has not (neither hashed nor
    # compared: where the registration lives does not change the numbers).
    task_module: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as stored in the record (config sections at top level)."""
        payload = {
            # Only when not IMDb, so the run ids of IMDb runs stay what they were.
            **({"task": self.task} if self.task != DEFAULT_TASK else {}),
            "arch": self.arch,
            "seed": self.seed,
            "profile": self.profile,
            "device": self.device,
            "threads": self.threads,
            **config_to_dict(self.config),
        }
        # Only when set, so the run ids of runs without any stay what they were.
        if self.model_settings:
            payload["model_settings"] = dict(self.model_settings)
        return payload

    @property
    def run_id(self) -> str:
        """``<arch>-s<seed>-<hash>`` (``<task>-<arch>-s<seed>-<hash>`` for a task other than IMDb):
        stable for the same resolved spec.

        The task is in the hash (through :meth:`to_dict`) when it is not IMDb, so IMDb runs keep
        the ids they had before tasks existed. Where the data comes from is not part of the hash
        (the data's checksum is recorded), nor whether artifacts are kept: neither changes the
        numbers.
        """
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        prefix = f"{self.task}-" if self.task != DEFAULT_TASK else ""
        return f"{prefix}{self.arch}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:8]}"

    @classmethod
    def from_dict(cls, payload: dict[str, Any], **extra: Any) -> RunSpec:
        """Rebuild a spec from :meth:`to_dict`'s output."""
        task = payload.get("task", DEFAULT_TASK)
        return cls(
            task=task,
            arch=payload["arch"],
            seed=payload["seed"],
            profile=payload["profile"],
            device=payload["device"],
            threads=payload["threads"],
            config=config_from_dict(payload, task),
            model_settings=tuple(sorted(
                (name, tuple(value) if isinstance(value, list) else value)
                for name, value in payload.get("model_settings", {}).items()
            )),  # fmt: skip
            **extra,
        )


def configuration_markdown() -> str:
    """``docs/configuration.md``: every key with its default and profile values.

    Generated (``python -m bench.config > docs/configuration.md``) so the page cannot drift from
    the code; a test compares the two.
    """
    base = RunConfig()
    lines = [
        "# Run configuration",
        "",
        "<!-- generated by `python -m bench.config > docs/configuration.md`; do not edit -->",
        "",
        "Every run is described by a frozen `RunConfig` (`bench/run/config.py`): four sections of typed",
        "fields. The base is the `full` profile (the original notebook's configuration); `quick`,",
        "`long` and `smoke` are small deltas on it. Override any field from the command line with",
        "`--set section.field=value` (a bare `field=value` works when the name is unambiguous);",
        "values are parsed to the field's type and range-checked, and an unknown key or a bad value",
        "stops with one line and exit code 2.",
        "",
        "```bash",
        "python run_all.py --set train.lr=3e-3 --set model.hidden_dim=128 --set data.max_len=400",
        "```",
        "",
        "A `model.*` value reaches every model whose builder takes that hyperparameter. One model's",
        "own value is set with its registry name as the prefix, `--set <model>.<hyperparameter>=value`;",
        "it applies to that model alone, over `model.*`, and is parsed to the type of the builder's",
        "default (a tuple as comma-separated values):",
        "",
        "```bash",
        "python run_all.py --set lstm.hidden_dim=128 --set tfidf_logreg.min_df=3 --set tfidf_logreg.c_grid=0.5,2,8",
        "```",
        "",
        "`python run_all.py --list-archs` lists each model with its hyperparameters and defaults.",
        "",
        "The `data` section holds the settings of the task (`--task NAME`, default `imdb`;",
        "`python run_all.py --list-tasks` lists them): each task registers its own frozen settings",
        "and its own `data.*` profile deltas. IMDb's are listed below.",
    ]
    deltas = {p: profile_delta(p) for p in PROFILES if p != "full"}
    for section in _SECTIONS:
        lines += ["", f"## `{section.name}`", "",
                  "| key | type | full (base) | " + " | ".join(deltas) + " |",
                  "|---|---|---|" + "---|" * len(deltas)]
        hints = field_types(section.type_cls)
        for f in dataclasses.fields(section.type_cls):
            key = f"{section.name}.{f.name}"
            cells = [f"`{delta[key]}`" if key in delta else "" for delta in deltas.values()]
            type_name = getattr(hints[f.name], "__name__", str(hints[f.name])).replace(" | ", " or ")
            lines.append(f"| `{key}` | {type_name} | `{getattr(getattr(base, section.name), f.name)}` "
                         f"| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.config``: print :func:`configuration_markdown`."""
    import argparse

    argparse.ArgumentParser(
        prog="python -m bench.config",
        description="Print the run configuration page (every key, its type, default and profile "
        "values) as markdown: python -m bench.config > docs/configuration.md",
    ).parse_args(argv)
    print(configuration_markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
