"""The markdown report, assembled from the summaries, the comparisons and the plot names.

Everything here is a function of the records and the manifest: no clock is read, no path of the
machine that renders is written, so the same folder always renders the same bytes. Each task is
named from what its registration said, as its records carry it (``task_info``); a folder of one
task reads as one report, a folder of several has a section per task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.results.metrics import definition_groups
from bench.results.records import DEVICE_ONLY_SETTINGS, Unreadable
from reports.compare import (
    ALPHA,
    METHOD_BOOTSTRAP,
    METHOD_MCNEMAR,
    N_BOOT,
    THRESHOLD,
    Comparer,
    PairedComparison,
)
from reports.plots import PLOT_TITLES, PLOTS_DIR, plot_title
from reports.recommend import format_p, format_points, recommend
from reports.sections import task_report
from reports.table import (
    HEADLINE,
    MISSING,
    ArchSummary,
    budget_note,
    contention_note,
    cost_table,
    main_table,
    markdown_table,
    tail_note,
)


@dataclass(frozen=True)
class TaskSection:
    """What the report says about one task: its registered facts, records, rows, comparisons and
    figures (``plot_names``: paths under ``plots/``, each starting with ``plot_prefix``).

    ``body``: the task's part of the report, already rendered, for a task the per-architecture
    sections do not fit (the memory suite's runs differ by distance and load, not only by seed:
    :func:`reports.memory.memory_section`); None for the usual sections built from ``rows``.
    """

    facts: Mapping[str, Any]
    records: Sequence[dict[str, Any]]
    rows: Sequence[ArchSummary]
    comparer: Comparer
    plot_names: Sequence[str]
    plot_prefix: str = ""
    body: str | None = None

    @property
    def example(self) -> str:
        """What one example is called ("review")."""
        return str(self.facts.get("example") or "example")




def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out and value not in (None, ""):
            out.append(value)
    return out


def _source_name(records: Sequence[dict[str, Any]]) -> str:
    """Where the data came from, as a file name: a report names no path of the machine it ran on
    (records written before the loader kept names only hold the whole path)."""
    sources = ((r.get("data") or {}).get("source") for r in records)
    return _shared([str(s).replace("\\", "/").rsplit("/", 1)[-1] for s in sources if s is not None])


def _field(records: Sequence[dict[str, Any]], section: str, key: str) -> str:
    """A field shared by the records, or every value it takes with a note that it varies."""
    return _shared([(r.get(section) or {}).get(key) for r in records])


def _shared(values: Iterable[Any]) -> str:
    """The one value of ``values`` (None ignored), or every value with a note that it varies."""
    values = _distinct(values)
    if not values:
        return MISSING
    if len(values) == 1:
        return str(values[0])
    return ", ".join(str(v) for v in values) + " (varies across runs)"


def _count_field(records: Sequence[dict[str, Any]], key: str) -> str:
    values = _distinct((r.get("data") or {}).get(key) for r in records)
    if not values:
        return MISSING
    text = ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values)
    return text + (" (varies across runs)" if len(values) > 1 else "")


def _run_date(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any]) -> str:
    started = manifest.get("started_utc")
    if isinstance(started, str) and started:
        return started[:10]
    dates = sorted(_distinct((r.get("environment") or {}).get("date_utc") for r in records))
    return str(dates[0])[:10] if dates else "unknown date"


def _protocol(manifest: Mapping[str, Any]) -> str:
    protocol = manifest.get("protocol")
    if protocol == "tuned":
        return ("tuned: hyperparameters chosen per architecture on the validation split (see "
                "*Hyperparameters chosen on validation*)")
    if protocol == "fixed":
        return "fixed: every architecture trained with the profile's hyperparameters, no tuning"
    return "not recorded in the manifest (the runner's default is fixed hyperparameters)"


def _git(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any]) -> str:
    # The manifest lists every commit that wrote to the folder, the creating one first; records
    # of folders written before it did carry theirs.
    commits = [c for c in manifest.get("commits") or [] if isinstance(c, Mapping)]
    parts = []
    for env in _distinct(
        [(c.get("commit"), c.get("dirty")) for c in commits]
        + [
            (
                (r.get("environment") or {}).get("git_commit"),
                (r.get("environment") or {}).get("git_dirty"),
            )
            for r in records
        ]
    ):
        commit, dirty = env
        if commit:
            parts.append(f"`{str(commit)[:12]}`" + (" (uncommitted changes)" if dirty else ""))
    if not parts:
        return MISSING
    codes = {c.get("code") for c in commits}
    if len(parts) > 1 and len(commits) == len(parts) and len(codes) == 1 and None not in codes:
        # Committing finished records between sittings moves HEAD, not the code.
        return ", ".join(parts) + " (one code: the commits differ only under `docs/`)"
    return ", ".join(parts) + (" (varies across runs)" if len(parts) > 1 else "")


def _runs_at_once(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any]) -> str:
    """How many runs shared the machine at most, and how the grid was executed."""
    most = max((r.get("concurrent_runs", 1) for r in records), default=1)
    how = {"ray": "Ray tasks", "local": f"`--jobs {manifest.get('jobs', 1)}`"}.get(
        manifest.get("executor", "local"), MISSING)
    if most == 1:
        return f"1: no two runs of this grid at once ({how})"
    return f"up to {most} ({how}); figures marked † were measured while runs shared the machine"


def _data_facts(section: TaskSection, several: bool) -> list[tuple[str, str]]:
    """The header's rows about one task's data (labelled with the task when there are several)."""
    records = section.records
    label = f" ({section.facts.get('title') or section.facts.get('name')})" if several else ""
    checksum = _field(records, "data", "checksum")
    rows = [(f"Data{label}", f"{section.facts.get('description')}, from `{_source_name(records)}`")]
    if checksum != MISSING or not several:
        rows.append((f"Data checksum{label}", f"`{checksum}`" if checksum != MISSING else MISSING))
    rows.append((
        f"Splits ({label[2:-1]}, {section.example}s)" if several else f"Splits ({section.example}s)",
        f"train {_count_field(records, 'n_train')}, validation {_count_field(records, 'n_val')}, "
        f"test {_count_field(records, 'n_test')}; vocabulary {_count_field(records, 'vocab_size')}",
    ))  # fmt: skip
    return rows


def machine_facts(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any],
                  device: str) -> list[tuple[str, str]]:  # fmt: skip
    """The header's rows on where and with what the records were made: hardware, software,
    code, total time (``records``: anything with an ``environment``, run records or cost
    points)."""
    wall = manifest.get("wall_time_s")
    wall_text = f"{wall:,.0f} s ({wall / 60:.1f} min)" if isinstance(wall, int | float) else MISSING
    gpu = _field(records, "environment", "device_name")
    cuda = _field(records, "environment", "cuda")
    cudnn = _field(records, "environment", "cudnn")
    return [
        (
            "CPU",
            f"{_field(records, 'environment', 'cpu_model')}, "
            f"{_field(records, 'environment', 'threads')} thread(s) per run, "
            f"{_field(records, 'environment', 'cpu_count')} cores",
        ),
        # device_name names the CPU on a CPU run: only a CUDA run has a GPU to name.
        ("GPU", gpu if gpu != MISSING and device == "cuda" else "none"),
        (
            "Software",
            f"Python {_field(records, 'environment', 'python')}, torch "
            f"{_field(records, 'environment', 'torch')}, CUDA {cuda}, cuDNN {cudnn}",
        ),
        ("Code", f"git {_git(records, manifest)}"),
        ("Total time", wall_text),
    ]


def _invocation(entry: Mapping[str, Any]) -> str:
    """One command that wrote to the folder: ``argv``, at commit, for how long."""
    text = "`" + " ".join(str(a) for a in entry.get("argv") or []) + "`"
    facts = []
    if entry.get("commit"):
        facts.append(f"at `{str(entry['commit'])[:12]}`"
                     + (" with uncommitted changes" if entry.get("dirty") else ""))
    wall = entry.get("wall_time_s")
    facts.append(f"{wall / 60:.1f} min" if isinstance(wall, int | float) else "did not finish")
    return f"{text} ({', '.join(facts)})"


def _command(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The header's row of the commands that wrote to the folder: every one, in order, where
    the manifest keeps them; else the last, saying the earlier ones are not recorded."""
    invocations = [i for i in manifest.get("invocations") or [] if isinstance(i, Mapping)]
    if len(invocations) == 1:
        return [("Command", _invocation(invocations[0]))]
    if invocations:
        return [("Commands, in order", "; ".join(
            f"{n}. {_invocation(i)}" for n, i in enumerate(invocations, 1)))]
    argv = manifest.get("argv")
    if isinstance(argv, list) and argv:
        return [("Command", "`" + " ".join(str(a) for a in argv) + "` (the last that wrote "
                 "here; earlier invocations, if any, not recorded)")]
    return []


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    """The header's two-column table of facts."""
    return markdown_table(
        ["", ""], [[f"**{k}**", v.replace("|", "\\|")] for k, v in facts], align="ll"
    )


def standalone_header(records: Sequence[dict[str, Any]], manifest: Mapping[str, Any],
                      title: str) -> str:  # fmt: skip
    """The header of a report without run records (a cost suite's folder): title, date,
    profile, hardware, software, code, total time, the command."""
    profile, device = manifest.get("profile") or MISSING, manifest.get("device") or MISSING
    facts = [("Date of the run", _run_date(records, manifest)),
             ("Profile", f"`{profile}` on `{device}`"), *machine_facts(records, manifest, device),
             *_command(manifest)]  # fmt: skip
    return f"# rnnbench: {title} (`{profile}`, `{device}`)\n\n{facts_table(facts)}"


def header(
    records: Sequence[dict[str, Any]], manifest: Mapping[str, Any], sections: Sequence[TaskSection]
) -> str:
    """Title, run facts (date, data of each task, hardware, software, code) and the protocol."""
    profile = manifest.get("profile") or _field(records, "spec", "profile")
    device = manifest.get("device") or _field(records, "spec", "device")
    several = len(sections) > 1
    facts = [
        ("Date of the run", _run_date(records, manifest)),
        ("Profile", f"`{profile}` on `{device}`"),
        ("Protocol", _protocol(manifest)),
        *(row for section in sections for row in _data_facts(section, several)),
        *machine_facts(records, manifest, device),
        ("Runs at once", _runs_at_once(records, manifest)),
    ]
    table = facts_table([*facts, *_command(manifest)])
    titles = [str(section.facts.get("title") or section.facts.get("name")) for section in sections]
    on = " and ".join([", ".join(titles[:-1]), titles[-1]] if several else titles)
    citations = [
        f"Dataset{f' ({title})' if several else ''}: {section.facts['citation']}"
        for title, section in zip(titles, sections, strict=True) if section.facts.get("citation")
    ]
    return "\n".join(
        [
            f"# rnnbench: recurrent text classifiers on {on} (`{profile}`, `{device}`)",
            "",
            table,
            "",
            *(line for citation in citations for line in (citation, "")),
            "**Timings and memory values come from this machine only.** Do not compare them with "
            "another machine's report; `efficiency` (achieved FLOP/s as a fraction of a matmul "
            "measured on the same device in the same process) travels best between machines, "
            "though it too moves with how many runs shared the machine. Within this report, "
            "speed ratios compare runs made on the same machine in one session.",
        ]
    )


def accuracy_interval_note(rows: Sequence[ArchSummary], example: str = "review") -> str:
    """What the test accuracy interval covers: the seeds and the test set's sampling, or (rows
    whose records do not count their test examples) the seeds alone."""
    text = (f"The test accuracy interval (95%) covers two sources of variation: the seeds' spread "
            f"(Student t, n−1 degrees of freedom) and the test {example}s' sampling (the binomial "
            f"standard error over the test split: another test set of its size would score "
            f"differently), combined in quadrature and clipped to 0–100%; with one seed, or a "
            f"model that learns the same on every seed, it is the test set's alone.")
    seeds_only = [r.arch for r in rows if r.ok and r.stats[HEADLINE].covers == "seeds"]
    if seeds_only:
        text += (" Over the seeds alone (none with one seed) for "
                 + ", ".join(f"`{a}`" for a in seeds_only)
                 + f": their records do not count their test {example}s.")
    return text


def results_section(rows: Sequence[ArchSummary], manifest: Mapping[str, Any],
                    example: str = "review") -> str:  # fmt: skip
    """The main table with its legend and the failures spelled out."""
    lines = ["## Results", "", main_table(rows), ""]
    lines.append(
        "↑ higher is better, ↓ lower is better; **bold**: the best of the column as shown (on "
        "each of a tie). Cells are the mean ± sample standard deviation over seeds (n = seeds "
        "that succeeded; with n=1 there is no spread). " + accuracy_interval_note(rows, example)
        + f" {MISSING}: not measured for that model."
    )
    bound = budget_note(rows)
    if bound:
        lines += ["", bound]
    notes = []
    for row in rows:
        if row.failed:
            notes.append(
                f"- `{row.arch}`: {len(row.failed)} of {len(row.records)} seeds failed "
                f"({row.failure_text()})"
                + ("; the values above are from the others." if row.ok else ".")
            )
    recorded = {row.arch for row in rows}
    missing = [a for a in manifest.get("archs") or [] if a not in recorded]
    if missing:
        notes.append(
            "- No record at all for "
            + ", ".join(f"`{a}`" for a in missing)
            + " (not run, or the run was interrupted before writing one)."
        )
    if notes:
        lines += ["", "Failures:", "", *notes]
    described = [r for r in rows if r.description]
    if described:
        lines += ["", "Architectures:", ""]
        lines += [
            f"- `{r.arch}`: {r.description}"
            + {True: " (recurrent)", False: " (non-recurrent)"}.get(r.recurrent, "")
            for r in described
        ]
    return "\n".join(lines) + "\n\n" + speed_section(rows)


def speed_section(rows: Sequence[ArchSummary]) -> str:
    """Speed, time and memory: measured alone (the cost suite's, said where they come from),
    or the training runs' own in a table of their own, marked where runs shared the machine."""
    alone = next((r.alone for r in rows if r.alone is not None), None)
    if alone is not None:
        return "\n".join([
            "### Speed and memory", "",
            f"Measured alone: {alone.source} (see *Cost* below). The training runs' own figures, "
            "which may have shared the machine, are in `summary.csv`; no table or recommendation "
            "here uses them.", "", cost_table(rows), "",
            f"One measurement each (no spread over seeds: the models are untrained); {MISSING}: "
            "not measured alone (the training time is a training run's)."]
            + [f"\n{note}" for note in [tail_note(rows)] if note])
    lines = ["### Speed and memory of the training runs", "", cost_table(rows), "",
             "Cells as above: the mean ± sample standard deviation over seeds, **bold** the best "
             "of the column; each figure's definition is under *How this was measured*."]
    for note in (contention_note(rows), tail_note(rows)):
        if note:
            lines += ["", note]
    return "\n".join(lines)


def _spec_value(record: Mapping[str, Any], key: str) -> Any:
    """The value of ``section.field`` in a record's resolved spec (None if absent)."""
    section, _, name = key.partition(".")
    return ((record.get("spec") or {}).get(section) or {}).get(name)


def chosen_section(rows: Sequence[ArchSummary], manifest: Mapping[str, Any]) -> str | None:
    """Which hyperparameters were chosen on validation, per architecture, and by what.

    Two sources: ``--tune`` (the manifest's ``tuning`` names the settings chosen per architecture;
    the values are read from the final runs' specs) and models that choose their own (each
    record's ``selected_hyperparams``). None when nothing was chosen.
    """
    tuning = manifest.get("tuning") or {}
    tuned = tuning.get("chosen") or {}
    body = []
    for row in rows:
        if not row.ok:
            continue
        chosen: dict[str, list[Any]] = {}
        for rec in row.ok:
            picked = {key: _spec_value(rec, key) for key in tuned.get(row.arch, {})}
            picked.update(rec.get("selected_hyperparams") or {})
            for key, value in picked.items():
                chosen.setdefault(key, [])
                if value not in chosen[key]:
                    chosen[key].append(value)
        if not chosen:
            continue
        how = "`--tune` trials" if row.arch in tuned else "its own fit"
        cells = ", ".join(
            f"`{key}` = " + " / ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
            for key, values in chosen.items()
        )
        body.append([f"`{row.arch}`", cells, how])
    if not body:
        return None
    lines = ["## Hyperparameters chosen on validation", "",
             markdown_table(["Architecture", "Chosen", "By"], body, align="lll"), ""]  # fmt: skip
    if tuned:
        lines.append(
            f"`--tune` ran, per architecture, learning rate = profile lr × "
            f"{', '.join(f'{f:.3g}' for f in tuning.get('lr_factors', []))} and dropout = profile "
            f"dropout × {', '.join(f'{f:.3g}' for f in tuning.get('dropout_factors', []))} (only "
            f"the settings a model uses), {tuning.get('trial_epochs', '?')}-epoch trials with seed "
            f"{tuning.get('trial_seed', 0)}, and kept the {tuning.get('selection', 'best')}; every "
            f"seed of the final runs trains with the choice. Trials never read the test split "
            f"(all of them: `{tuning.get('file', 'tuning.json')}`)."
        )
    else:
        lines.append("These models choose their own regularisation on the validation split while "
                     "fitting; the others train with the profile's settings.")
    return "\n".join(lines)


def _comparison_cells(cmp: PairedComparison, adjusted: float) -> list[str]:
    """Seeds, examples, difference, interval, p, Holm's p, test and verdict of one comparison."""
    if not cmp.available:
        return [MISSING] * 7 + [f"not available: {cmp.reason}"]
    verdict = cmp.verdict()
    if cmp.significant and not adjusted < ALPHA:
        verdict += " (a tie after Holm's correction)"
    return [", ".join(str(s) for s in cmp.seeds), f"{cmp.n_reviews:,}", format_points(cmp.diff),
            f"{format_points(cmp.ci_lo)} to {format_points(cmp.ci_hi)}",
            format_p(cmp.p_value).removeprefix("p = ").removeprefix("p "),
            format_p(adjusted).removeprefix("p = ").removeprefix("p "), cmp.method, verdict]


def comparison_section(rows: Sequence[ArchSummary], comparer: Comparer, example: str = "review") -> str:
    """The most accurate architecture against each other one, paired by seed, then the leaders
    among themselves; every p-value also adjusted for the section's family (Holm)."""
    lines = ["## Paired comparisons", ""]
    family = comparer.family(rows)
    if family is None:
        return "\n".join(lines + ["Only one architecture has a test accuracy: nothing to compare."])
    best, against, leaders, adjusted = family.best, family.against, family.leaders, family.adjusted
    body = [[f"`{row.arch}`", *_comparison_cells(cmp, q)]
            for (row, cmp), q in zip(against, adjusted, strict=False)]  # fmt: skip
    headers = ["Against", "Seed ids paired", f"{example.capitalize()}s", f"`{best.arch}` − it (points)",
               "95% CI (points)", "p", "Holm p", "Test", "Verdict"]  # fmt: skip
    lines += [
        f"The most accurate architecture, `{best.arch}`, against each other one on the same test "
        f"{example}s (a{'n' if example[:1] in 'aeiou' else ''} {example} counts as predicted positive when its probability exceeds "
        f"{THRESHOLD}; runs paired by seed).",
        "",
        markdown_table(headers, body, align="lrrrrrrll"),
    ]
    if leaders:
        body = [[what, f"`{a.arch}` − `{b.arch}`", *_comparison_cells(cmp, q)]
                for (what, a, b, cmp), q in zip(leaders, adjusted[len(against):], strict=True)]  # fmt: skip
        lines += ["", "Among the leaders:", "",
                  markdown_table(["Question", "Pair", "Seed ids paired", f"{example.capitalize()}s",
                                  "Difference (points)", "95% CI (points)", "p", "Holm p", "Test",
                                  "Verdict"], body, align="llrrrrrrll")]  # fmt: skip
    lines += [
        "",
        f"How a tie is decided (significance level {ALPHA:.0%}): with several seeds in common, "
        f"the {METHOD_BOOTSTRAP} ({N_BOOT:,} replicates, each resampling {example}s with replacement "
        "and, independently, seeds) gives a 95% percentile interval of the accuracy difference, "
        "and the difference is a tie when that interval contains zero; its p-value is the share "
        "of replicates, shifted to the null, at least as far from zero as the observation. With "
        f"one seed in common, the {METHOD_MCNEMAR} test (a two-sided binomial test on the {example}s "
        "exactly one of the two gets right) gives the p-value and the difference is a tie when "
        f"p ≥ {ALPHA}; the interval is then the bootstrap over {example}s alone. Pairs whose runs "
        "kept no test predictions are not available rather than guessed.",
        "",
        f"Each verdict is at {ALPHA:.0%} on its own: each answers one question. Read together, "
        f"the {sum(c.available for c in family.comparisons)} comparisons of this section are a "
        f"family: *Holm p* is each p-value adjusted for it (Holm's step-down method, which holds "
        f"the chance of any false difference among them at {ALPHA:.0%}), and a verdict that would "
        "not survive it says so, here and where the recommendation quotes it.",
    ]
    return "\n".join(lines)


def plots_section(plot_names: Iterable[str], prefix: str = "", example: str = "review") -> str:
    """The figures, embedded by relative path (``plots/<prefix><name>``)."""
    lines = ["## Plots", ""]
    names = [n for n in PLOT_TITLES if prefix + n in set(plot_names)]
    if not names:
        return "\n".join(lines + ["No figure could be drawn: no run has the values they need."])
    for name in names:
        title = plot_title(name, example)
        lines += [f"### {title}", "", f"![{title}]({PLOTS_DIR}/{prefix}{name})", ""]
    lines.append(
        "Each architecture has one colour in every figure of every report (its place in the "
        "model registry). Speed and memory are this machine's; a log axis is used where the "
        "values span a factor of ten or more, and its label says so."
    )
    return "\n".join(lines)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)


#: Spec fields that identify a run rather than configure it.
_SPEC_IDENTITY = ("task", "arch", "seed")


def _settings(rows: Sequence[ArchSummary]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Spec settings shared by every architecture, and those that differ (per architecture)."""
    per_arch: dict[str, dict[str, str]] = {}
    for row in rows:
        flat: dict[str, str] = {}
        spec = {
            k: v for k, v in (row.records[0].get("spec") or {}).items() if k not in _SPEC_IDENTITY
        }
        _flatten("", spec, flat)
        per_arch[row.arch] = flat
    keys: list[str] = []
    for flat in per_arch.values():
        keys += [k for k in flat if k not in keys]
    common, differing = {}, {}
    for key in keys:
        values = [flat.get(key) for flat in per_arch.values()]
        if all(v == values[0] for v in values):
            common[key] = values[0]
        else:
            differing[key] = {arch: flat.get(key, MISSING) for arch, flat in per_arch.items()}
    return common, differing


def _not_applying(setting: str, devices: set[str]) -> str:
    """`` (does not apply: cuda only)`` for a setting that acts on a device none of the runs
    used (:data:`bench.results.records.DEVICE_ONLY_SETTINGS`), else nothing."""
    acts_on = DEVICE_ONLY_SETTINGS.get(setting)
    if acts_on is None or not devices or acts_on in devices:
        return ""
    return f" (does not apply: {acts_on.upper()} only)"


def measurement_section(rows: Sequence[ArchSummary], example: str = "review") -> str:
    """Settings, validation protocol, what each metric covers, the intervals."""
    common, differing = _settings(rows)
    lines = ["## How this was measured", "", "### Settings", ""]
    if common:
        devices = {str(device) for row in rows for r in row.records
                   if (device := (r.get("spec") or {}).get("device"))}  # fmt: skip
        lines += [
            "Shared by every architecture (from the run specs):",
            "",
            markdown_table(
                ["Setting", "Value"],
                [[f"`{k}`", f"`{v}`" + _not_applying(k, devices)] for k, v in common.items()],
                align="ll",
            ),
            "",
        ]
    if differing:
        archs = [r.arch for r in rows]
        lines += [
            "Set per architecture:",
            "",
            markdown_table(
                ["Setting"] + [f"`{a}`" for a in archs],
                [
                    [f"`{k}`"] + [f"`{v[a]}`" if v[a] != MISSING else MISSING for a in archs]
                    for k, v in differing.items()
                ],
            ),  # fmt: skip
            "",
        ]
    split_seed = common.get("data.split_seed")
    lines += [
        "### Protocol",
        "",
        f"- A stratified validation split is carved from the training {example}s with a fixed split "
        "seed" + (f" (`{split_seed}`)" if split_seed else "") + ", the same for every run; the "
        "vocabulary is built from the training split only.",
        "- Each epoch is scored on validation; the checkpoint with the lowest validation loss is "
        "kept (early stopping may end training before the configured epochs).",
        "- The test split is evaluated once per run, with that checkpoint. Nothing is selected on "
        "test.",
        "- Seeds change the model's initialisation, dropout and batch order, not the split.",
        "",
        "### What each metric includes",
        "",
        markdown_table(
            ["Metric", "How it is measured"],
            [[", ".join(m.label for m in group), group[0].definition]
             for group in definition_groups()],
            align="ll",
        ),  # fmt: skip
        "",
        "### Intervals and ties",
        "",
        "- Spread over seeds: sample standard deviation (n−1). The 95% interval of a mean over n "
        "seeds is the Student t interval, mean ± t(0.975, n−1) · s / √n (t from "
        "`scipy.stats.t`); none is given for n = 1. It is cut to the values the quantity can "
        "take, which each metric declares (a share within [0, 1], a time, size or rate never "
        "below 0): with few seeds and a wide spread the t interval passes them.",
        f"- Accuracy (a share of {example}s scored right): its interval adds the test set's "
        f"sampling to the seeds' spread, √(t-half-width² + (1.96 · √(p(1−p)/N))²) for N test "
        f"{example}s, so a model that learns the same on every seed still gets the test set's "
        "interval (about ±0.4 points at 88% on 25,000).",
        f"- Accuracy differences between architectures: paired bootstrap over {example}s and seeds "
        f"for the 95% interval; {METHOD_MCNEMAR} as the p-value when only one seed is paired; "
        f"not significant at {ALPHA:.0%} means a tie (see *Paired comparisons*).",
    ]
    return "\n".join(lines)


def published_section(task: str) -> str | None:
    """Reference figures from the literature, as the task's report declares them
    (:class:`reports.sections.TaskReport`), clearly apart from what was measured here (None for
    a task without any)."""
    declared = task_report(task)
    if not declared.published:
        return None
    body = [[name, setting, acc] for name, setting, acc in declared.published]
    differences = f", {declared.published_setting}" if declared.published_setting else ""
    return "\n".join(
        [
            "## Published results (not measured here)",
            "",
            f"For orientation only: other code, other preprocessing, other hardware{differences}. "
            "None of these numbers was produced by this run.",
            "",
            markdown_table(["Model", "Setting", "Test accuracy"], body, align="llr"),
        ]
    )


def smoke_caveat(manifest: Mapping[str, Any], what: str | None = None) -> str:
    """The warning after the heading of a section that draws conclusions, in a smoke run:
    ``what`` is the section's own account of what its smoke figures are (None: the training
    grid's)."""
    # A smoke run checks the plumbing on a few thousand reviews with tiny models; its sentences
    # below are generated all the same, so say plainly that they are no basis for a choice.
    if manifest.get("profile") != "smoke":
        return ""
    what = what or ("on a small subsample with tiny models trained for a couple of epochs: the "
                    "recurrent models barely leave chance, and its accuracies, significance tests "
                    "and the sentences below")
    return (f"> **This is a `smoke` run**: a check that the whole pipeline works, {what} are no "
            "basis for choosing an architecture: run the `quick` or `full` profile for that.\n\n")


RERUN_HINT = "`run_all.py` with the same options and `--resume` (or `--run-id ID`) runs it again"


def unreadable_section(unreadable: Sequence[Unreadable]) -> str | None:
    """The runs whose record cannot be read: named, with what is wrong and how to re-run them."""
    if not unreadable:
        return None
    lines = ["## Runs that could not be read", "",
             "These runs have a record file that cannot be read, so they are missing from every "
             f"table and plot above and below; {RERUN_HINT}.", ""]
    for item in unreadable:
        lines.append(f"- `{item.run_id}` (`runs/{item.run_id}/record.json`): {item.problem}")
    return "\n".join(lines)


def _task_sections(
    section: TaskSection, manifest: Mapping[str, Any], unreadable: Sequence[Unreadable]
) -> list[str | None]:
    """One task's part of the report, results to published figures (or its own ``body``)."""
    if section.body is not None:
        return [section.body, unreadable_section(unreadable)]
    rows, comparer, example = section.rows, section.comparer, section.example
    return [
        results_section(rows, manifest, example),
        unreadable_section(unreadable),
        chosen_section(rows, manifest),
        "## Which one should I use?\n\n" + smoke_caveat(manifest) + recommend(rows, comparer),
        comparison_section(rows, comparer, example),
        plots_section(section.plot_names, section.plot_prefix, example),
        measurement_section([r for r in rows if r.records], example),
        published_section(str(section.facts.get("name"))),
    ]


def _demoted(text: str) -> str:
    """``text`` with every heading one level deeper (a task's part under its own heading)."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.split("\n"))


def render_markdown(
    records: Sequence[dict[str, Any]],
    manifest: Mapping[str, Any],
    sections: Sequence[TaskSection],
    unreadable: Sequence[Unreadable] = (),
    closing: Sequence[str | None] = (),
) -> str:
    """The whole report: one task's reads as a single report; with several, each task has its
    own section (table, plots, recommendation), headed by its name and description. ``closing``:
    sections drawn from several tasks at once, at the end (top-level headings)."""
    if len(sections) == 1:
        parts = [header(records, manifest, sections), *_task_sections(sections[0], manifest, unreadable)]
        return with_glossary("\n\n".join(part for part in [*parts, *closing] if part) + "\n")
    parts = [header(records, manifest, sections), unreadable_section(unreadable)]
    for section in sections:
        facts = section.facts
        intro = f"## Task `{facts.get('name')}`: {facts.get('title')}\n\n{facts.get('description')}."
        parts += [intro, *(_demoted(p) for p in _task_sections(section, manifest, ()) if p)]
    return with_glossary("\n\n".join(part for part in [*parts, *closing] if part) + "\n")


#: The words a report may use in a sense of its own: (the word, how to find it, what it means).
#: :func:`with_glossary` defines those a report uses.
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    ("floor", r"\bfloors?\b",
     "a non-recurrent model (it sees which tokens occur, not their order): what a recurrent "
     "model must beat to show that reading in order pays"),
    ("tie", r"\bties?\b|\btied\b",
     "two architectures whose accuracy difference is not significant at 5% (a paired test on the "
     "same test examples): neither is shown to be better"),
    ("Pareto-optimal", r"\bPareto\b",
     "no other architecture is at least as good on every axis named and better on one"),
    ("load", r"\bload\b",
     "what a memory-task sequence asks a model to hold: 2 of 16 is two different symbols, drawn "
     "from an alphabet of 16, to carry to the end"),
    ("horizon", r"\bhorizons?\b",
     "the longest distance T at which an architecture solves the memory task (mean test "
     "accuracy at or above the threshold)"),
    ("change point", r"\bchange points?\b|\bwhere the result changes\b",
     "the distances where an architecture's result turns from solved to not solved; more seeds "
     "run there"),
    ("probe", r"\bprobe\b",
     "the gradient-flow probe: the norm of the loss gradient at each input position of a batch, "
     "against its distance from the readout, before and after training"),
    ("crossover", r"\bcrossovers?\b|\bovertakes?\b",
     "a size (T or batch) past which one architecture's cost falls below another's, with 95% "
     "intervals that do not overlap"),
    ("budget-bound", r"budget-bound|‡",
     "a run the epoch cap ended before early stopping would have (its best validation loss "
     "within the last patience epochs; ‡ marks figures resting on one): more epochs might "
     "change them"),
    ("†", "†", "a speed, time or memory figure measured while other runs shared the machine"),
)


def with_glossary(markdown: str) -> str:
    """``markdown`` with a closing "Words used here" list of the :data:`GLOSSARY` words it uses
    (nothing added when it uses none)."""
    used = [(word, meaning) for word, pattern, meaning in GLOSSARY if re.search(pattern, markdown)]
    if not used:
        return markdown
    lines = "\n".join(f"- **{word}**: {meaning}." for word, meaning in used)
    return f"{markdown}\n## Words used here\n\n{lines}\n"
