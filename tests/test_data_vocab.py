"""Vocabulary: torchtext's build_vocab_from_iterator ordering, save and load."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from data_pipeline import DataError, Vocab, build_vocab
from data_pipeline.vocab import select_top_tokens


def _torchtext_reference(token_lists: list[list[str]], max_tokens: int) -> list[str]:
    """build_vocab_from_iterator + vocab(), transcribed from torchtext 0.18."""
    counter = Counter()
    for tokens in token_lists:
        counter.update(tokens)
    ordered = sorted(counter.items(), key=lambda x: (-x[1], x[0]))[: max_tokens - 2]
    kept = dict(ordered)
    for special in ("<unk>", "<pad>"):
        kept.pop(special, None)
    return ["<unk>", "<pad>", *kept]


def test_order_is_count_descending_then_string_ascending() -> None:
    vocab = build_vocab([["b", "a", "c", "b"], ["c", "d", "b", "a", "e"]], max_tokens=5)
    assert vocab.itos == ["<unk>", "<pad>", "b", "a", "c"]
    assert len(vocab) == 5  # max_tokens counts the specials
    assert (vocab.unk_index, vocab.pad_index) == (0, 1)


def test_unknown_tokens_map_to_unk() -> None:
    vocab = build_vocab([["x", "y", "x"]], max_tokens=10)
    assert vocab.lookup(["x", "zzz", "y"]) == [2, 0, 3]
    assert len(vocab) == 4  # fewer distinct tokens than max_tokens


def test_special_in_text_is_dropped_after_the_cut_like_torchtext() -> None:
    lists = [["<unk>", "<unk>", "<unk>", "a", "a", "b"]]
    vocab = build_vocab(lists, max_tokens=4)
    assert vocab.itos == _torchtext_reference(lists, 4) == ["<unk>", "<pad>", "a"]


def test_matches_torchtext_on_random_corpora() -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)] + ["<pad>", "Z", "é", "a b"]
    for trial in range(20):
        lists = [
            [words[int(i)] for i in rng.zipf(1.3, size=int(rng.integers(0, 40))) % len(words)]
            for _ in range(50)
        ]
        max_tokens = int(rng.integers(3, 120))
        assert build_vocab(lists, max_tokens).itos == _torchtext_reference(lists, max_tokens), trial


def test_select_top_tokens_ignores_zero_counts_and_handles_ties_at_the_cut() -> None:
    tokens = ["d", "c", "b", "a", "zero"]
    counts = np.array([2, 2, 2, 5, 0])
    assert select_top_tokens(tokens, counts, max_tokens=4) == [3, 2]  # a(5), then b of the tied
    assert select_top_tokens(tokens, counts, max_tokens=50) == [3, 2, 1, 0]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vocab = build_vocab([["naïve", "x", "tab-free", "😀"]], max_tokens=10)
    vocab.save(tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:2] == [
        "<unk>",
        "<pad>",
    ]
    loaded = Vocab.load(tmp_path / "vocab.txt")
    assert loaded == vocab
    assert loaded.stoi == vocab.stoi


def test_load_rejects_a_file_that_is_not_a_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="invalid"):
        Vocab.load(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="cannot read"):
        Vocab.load(tmp_path / "missing.txt")


def test_rejects_duplicates_and_too_small_max_tokens() -> None:
    with pytest.raises(ValueError, match="twice"):
        Vocab(["<unk>", "<pad>", "a", "a"])
    with pytest.raises(ValueError, match="max_tokens"):
        build_vocab([["a"]], max_tokens=2)
