"""load_imdb end to end on generated archives: splits, vocabulary, encoding, cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_pipeline import (
    DataConfig,
    DataError,
    EncodedSplit,
    build_vocab,
    load_imdb,
    make_synthetic_archive,
    tokenize_reference,
)
from data_pipeline import pipeline as pipeline_module
from data_pipeline.cache import entry_dir
from data_pipeline.synthetic import generate_reviews

SIZES = {"n_per_class_train": 60, "n_per_class_test": 40}
CONFIG = DataConfig(vocab_size=200, max_len=40, val_fraction=0.2, split_seed=3)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return make_synthetic_archive(tmp_path / "a.tar.gz", n_invalid_utf8=2, n_empty=2, **SIZES)


def _reviews_by_key() -> dict[tuple[str, int, int], bytes]:
    reviews = generate_reviews(n_invalid_utf8=2, n_empty=2, **SIZES)
    return {(r.split, r.label, r.review_id): r.text for r in reviews}


def _texts(split: EncodedSplit, origin: str) -> list[str]:
    by_key = _reviews_by_key()
    return [
        by_key[(origin, label, review_id)].decode("utf-8", errors="replace")
        for label, review_id in zip(split.labels.tolist(), split.review_ids.tolist(), strict=True)
    ]


def _reviews(split: EncodedSplit) -> list[list[int]]:
    offsets = split.offsets.tolist()
    return [split.tokens[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def test_matches_the_straightforward_pipeline(archive: Path) -> None:
    data = load_imdb(CONFIG, archive, progress=False)
    train_tokens = [tokenize_reference(t) for t in _texts(data.train, "train")]
    vocab = build_vocab(train_tokens, CONFIG.vocab_size)
    assert data.vocab.itos == vocab.itos
    for split, origin in ((data.train, "train"), (data.val, "train"), (data.test, "test")):
        tokens = [tokenize_reference(t) for t in _texts(split, origin)]
        expected = [vocab.lookup(t)[: CONFIG.max_len] or [vocab.unk_index] for t in tokens]
        assert _reviews(split) == expected
        assert split.untruncated_lengths.tolist() == [len(t) for t in tokens]
        assert split.tokens.dtype == split.offsets.dtype == split.labels.dtype == torch.int64
    assert data.n_decode_errors == 2
    assert data.pad_index == 1


def test_split_sizes_are_stratified_and_disjoint(archive: Path) -> None:
    data = load_imdb(CONFIG, archive, progress=False)
    assert (len(data.train), len(data.val), len(data.test)) == (96, 24, 80)
    assert int(data.val.labels.sum()) == 12  # half of the validation split is positive
    assert int(data.train.labels.sum()) == 48
    train_keys = set(zip(data.train.labels.tolist(), data.train.review_ids.tolist(), strict=True))
    val_keys = set(zip(data.val.labels.tolist(), data.val.review_ids.tolist(), strict=True))
    assert not train_keys & val_keys
    assert len(train_keys | val_keys) == 120
    assert (data.train.stars[data.train.labels == 1] >= 7).all()
    assert (data.train.stars[data.train.labels == 0] <= 4).all()


def test_split_seed_changes_the_validation_split_only(archive: Path) -> None:
    first = load_imdb(CONFIG, archive, progress=False)
    again = load_imdb(CONFIG, archive, progress=False)
    other = load_imdb(dataclasses.replace(CONFIG, split_seed=4), archive, progress=False)
    assert torch.equal(first.val.review_ids, again.val.review_ids)
    assert not torch.equal(first.val.review_ids, other.val.review_ids)
    assert torch.equal(first.test.tokens, again.test.tokens)
    assert torch.equal(first.test.review_ids, other.test.review_ids)


def test_vocabulary_comes_from_train_only(tmp_path: Path) -> None:
    folder = make_synthetic_archive(
        tmp_path / "x", layout="folder", n_invalid_utf8=2, n_empty=2, **SIZES
    )
    (folder / "test" / "pos" / "999_9.txt").write_text("Zyzzyva zyzzyva zyzzyva!")
    config = dataclasses.replace(CONFIG, vocab_size=10_000)  # room for every train token
    data = load_imdb(config, folder, progress=False)
    train_words = {w for t in _texts(data.train, "train") for w in tokenize_reference(t)}
    val_words = {w for t in _texts(data.val, "train") for w in tokenize_reference(t)}
    assert set(data.vocab.itos[2:]) == train_words
    assert val_words - train_words  # validation-only words exist, and are left out
    assert "zyzzyva" not in data.vocab.stoi  # so are test-only words
    assert int(data.test.tokens[data.test.offsets[-2] :].eq(0).sum()) >= 3


def test_limits_take_stratified_samples(archive: Path) -> None:
    config = dataclasses.replace(CONFIG, train_limit=50, test_limit=30)
    data = load_imdb(config, archive, progress=False)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 30)
    assert int(data.test.labels.sum()) == 15
    assert int(data.train.labels.sum()) + int(data.val.labels.sum()) == 25


def test_truncation_and_empty_reviews(archive: Path) -> None:
    data = load_imdb(CONFIG, archive, progress=False)
    lengths = torch.cat([data.train.lengths, data.val.lengths])
    untruncated = torch.cat([data.train.untruncated_lengths, data.val.untruncated_lengths])
    assert int(lengths.max()) == CONFIG.max_len
    assert (lengths >= 1).all()
    assert torch.equal(lengths, untruncated.clamp(1, CONFIG.max_len))
    empty = [
        r
        for r, n in zip(
            _reviews(data.train) + _reviews(data.val), untruncated.tolist(), strict=True
        )
        if n == 0
    ]
    assert empty == [[0], [0]]


def test_same_result_from_every_layout(tmp_path: Path) -> None:
    labeled = load_imdb(
        CONFIG, make_synthetic_archive(tmp_path / "l.tar.gz", **SIZES), progress=False
    )
    canonical = load_imdb(
        CONFIG,
        make_synthetic_archive(tmp_path / "c.tar.gz", layout="canonical", **SIZES),
        progress=False,
    )
    folder = load_imdb(
        CONFIG, make_synthetic_archive(tmp_path / "f", layout="folder", **SIZES), progress=False
    )
    assert labeled.cache_key != canonical.cache_key != folder.cache_key
    for other in (canonical, folder):
        assert other.vocab == labeled.vocab
        for name in ("train", "val", "test"):
            assert torch.equal(getattr(other, name).tokens, getattr(labeled, name).tokens)
            assert torch.equal(getattr(other, name).review_ids, getattr(labeled, name).review_ids)


def test_second_load_is_a_cache_hit_without_tokenizing(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = load_imdb(CONFIG, archive, progress=False)
    assert not cold.cache_hit
    stages = {"resolve", "cache_read", "read", "tokenize", "vocab", "encode", "cache_write"}
    assert set(cold.timings_s) == stages

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not tokenize")

    monkeypatch.setattr(pipeline_module, "tokenize_to_keys", refuse)
    warm = load_imdb(CONFIG, archive, progress=False)
    assert warm.cache_hit
    assert set(warm.timings_s) == {"resolve", "cache_read"}
    assert warm.cache_key == cold.cache_key
    assert warm.vocab == cold.vocab
    assert warm.n_decode_errors == cold.n_decode_errors == 2
    for name in ("train", "val", "test"):
        for field in ("tokens", "offsets", "labels", "review_ids", "stars", "untruncated_lengths"):
            assert torch.equal(
                getattr(getattr(warm, name), field), getattr(getattr(cold, name), field)
            )


def test_every_setting_is_part_of_the_cache_key(archive: Path) -> None:
    keys = {load_imdb(CONFIG, archive, progress=False).cache_key}
    for change in (
        {"vocab_size": 201},
        {"max_len": 41},
        {"val_fraction": 0.25},
        {"split_seed": 1},
        {"train_limit": 100},
        {"test_limit": 50},
    ):
        keys.add(
            load_imdb(dataclasses.replace(CONFIG, **change), archive, progress=False).cache_key
        )
    assert len(keys) == 7


def _corrupt_truncate(folder: Path) -> None:
    path = folder / "train.tokens.npy"
    path.write_bytes(path.read_bytes()[:-7])


def _corrupt_remove(folder: Path) -> None:
    (folder / "test.labels.npy").unlink()


def _corrupt_manifest_checksum(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["val.offsets.npy"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _corrupt_payload_same_size(folder: Path) -> None:
    path = folder / "vocab.txt"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


def _corrupt_manifest_garbage(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json")


def _corrupt_no_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_truncate,
        _corrupt_remove,
        _corrupt_manifest_checksum,
        _corrupt_payload_same_size,
        _corrupt_manifest_garbage,
        _corrupt_no_manifest,
    ],
)
def test_corrupt_cache_entry_is_rebuilt(archive: Path, corrupt) -> None:
    cold = load_imdb(CONFIG, archive, progress=False)
    folder = entry_dir(Path(pipeline_module.default_cache_dir()), cold.cache_key)
    corrupt(folder)
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = load_imdb(CONFIG, archive, progress=False)
    assert not rebuilt.cache_hit
    assert torch.equal(rebuilt.train.tokens, cold.train.tokens)
    assert rebuilt.vocab == cold.vocab
    assert load_imdb(CONFIG, archive, progress=False).cache_hit  # and the new entry is sound


def test_failed_build_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    (tmp_path / "fake.tar.gz").write_bytes(b"\x1f\x8b" + b"\0" * 50)
    with pytest.raises(DataError):
        load_imdb(CONFIG, tmp_path / "fake.tar.gz", progress=False)
    cache = Path(pipeline_module.default_cache_dir())
    assert [p for p in cache.rglob("*") if p.is_file() and p.parent.name != "locks"] == []
    assert not list((cache / "encoded").glob("*")) if (cache / "encoded").exists() else True


def test_validation_split_must_be_possible(tmp_path: Path) -> None:
    archive = make_synthetic_archive(
        tmp_path / "tiny.tar.gz", n_per_class_train=1, n_per_class_test=1
    )
    with pytest.raises(DataError, match="cannot carve a validation split"):
        load_imdb(DataConfig(val_fraction=0.1), archive, progress=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"vocab_size": 2},
        {"vocab_size": 10.5},
        {"max_len": 0},
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"val_fraction": True},
        {"split_seed": -1},
        {"train_limit": 1},
        {"test_limit": 0},
        {"train_limit": 3.0},
    ],
)
def test_config_rejects_out_of_range_values(bad: dict) -> None:
    field = next(iter(bad))
    with pytest.raises(ValueError, match=field):
        DataConfig(**bad)


def test_config_defaults() -> None:
    assert DataConfig() == DataConfig(10_000, 250, 0.1, 0, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DataConfig().max_len = 3  # type: ignore[misc]


def test_stratified_take_allocates_exactly() -> None:
    from data_pipeline.splits import split_rng, stratified_take

    labels = np.array([0] * 7 + [1] * 3)
    picked = stratified_take(labels, 5, split_rng(0, 1))
    assert len(picked) == 5 and len(set(picked.tolist())) == 5
    assert int(labels[picked].sum()) in (1, 2)  # 1.5 rounded by largest remainder
    assert np.array_equal(stratified_take(labels, 50, split_rng(0, 1)), np.arange(10))


def test_leftovers_of_a_dead_writer_are_cleaned(archive: Path) -> None:
    first = load_imdb(CONFIG, archive, progress=False)
    folder = entry_dir(Path(pipeline_module.default_cache_dir()), first.cache_key)
    stale = folder.parent / f".tmp-{first.cache_key}-deadbeef"
    stale.mkdir()
    (stale / "train.tokens.npy").write_bytes(b"half")
    import shutil

    shutil.rmtree(folder)
    assert not load_imdb(CONFIG, archive, progress=False).cache_hit
    assert not stale.exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == [first.cache_key]


def test_concurrent_loads_build_once(archive: Path) -> None:
    import threading

    results = []

    def load() -> None:
        results.append(load_imdb(CONFIG, archive, progress=False))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.cache_hit for r in results) == [False, True, True]
    assert all(torch.equal(r.train.tokens, results[0].train.tokens) for r in results)
