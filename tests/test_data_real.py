"""The pipeline on the real IMDb archive ($RNNBENCH_IMDB); skipped when it is not available."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from data_pipeline import DataConfig, load_imdb, tokenize_reference
from data_pipeline.reader import read_archive, read_folder

pytestmark = pytest.mark.real_data


def test_real_archive_default_splits_and_cache(real_imdb: Path) -> None:
    cold = load_imdb(DataConfig(), real_imdb, progress=False)
    assert (len(cold.train), len(cold.val), len(cold.test)) == (22_500, 2_500, 25_000)
    for split in (cold.train, cold.val, cold.test):
        assert int(split.labels.sum()) * 2 == len(split)  # balanced classes, stratified split
        assert int(split.lengths.max()) == 250 and int(split.lengths.min()) >= 1
    assert len(cold.vocab) == 10_000
    assert cold.vocab.itos[:4] == ["<unk>", "<pad>", "the", "."]
    assert not cold.cache_hit

    # Spot-check 200 reviews of every split against the straightforward tokenizer.
    reviews = read_archive(real_imdb) if real_imdb.is_file() else read_folder(real_imdb)
    text_of = {
        (int(s), int(lab), int(i)): t
        for s, lab, i, t in zip(
            reviews.split, reviews.label, reviews.review_id, reviews.texts, strict=True
        )
    }
    rng = random.Random(0)
    for split, code in ((cold.train, 0), (cold.val, 0), (cold.test, 1)):
        for i in rng.sample(range(len(split)), 200):
            text = text_of[(code, int(split.labels[i]), int(split.review_ids[i]))].decode(
                "utf-8", "replace"
            )
            tokens = tokenize_reference(text)
            expected = cold.vocab.lookup(tokens)[:250] or [0]
            assert split.tokens[split.offsets[i] : split.offsets[i + 1]].tolist() == expected
            assert int(split.untruncated_lengths[i]) == len(tokens)

    warm = load_imdb(DataConfig(), real_imdb, progress=False)
    assert warm.cache_hit
    assert torch.equal(warm.test.tokens, cold.test.tokens)
    assert sum(warm.timings_s.values()) < sum(cold.timings_s.values())
