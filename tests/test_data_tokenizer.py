"""The tokenizer equals torchtext's basic_english, token for token."""

from __future__ import annotations

import csv
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from data_pipeline.corpus import UNICODE_SPACES, keys_to_tokens, tokenize_to_keys
from data_pipeline.tokenizer import tokenize, tokenize_reference

REPO_ROOT = Path(__file__).resolve().parents[1]


def _torchtext_assets() -> Path | None:
    configured = os.environ.get("RNNBENCH_TORCHTEXT_ASSETS")
    folder = (
        Path(configured) if configured else REPO_ROOT.parent / "shared/data/torchtext-basic-english"
    )
    return folder if (folder / "text_normalization_ag_news_test.csv").is_file() else None


TRICKY = [
    "",
    "   ",
    "Hello World",
    "I didn't like it. It's 'fine', he said.",
    "''quoted'' \"double\" \"\"",
    "line<br />break<br /><br />twice",
    '<br "/> is a break after the quote is deleted',
    "<br;/> and <br:/> are not breaks",
    "<BR /> upper-case breaks too, <Br />",
    "<br/> <br  /> <br\t/> <br\n/> are not breaks",
    "<br'/> <br./> <br,/> <br(/> <br!/> <br?/>",
    "<<br />br /> nested",
    "wow!!! really??? (yes) (no)) ... ,,, ;;; :::",
    "a.b.c e.g. 3.5/10 10/10 1,000,000 $12.50",
    "x-ray well-made -- --- —",
    "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeed",
    "\x1c\x1d\x1e\x1f separators",
    "non\xa0breaking\u2003em\u3000ideographic\x85next\u2028line",
    "<br\u3000/> <br\xa0/> stay",
    "İstanbul ΣΟΦΙΑ ΟΔΟΣ ß ẞ Ǆ ﬁ K",
    "naïve café déjà-vu Zoë ÉCLAIR",
    "emoji 😀!! and \ufffd replacement",
    "NUL\x00inside and \x00 alone",
    'mixed"quote\'s."end',
]


def test_fast_tokenizer_matches_reference_on_tricky_strings() -> None:
    for text in TRICKY:
        assert tokenize(text) == tokenize_reference(text), text


def test_reference_follows_rule_order() -> None:
    # '"' is deleted before <br /> is matched; ';' becomes a space only afterwards.
    assert tokenize_reference('a<br "/>b') == ["a", "b"]
    assert tokenize_reference("a<br;/>b") == ["a<br", "/>b"]
    assert tokenize_reference("I didn't.") == ["i", "didn", "'", "t", "."]
    assert tokenize_reference("Great (really)!") == ["great", "(", "really", ")", "!"]


def test_unicode_space_list_is_what_str_split_splits_on() -> None:
    expected = {chr(c) for c in range(0x80, sys.maxunicode + 1) if chr(c).isspace()}
    assert set(UNICODE_SPACES) == expected


def _random_strings(seed: int, n: int) -> list[str]:
    alphabet = list("'\".,()!?;:<>/ br BR\t\n\xa0\u3000\x1cİΣaé\x00-") + ["<br />", "<br "]
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def test_randomized_strings_from_special_characters() -> None:
    for text in _random_strings(seed=0, n=3000):
        assert tokenize(text) == tokenize_reference(text), repr(text)


def test_bulk_key_tokenizer_matches_reference() -> None:
    # Many short reviews per chunk: exercises the joined path, long tokens and NUL handling.
    texts = (
        _random_strings(seed=1, n=1500) + TRICKY + ["a" * 9, "b" * 16, "c" * 17, "x" * 40, "y" * 8]
    )
    texts += ["Straße " * 3 + "supercalifragilistic", "two\x00nul\x00 \x00 tokens"]
    raw = [t.encode("utf-8") for t in texts] + [b"bad \xff byte", b"\xfe\xff"]
    corpus = tokenize_to_keys(raw)
    distinct = np.unique(corpus.keys)
    names = dict(zip(distinct.tolist(), keys_to_tokens(distinct, corpus.long_tokens), strict=True))
    for i, review in enumerate(raw):
        start, length = corpus.starts[i], corpus.lengths[i]
        got = [names[k] for k in corpus.keys[start : start + length].tolist()]
        assert got == tokenize_reference(review.decode("utf-8", errors="replace")), repr(review)
    assert corpus.n_decode_errors == 2


@pytest.mark.skipif(
    _torchtext_assets() is None,
    reason="torchtext's conformance files not found "
    "(set RNNBENCH_TORCHTEXT_ASSETS or provide ../shared/data/torchtext-basic-english)",
)
def test_torchtext_conformance_data() -> None:
    folder = _torchtext_assets()
    assert folder is not None
    with open(folder / "text_normalization_ag_news_test.csv", encoding="utf-8", newline="") as f:
        lines = [" , ".join(row) for row in csv.reader(f)]
    with open(folder / "text_normalization_ag_news_ref_results.test", encoding="utf-8") as f:
        references = [line.split() for line in f]
    assert len(lines) == len(references) == 7600
    corpus = tokenize_to_keys([line.encode() for line in lines])
    distinct = np.unique(corpus.keys)
    names = dict(zip(distinct.tolist(), keys_to_tokens(distinct, corpus.long_tokens), strict=True))
    for i, (line, reference) in enumerate(zip(lines, references, strict=True)):
        assert reference[0].startswith("__label__")
        expected = [reference[0][len("__label__") :], *reference[1:]]
        assert tokenize_reference(line) == expected, i
        assert tokenize(line) == expected, i
        keys = corpus.keys[corpus.starts[i] : corpus.starts[i] + corpus.lengths[i]].tolist()
        assert [names[k] for k in keys] == expected, i
