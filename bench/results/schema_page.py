"""``docs/record-schema.md``'s generated parts: its title, its field tables, its metrics table.

The page's prose is written by hand; every table that lists fields is generated here from the
schema's executable form, so the page cannot fall behind the code:

- the title carries :data:`bench.results.records.SCHEMA_VERSION`;
- the run record's top-level fields: one row per field, every field :func:`validate_record`
  requires among them with the type it checks (a row the validator does not require is optional),
  the versions, profiles, error types and history keys read from their constants;
- the metrics table, from :mod:`bench.results.metrics`;
- the cost point's fields, every field :func:`bench.results.cost.validate_point` requires among them.

A field the validator requires and no row documents stops generation (and fails the test), and
``tests/test_records.py`` checks every key of the committed records and points against the rows.
``python -m bench.metrics docs/record-schema.md`` rewrites the page; each generated block sits
between its markers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.results import cost, records
from bench.results.metrics import metrics_markdown
from bench.run.config import PROFILES

__all__ = ["POINT_FIELDS", "RECORD_FIELDS", "Field", "generated_blocks", "main", "rewrite"]

@dataclass(frozen=True)
class Field:
    """One row of a field table: one or more field names, their type as shown, their meaning."""

    names: tuple[str, ...]
    meaning: str
    type: str = ""


def _code_list(values: Sequence[object], last: str = "or") -> str:
    quoted = [f"`{v}`" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"


_ERROR_MEANINGS = {
    "nan_loss": "the training loss became NaN or infinite",
    "diverged": "an epoch's mean training loss, or the running mean the trainer reads about once a "
    "second, exceeded 10x the loss of the first batch",
    "oom": "an out-of-memory error was raised inside the run",
    "killed": "the run's process was killed by a signal, often the kernel's out-of-memory killer",
    "crash": "any other exception or exit",
}
_OLD_ERRORS = [e for e in records.ERROR_TYPES if e not in _ERROR_MEANINGS]
_OLDER_VERSIONS = [v for v in records.READABLE_VERSIONS if v != records.SCHEMA_VERSION]

#: The run record's top-level fields, in the order a record holds them.
RECORD_FIELDS = (
    Field(("schema_version",), f"`{records.SCHEMA_VERSION}`, what this code writes; "
          f"{_code_list(_OLDER_VERSIONS, 'and')} are still read"),
    Field(("run_id",), "`<arch>-s<seed>-<8 hex>`: the hex is a hash of the resolved spec, so the "
          "same spec gives the same id; a task other than IMDb: `<task>-<arch>-s<seed>-<8 hex>`, "
          "the task in the hash too"),
    Field(("task",), "registry name of the task (`data_pipeline.tasks`); absent in records written "
          "before tasks existed, which are IMDb's", "str"),
    Field(("task_info",), "what the task's registration said: `name`, `title`, `description`, "
          "`citation`, `example` (what one example is called), `text_inputs` (bool); the report "
          "names the task from it. Absent in older records (IMDb's registration is used)", "object"),
    Field(("arch",), "registry name of the architecture"),
    Field(("model_description",), "the registry's one-line description", "str"),
    Field(("seed",), "model seed (weights, dropout, batch order); the split seed lives in "
          "`spec.data.split_seed`"),
    Field(("profile",), _code_list(PROFILES)),
    Field(("status",), "`ok` or `failed`"),
    Field(("error",), 'for a failed run: `{"type": ..., "message": str}`, the type one of '
          + ", ".join(f"`{kind}` ({meaning})" for kind, meaning in _ERROR_MEANINGS.items())
          + f"; {_code_list(_OLD_ERRORS, 'and')} occur in older records only. `run_all.py "
          "--resume` re-runs every failed run", "object or null"),
    Field(("spec",), "the fully resolved run specification: `task` (only when not `imdb`), `arch`, "
          "`seed`, `profile`, `device`, `threads`, and the config sections `data` (the task's own "
          "settings), `model`, `train`, `measure`"),
    Field(("environment",), "`git_commit`, `git_dirty`, `date_utc`, `python`, `torch`, `cuda`, "
          "`cudnn`, `device`, `device_name`, `cpu_model`, `threads`, `blas`, `onednn`, `packages` "
          "(name → version)"),
    Field(("data",), "`n_train`, `n_val`, `n_test`, `vocab_size`, and what the task's loader says "
          "about the data's origin; IMDb: `source` (the archive's or folder's name; records written "
          "before 2026-11-29 hold its whole path), `source_kind`, `origin`, `checksum` (sha256 or "
          "folder fingerprint), `cache_hit`, `n_decode_errors`, `prep_time_s`; the generated memory "
          "task: `source` (`generated`), `source_kind`, `generator`"),
    Field(("metrics",), "flat, unit-suffixed numbers (below); a failed run has the ones it got to, "
          "or none"),
    Field(("history",), "one entry per epoch run: "
          + ", ".join(f"`{key}`" for key in records.HISTORY_KEYS)),
    Field(("stop_reason",), "why training ended: `epochs` (all configured epochs ran), `early_stop` "
          "(`train.patience` epochs without a better validation loss), `target_reached` (validation "
          "accuracy reached `train.target_accuracy`; the memory suite stops a solved run so), "
          "`time_limit` (`train.max_time_s`), `fitted` (a self-fitting model)", "str"),
    Field(("timing_notes",), "optional: what the timings include that a reader must know, each "
          "said once (and logged): a training split (or, for `infer_samples_per_s`, a test split) "
          "of no more batches than `measure.warmup_batches` (`measure.infer_warmup_batches`), whose "
          "throughput then includes the cold first batch (`... includes the cold first batch: ...`) "
          "or comes after a shorter warm-up (`... is timed after N warm-up batch(es), not the W "
          "configured: ...`); absent when there is nothing to say (and in records written before "
          "it existed)", "list of str"),
    Field(("selected_hyperparams",), "hyperparameters the model chose itself on the validation "
          "split while fitting, by name (e.g. `tfidf_logreg`'s `{\"C\": 16.0}`); `{}` for models "
          "trained by the trainer. Settings chosen by `--tune` are not here: they are in `spec` "
          "(and listed in the manifest's `tuning`)", "object"),
    Field(("concurrent_runs",), "the most runs in progress at once on this run's machine while it "
          "ran, itself included: the larger of its grid's own count (`--jobs`, or Ray tasks on one "
          "node) and the machine-wide registry's (`bench/grid/live.py`: rnnbench runs and tuning "
          "trials of any grid sharing this user's cache folder); 1: no other rnnbench run of this "
          "user's shared the machine. Records written before it existed lack it and read as 1 "
          "(their grids ran one run at a time). The report marks speed and memory figures of runs "
          "with more than 1, which compete for cores, memory bandwidth and caches", "int"),
    Field(("artifacts",), "file names beside the record: `test_probs`, `test_labels`, `checkpoint`, "
          "`vocab`, `config` (null when not kept)", "object"),
)  # fmt: skip

#: The cost point's fields (:mod:`bench.results.cost`).
POINT_FIELDS = (
    Field(("schema_version", "kind"), f"{cost.FIRST_VERSION} or later; `\"{cost.POINT_KIND}\"`"),
    Field(("point_id",), "`<arch>-<axis>-T<T or x>-b<batch>-<hash>`: the hash covers task, "
          "profile, device, threads, model hyperparameters, vocabulary and bf16, not the "
          "repetitions"),
    Field(("arch", "task", "profile", "device", "threads"), "as in a run record"),
    Field(("axis",), "`task` (the task's own lengths: `task_batches` training batches of it at the "
          "grid's batch, `length_T` null), `length` (every sequence exactly `length_T` long, batch "
          "`batch`), `batch`"),
    Field(("length_T", "batch"), "the point's size"),
    Field(("status", "error"), "`ok`; `oom` (a phase ran out of memory: a result, shown OOM, the "
          "series goes on); `failed` (`error` as in a run record)"),
    Field(("model", "vocab_size"), "the hyperparameters, the registry's facts (`recurrent`, "
          "`training`, `flops_per_token`) and `param_count`; the vocabulary size"),
    Field(("reps", "warmup"), "timed repetitions (one a round; inference at batch 1: `ceil(72 / "
          "reps)` a round, at least 72 in all, for its p95; 30 in points measured before "
          "2026-12-03) and untimed ones before the first (points measured before 2026-12-03 ran "
          "them before every round's)"),
    Field(("samples_per_rep", "tokens_per_rep", "steps_per_rep"), "what one repetition runs (the "
          "task's point: several batches)"),
    Field(("train", "infer"), "per phase: `status` (`ok`, `oom`), `step_ms` (per step), for "
          "training also `forward_ms` (with the loss), `backward_ms`, `optimizer_ms` (clipping and "
          f"Adam), each `{{{', '.join(cost.STAT_KEYS)}}}`: the median of the repetitions, the "
          "narrowest order-statistic interval covering it with probability >= 95% (`coverage`: "
          "what it reaches; with fewer than 6 repetitions [min, max]), so never below zero; "
          "`samples_per_s`, `tokens_per_s` at the median; `peak_mb`, `rss_growth_mb`; inference "
          "`latency_p95_ms` at batch 1. `train` null: not applicable (a self-fitting model)"),
    Field(("fit",), "a self-fitting model at the task's point: `time_s` of one fit on the training "
          "split, `samples_per_s`, `reps` (1)"),
    Field(("peak_memory",), "`method` (`counted live tensors` on CPU: every tensor an operator "
          "returns counted until its storage is freed, weights, gradients, optimizer state and "
          "inputs included; `torch.cuda.max_memory_allocated` on CUDA), and `train_peak_mb`, "
          "`infer_peak_mb`, `train_rss_growth_mb`, `infer_rss_growth_mb` (how far the resident peak "
          "rose: beside it, not repeatable)"),
    Field(("efficiency",), "`train` (3 x declared forward FLOPs per token x tokens/s), `infer` (1 x), "
          "each over `matmul_flops_per_s` measured in the same process; null where no FLOPs are "
          "declared"),
    Field(("kernels",), "at the task's point: per phase `top` (operators by self time: `op`, "
          "`calls`, `self_share`) and `recurrence` (those whose name says rnn, lstm or gru: "
          "`mkldnn_rnn_layer`, `aten::gru`, cuDNN's), from torch.profiler"),
    Field(("environment", "measured_utc"), "as in a run record; `environment.allocator` says how "
          "the process's allocator treats freed memory (`retains_freed_memory`: glibc's `mallopt` "
          "set to keep it for the next step, as a caching allocator does; absent in points "
          "measured before it)"),
)  # fmt: skip

_TYPE_NAMES = {int: "int", str: "str", dict: "object", list: "list", float: "number"}


def _type_text(typ: type | tuple[type, ...]) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join("null" if t is type(None) else _TYPE_NAMES[t] for t in types)


def _documented(fields: Sequence[Field], required: Mapping[str, object], what: str) -> None:
    """Raise if a field the validator requires has no row (the page would hide it)."""
    named = {name for field in fields for name in field.names}
    missing = [name for name in required if name not in named]
    if missing:
        raise ValueError(f"{what} fields without a row in bench/results/schema_page.py: "
                         f"{', '.join(missing)}")  # fmt: skip


def record_fields_markdown() -> str:
    """The top-level fields table: each field, its type (the validator's, where it checks one)."""
    required = records.REQUIRED_FIELDS
    _documented(RECORD_FIELDS, required, "run record")
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for field in RECORD_FIELDS:
        (name,) = field.names
        shown = _type_text(required[name]) if name in required else field.type
        if not shown:
            raise ValueError(f"run record field {name!r} is optional: its row must give its type")
        lines.append(f"| `{name}` | {shown} | {field.meaning} |")
    return "\n".join(lines)


def point_fields_markdown() -> str:
    """The cost point's fields table."""
    _documented(POINT_FIELDS, cost.REQUIRED_FIELDS, "cost point")
    lines = ["| Field | Meaning |", "|---|---|"]
    lines += [f"| {', '.join(f'`{n}`' for n in field.names)} | {field.meaning} |"
              for field in POINT_FIELDS]  # fmt: skip
    return "\n".join(lines)


def _marker(name: str) -> tuple[str, str]:
    return (f"<!-- {name}: generated by `python -m bench.metrics docs/record-schema.md`; do not "
            "edit -->", f"<!-- end of {name} -->")  # fmt: skip


def generated_blocks() -> dict[str, str]:
    """Each generated block of the page by its marker name, markers excluded."""
    return {"record fields": record_fields_markdown(), "metrics table": metrics_markdown(),
            "cost point fields": point_fields_markdown()}  # fmt: skip


TITLE = f"# Run record schema (version {records.SCHEMA_VERSION})"


def rewrite(text: str) -> str:
    """``text`` (the page) with its title and every generated block made current.

    Raises:
        ValueError: a block's markers are missing.
    """
    text = re.sub(r"\A# Run record schema \(version \d+\)", TITLE, text)
    for name, block in generated_blocks().items():
        begin, end = _marker(name)
        head, found, rest = text.partition(begin)
        old, closed, tail = rest.partition(end)
        if not found or not closed:
            raise ValueError(f"the page has no {name!r} block: add the lines {begin!r} and {end!r}")
        text = f"{head}{begin}\n{block}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.metrics [PAGE]``: print the generated tables, or rewrite them in ``PAGE``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics",
        description="Print the schema page's generated tables (record fields, metrics, cost point "
        "fields), or rewrite them and the title between their markers in PAGE "
        "(docs/record-schema.md).",
    )
    parser.add_argument("page", nargs="?", type=Path, help="the page to rewrite in place")
    args = parser.parse_args(argv)
    if args.page is None:
        print("\n\n".join(generated_blocks().values()))
        return 0
    try:
        text = args.page.read_text(encoding="utf-8")
        args.page.write_text(rewrite(text), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"bench.metrics: {exc}", file=sys.stderr)
        return 2
    return 0
