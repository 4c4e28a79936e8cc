"""Speed of the data pipeline's stages, each beside the straightforward implementation.

Runs on a generated corpus (no real data needed), on the CPU. Compare ``fast`` with ``baseline``
within a group: both are measured in the same session, on the same machine. The fast paths are
numpy and regex work (C loops driven from Python), so they are normalised by the geometric mean
of both calibrations; the baselines are Python loops over tokens, normalised by the Python one.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from data_pipeline import DataConfig, Vocab, build_vocab, tokenize_reference
from data_pipeline.corpus import KeyTable, keys_to_tokens, token_ranges, tokenize_to_keys
from data_pipeline.encode import encode_split
from data_pipeline.synthetic import generate_reviews
from data_pipeline.vocab import SPECIALS, select_top_tokens
from tests.benchmarks.calibration import timed

N_PER_CLASS = 1_000  # 4,000 reviews, about 0.2 million tokens
MAX_LEN = DataConfig().max_len
VOCAB_SIZE = 1_000
CPU = torch.device("cpu")
FAST_ROUNDS = 10
BASELINE_ROUNDS = 5  # the baselines take ~10x longer; their minimum settles in fewer rounds


@pytest.fixture(scope="module")
def texts() -> list[bytes]:
    reviews = generate_reviews(n_per_class_train=N_PER_CLASS, n_per_class_test=N_PER_CLASS, seed=0)
    return [r.text for r in reviews]


@pytest.fixture(scope="module")
def corpus(texts: list[bytes]):
    return tokenize_to_keys(texts)


@pytest.fixture(scope="module")
def reference_tokens(texts: list[bytes]) -> list[list[str]]:
    return [tokenize_reference(t.decode("utf-8", errors="replace")) for t in texts]


def _fast_vocab(corpus) -> tuple[Vocab, KeyTable]:
    every = np.arange(len(corpus.lengths))
    keys = corpus.keys[token_ranges(corpus.starts[every], corpus.lengths[every])]
    distinct, counts = np.unique(keys, return_counts=True)
    top = select_top_tokens(keys_to_tokens(distinct, corpus.long_tokens), counts, VOCAB_SIZE)
    vocab = Vocab([*SPECIALS, *keys_to_tokens(distinct[top], corpus.long_tokens)])
    return vocab, KeyTable(distinct[top], np.arange(2, len(vocab)))


def _fast(benchmark, fn):
    return timed(benchmark, fn, device=CPU, normalise_by="mixed", min_rounds=FAST_ROUNDS, kind="data")


def _baseline(benchmark, fn):
    return timed(
        benchmark, fn, device=CPU, normalise_by="python", min_rounds=BASELINE_ROUNDS, kind="data"
    )


@pytest.mark.benchmark(group="tokenize")
def test_tokenize_fast(benchmark, texts: list[bytes], reference_tokens: list[list[str]]) -> None:
    result = _fast(benchmark, lambda: tokenize_to_keys(texts))
    assert int(result.lengths.sum()) == sum(map(len, reference_tokens))


@pytest.mark.benchmark(group="tokenize")
def test_tokenize_baseline(benchmark, texts: list[bytes]) -> None:
    def baseline() -> list[list[str]]:
        return [tokenize_reference(t.decode("utf-8", errors="replace")) for t in texts]

    assert len(_baseline(benchmark, baseline)) == len(texts)


@pytest.mark.benchmark(group="vocab")
def test_vocab_fast(benchmark, corpus, reference_tokens: list[list[str]]) -> None:
    vocab, _ = _fast(benchmark, lambda: _fast_vocab(corpus))
    assert vocab == build_vocab(reference_tokens, VOCAB_SIZE)


@pytest.mark.benchmark(group="vocab")
def test_vocab_baseline(benchmark, reference_tokens: list[list[str]]) -> None:
    def baseline() -> list[str]:
        counter = Counter()
        for tokens in reference_tokens:
            counter.update(tokens)
        ordered = sorted(counter.items(), key=lambda x: (-x[1], x[0]))[: VOCAB_SIZE - 2]
        return ["<unk>", "<pad>", *(token for token, _ in ordered)]

    assert _baseline(benchmark, baseline) == build_vocab(reference_tokens, VOCAB_SIZE).itos


@pytest.mark.benchmark(group="encode")
def test_encode_fast(benchmark, corpus, reference_tokens: list[list[str]]) -> None:
    vocab, table = _fast_vocab(corpus)
    n = len(corpus.lengths)
    labels = np.zeros(n, dtype=np.int64)

    def fast():
        return encode_split(
            "train",
            table,
            corpus.keys,
            corpus.starts,
            corpus.lengths,
            labels=labels,
            review_ids=labels,
            stars=labels,
            max_len=MAX_LEN,
        )

    split = _fast(benchmark, fast)
    tokens, lengths = split.pad(range(n), vocab.pad_index)
    assert torch.equal(lengths, torch.tensor([min(len(t), MAX_LEN) or 1 for t in reference_tokens]))


@pytest.mark.benchmark(group="encode")
def test_encode_baseline(benchmark, reference_tokens: list[list[str]]) -> None:
    vocab = build_vocab(reference_tokens, VOCAB_SIZE)

    def baseline() -> torch.Tensor:
        tensors = [
            torch.tensor(vocab.lookup(t)[:MAX_LEN] or [0], dtype=torch.long)
            for t in reference_tokens
        ]
        return pad_sequence(tensors, batch_first=True, padding_value=vocab.pad_index)

    assert _baseline(benchmark, baseline).shape[0] == len(reference_tokens)
