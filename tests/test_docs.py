"""The README and the guides under docs/: size, generated results, quoted figures, links, the map.

No result number in them is typed by hand: the tables are generated from the committed reports'
records (:mod:`reports.headline`), every figure quoted in a sentence is recomputed from its
source, and a figure that is neither is found and named.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reports import headline

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: The README is a front page (issue 22): what, why, results, install, commands, map, guides.
README_MAX_BYTES = 12_000
#: CI and other tests may read this block: it stays as it is.
QUICKSTART = (
    "```bash\n"
    "make report   # creates .venv if missing, trains the default set, "
    "writes results/<profile>-<device>/report.md\n"
    "make test     # creates .venv if missing, runs the unit tests, "
    "then the benchmark gate against the baseline commit\n"
    "```"
)
#: Every page a link may start from: the README and every page directly under docs/.
LINKING_PAGES = ["README.md"] + sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))


def _text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def test_the_readme_is_a_front_page_of_at_most_12_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes; move material to a guide under docs/")
    text = _text("README.md")
    assert QUICKSTART in text.split("## Quickstart", 1)[1]
    assert "## Licence\n\nApache License 2.0: see `LICENSE`." in text
    for guide in headline.pages()[1:]:  # every guide is reachable from the front page
        assert f"]({guide})" in text, f"README.md links no {guide}"


# ---- generated blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", headline.pages())
def test_every_generated_block_is_what_the_records_give_now(page: str) -> None:
    text = _text(page)
    for name, body in headline.blocks_in(text):
        assert name in headline.BLOCKS, f"{page}: unknown block {name!r}"
        assert body == headline.render_block(name, page), (
            f"{page}: block {name!r} is stale: run python -m reports.headline --write")


def test_each_block_is_on_its_page_and_the_readme_has_the_headline() -> None:
    placed = {name: page for page in headline.pages()
              for name, _ in headline.blocks_in(_text(page))}  # fmt: skip
    assert set(placed) == set(headline.BLOCKS), sorted(set(headline.BLOCKS) ^ set(placed))
    assert placed["headline"] == "README.md"


def test_a_stale_block_is_rewritten_and_an_edit_outside_blocks_is_kept() -> None:
    page = "README.md"
    begin, end = headline.BEGIN.format(name="headline"), headline.END.format(name="headline")
    stale = f"before\n{begin}\n| `gru` | 776 MiB |\n{end}\nafter\n"
    fresh = headline.rewrite(stale, page)
    assert fresh == f"before\n{begin}\n{headline.render_block('headline', page)}{end}\nafter\n"
    assert headline.rewrite(fresh, page) == fresh


def test_the_headline_reads_the_records_not_a_copy() -> None:
    """The figure the issue found stale: GRU's training peak on whole reviews is the three-seed
    mean of the records (770 MiB), not seed 0's (776 MiB); and the table has every architecture
    of the reports, in registry order (findings.md), the README those of ``front_rows``."""
    long = headline.committed(headline.LONG)
    seeds = [r["metrics"]["train_peak_mem_mb"] for r in long.rows["gru"].ok]
    assert len(seeds) == 3 and round(sum(seeds) / 3) == 770
    assert headline.figure(long.rows["gru"], "train_peak_mem_mb") == "770 †"
    every = _row_names(headline.render_block("every-architecture", "docs/findings.md"))
    assert every == headline.arch_order(headline.committed(headline.EXAMPLE), long)
    assert set(long.manifest["archs"]) <= set(every)
    table = headline.render_block("headline", "README.md")
    rows = _row_names(table)
    assert rows == [a for a in every if a in set(headline.default_set())
                    | set(headline.family_bests(headline.committed(headline.EXAMPLE), long))]
    gru = next(line for line in table.splitlines() if line.startswith("| `gru` |"))
    assert "89.27 ± 0.23 (n=3)" in gru and gru.endswith("| 64 / 64 |")
    # Speed and memory: the cost suite's, measured alone (never the shared-machine runs', †).
    point = headline.cost_committed().task_point("gru")
    assert f"| {point['train']['samples_per_s']:,.0f} | {point['train']['peak_mb']:,.1f} |" in gru
    assert "†" not in table


def _row_names(table: str) -> list[str]:
    return [line.split(" | ")[0].strip("| `") for line in table.splitlines()
            if line.startswith("| `")]  # fmt: skip


def test_the_readme_keeps_each_familys_best_by_validation_accuracy() -> None:
    """A family's row on the front page is chosen by the selection metric, never by test
    accuracy; a table that hides rows says how many and links them."""
    for folder in (headline.committed(headline.EXAMPLE), headline.committed(headline.LONG)):
        for arch in headline.family_bests(folder):
            row = folder.rows[arch]
            rivals = [r.value("val_accuracy") or 0.0 for r in folder.rows.values()
                      if r.family == row.family]  # fmt: skip
            assert row.value("val_accuracy") == max(rivals)
    table = headline.render_block("headline", "README.md")
    hidden = len(_row_names(headline.render_block("every-architecture", "docs/findings.md")))
    hidden -= len(_row_names(table))
    if hidden:
        assert f"{hidden} more in [every architecture](docs/findings.md#every-architecture)" in table


def test_the_horizons_agree_with_the_memory_report() -> None:
    """Computed from the records, they are the report's own table (a golden file)."""
    mem = headline.committed(headline.HORIZON)
    section = mem.report.split("How far each architecture carries what it read", 1)[1]
    for arch in ("rnn", "lstm", "gru", "bilstm"):
        cells = re.search(rf"\| `{arch}` \| ([^|]+) \| ([^|]+) \|", section).groups()
        assert list(headline.horizon_text(mem, arch).values()) == [c.strip() for c in cells]


# ---- quoted figures -----------------------------------------------------------------------------


@pytest.mark.parametrize("quote", headline.quotes(), ids=lambda q: f"{q.page}:{q.text}")
def test_every_quoted_figure_is_what_its_source_gives(quote: headline.Quote) -> None:
    now = quote.value()
    assert now == quote.text, f"{quote.page} quotes {quote.text!r}; {quote.source} gives {now!r}"
    assert quote.text in _text(quote.page), f"{quote.page} no longer quotes {quote.text!r}"


@pytest.mark.parametrize("page", headline.pages())
def test_no_result_figure_is_typed_by_hand(page: str) -> None:
    unchecked = headline.unchecked_figures(page, _text(page))
    assert not unchecked, ("figures neither generated nor quoted (generate them, or add a Quote "
                           "to reports/headline.py): " + "; ".join(unchecked))


def test_the_figure_scan_finds_hand_typed_results_and_skips_code() -> None:
    text = ("GRU's training peak is 776 MiB, 4.7x the LSTM's; it holds up to T = 64 at 89.3% "
            "with 404 samples/s and a decay of 2.0e-10 in 6 s.\n"
            "`--set train.lr=3e-3` and\n```\nmake report  # ~20 min, 97%\n```\n")
    found = [hit.split(": ", 1)[1] for hit in headline.unchecked_figures("docs/nowhere.md", text)]
    assert found == ["'776 MiB'", "'4.7x'", "'T = 64'", "'89.3%'", "'404 samples/s'", "'2.0e-10'",
                     "'6 s'"]


# ---- links and the map --------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _CODE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", LINKING_PAGES)
def test_every_relative_link_points_at_an_existing_file(page: str) -> None:
    broken = []
    for target in _LINK.findall(_CODE.sub("", _text(page))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        resolved = (ROOT / page).parent / path if path else ROOT / page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page}: broken links: {broken}"


def test_the_slug_is_github_s() -> None:
    assert _slug("The notebook's table, measured") == "the-notebooks-table-measured"
    assert _slug("Fair comparisons: seeds, tuning, matched sizes and a linear floor") == (
        "fair-comparisons-seeds-tuning-matched-sizes-and-a-linear-floor")


def _map_entries() -> list[str]:
    """The paths the README's map names (``dir/a.py, b.py`` and ``dir/{a,b}.py`` expanded)."""
    block = _text("README.md").split("## Map of the code", 1)[1].split("```", 2)[1]
    entries = []
    for line in block.splitlines()[1:]:
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        first, *rest = [n.strip() for n in names.split(", ")]
        folder = first.rsplit("/", 1)[0] + "/" if "/" in first.rstrip("/") else ""
        braces = re.fullmatch(r"(.*)\{(.+)\}(.*)", first)
        if braces:
            entries += [braces[1] + part + braces[3] for part in braces[2].split(",")]
        else:
            entries.append(first)
        entries += [folder + name for name in rest]
    return entries


def test_the_map_names_every_module_and_only_what_exists() -> None:
    entries = _map_entries()
    missing = [e for e in entries if not (ROOT / e).exists()]
    assert not missing, f"the README's map names what does not exist: {missing}"
    modules = sorted(p.relative_to(ROOT).as_posix()
                     for package in ("bench", "models", "data_pipeline", "reports")
                     for p in (ROOT / package).rglob("*.py")
                     if p.name != "__init__.py" and "__pycache__" not in p.parts)  # fmt: skip
    unmapped = [m for m in modules if m not in entries]
    assert not unmapped, f"add a line to the README's map for: {unmapped}"
    assert {"run_all.py", "tests/", ".ci/run", "bench/suites/__init__.py"} <= set(entries)


def test_the_schema_page_states_the_versions_and_profiles_the_code_has():
    from bench.results.records import READABLE_VERSIONS, SCHEMA_VERSION
    from bench.run.config import PROFILES

    page = (ROOT / "docs" / "record-schema.md").read_text(encoding="utf-8")
    assert page.startswith(f"# Run record schema (version {SCHEMA_VERSION})")
    older = " and ".join(f"`{v}`" for v in READABLE_VERSIONS if v != SCHEMA_VERSION)
    assert f"| `schema_version` | int | `{SCHEMA_VERSION}`, what this code writes; {older} are still read |" in page
    names = [f"`{p}`" for p in PROFILES]
    assert f"| `profile` | str | {', '.join(names[:-1])} or {names[-1]} |" in page
