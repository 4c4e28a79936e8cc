"""``load_imdb``: source -> reviews -> tokens -> vocabulary (train only) -> encoded, cached splits."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import portalocker

from . import cache
from .config import DataConfig
from .corpus import KeyTable, keys_to_tokens, token_ranges, tokenize_to_keys
from .encode import EncodedSplit, encode_split
from .errors import DataError
from .reader import RawReviews, read_archive, read_folder
from .source import Source, default_cache_dir, resolve_source
from .splits import (
    STREAM_TEST_LIMIT,
    STREAM_TRAIN_LIMIT,
    STREAM_VAL,
    split_rng,
    stratified_take,
)
from .vocab import SPECIALS, Vocab, select_top_tokens

__all__ = ["ImdbData", "load_imdb"]

_LOCK_TIMEOUT_S = 1800.0  # another process building the same entry: wait, then use its result


@dataclass(frozen=True)
class ImdbData:
    """The encoded IMDb splits and how they were made.

    Attributes:
        train, val, test: the encoded splits (val is carved from train; test is never used for
            selection).
        vocab: built on ``train`` only.
        source: where the reviews came from.
        config: the settings that produced this.
        cache_key: the key of the on-disk cache entry.
        cache_hit: whether the splits were loaded from the cache (no tokenizing).
        timings_s: seconds per stage of this call: ``resolve`` (locate, download, checksum), then
            ``cache_read`` on a cache hit, else ``read``, ``tokenize``, ``vocab``, ``encode`` and
            ``cache_write``. The stages cover the whole call, so their sum is its duration.
        n_decode_errors: reviews (among those selected) holding bytes that are not UTF-8; they
            were decoded with replacement characters.
    """

    train: EncodedSplit
    val: EncodedSplit
    test: EncodedSplit
    vocab: Vocab
    source: Source
    config: DataConfig
    cache_key: str
    cache_hit: bool
    timings_s: dict[str, float] = field(default_factory=dict)
    n_decode_errors: int = 0

    @property
    def pad_index(self) -> int:
        """The id of ``<pad>``."""
        return self.vocab.pad_index


class _Stopwatch:
    def __init__(self) -> None:
        self.timings_s: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[name] = self.timings_s.get(name, 0.0) + time.perf_counter() - start


def _select(reviews: RawReviews, config: DataConfig) -> dict[str, np.ndarray]:
    """Row numbers (into ``reviews``) of each split."""
    train_rows = np.flatnonzero(reviews.split == 0)
    test_rows = np.flatnonzero(reviews.split == 1)
    if config.train_limit is not None:
        rng = split_rng(config.split_seed, STREAM_TRAIN_LIMIT)
        train_rows = train_rows[stratified_take(reviews.label[train_rows], config.train_limit, rng)]
    if config.test_limit is not None:
        rng = split_rng(config.split_seed, STREAM_TEST_LIMIT)
        test_rows = test_rows[stratified_take(reviews.label[test_rows], config.test_limit, rng)]
    n_val = round(config.val_fraction * len(train_rows))
    if not 0 < n_val < len(train_rows):
        raise DataError(
            f"cannot carve a validation split of {config.val_fraction:g} from {len(train_rows)} "
            "train reviews; use more train reviews (train_limit) or another val_fraction"
        )
    val_positions = stratified_take(
        reviews.label[train_rows], n_val, split_rng(config.split_seed, STREAM_VAL)
    )
    is_val = np.zeros(len(train_rows), dtype=bool)
    is_val[val_positions] = True
    return {"train": train_rows[~is_val], "val": train_rows[is_val], "test": test_rows}


def _read_and_encode(
    source: Source, config: DataConfig, watch: _Stopwatch
) -> tuple[dict[str, EncodedSplit], Vocab, int]:
    """Read the source, split it, build the vocabulary on train and encode every split."""
    with watch.stage("read"):
        reviews = (
            read_archive(source.path) if source.kind == "archive" else read_folder(source.path)
        )
        rows = _select(reviews, config)
        # Only the selected reviews are tokenized; `used` maps them to positions in `texts`.
        used = np.concatenate([rows["train"], rows["val"], rows["test"]])
        texts = [reviews.texts[i] for i in used]
        reviews.texts = []  # the selected texts live on in `texts`; free the rest early
    with watch.stage("tokenize"):
        corpus = tokenize_to_keys(texts)
        del texts
    position = {}
    start = 0
    for name in ("train", "val", "test"):
        position[name] = np.arange(start, start + len(rows[name]))
        start += len(rows[name])
    with watch.stage("vocab"):
        train = position["train"]
        train_keys = corpus.keys[token_ranges(corpus.starts[train], corpus.lengths[train])]
        distinct, counts = np.unique(train_keys, return_counts=True)
        top = select_top_tokens(
            keys_to_tokens(distinct, corpus.long_tokens), counts, config.vocab_size
        )
        vocab_keys = distinct[top]
        vocab = Vocab([*SPECIALS, *keys_to_tokens(vocab_keys, corpus.long_tokens)])
        table = KeyTable(vocab_keys, np.arange(len(SPECIALS), len(vocab)), default=Vocab.unk_index)
    with watch.stage("encode"):
        splits = {
            name: encode_split(
                name,
                table,
                corpus.keys,
                corpus.starts[position[name]],
                corpus.lengths[position[name]],
                labels=reviews.label[rows[name]],
                review_ids=reviews.review_id[rows[name]],
                stars=reviews.stars[rows[name]],
                max_len=config.max_len,
                unk_index=Vocab.unk_index,
            )
            for name in ("train", "val", "test")
        }
    return splits, vocab, corpus.n_decode_errors


def _acquire_lock(cache_dir: Path, key: str) -> portalocker.Lock | None:
    """The lock guarding the build of entry ``key``, held; ``None`` (no caching) if the cache folder
    is not writable or the lock is not granted in time."""
    try:
        (cache_dir / "locks").mkdir(parents=True, exist_ok=True)
        lock = portalocker.Lock(
            cache_dir / "locks" / f"encoded-{key}.lock", mode="a", timeout=_LOCK_TIMEOUT_S
        )
        lock.acquire()
        return lock
    except (OSError, portalocker.LockException) as error:
        warnings.warn(f"not caching the encoded dataset in {cache_dir} ({error})", stacklevel=3)
        return None


def _try_load(cache_dir: Path, key: str) -> tuple[dict[str, EncodedSplit], Vocab, dict] | None:
    """The cached entry, or ``None`` if there is none; a corrupt entry is removed (and a warning
    issued) so that it gets rebuilt."""
    try:
        return cache.load_entry(cache_dir, key)
    except FileNotFoundError:
        return None
    except cache.CacheCorrupt as error:
        warnings.warn(
            f"dataset cache entry {cache.entry_dir(cache_dir, key)} is corrupt ({error}); "
            "rebuilding it",
            stacklevel=3,
        )
        cache.remove_entry(cache_dir, key)
        return None


def _store(
    cache_dir: Path, key: str, splits: dict[str, EncodedSplit], vocab: Vocab, metadata: dict
) -> None:
    cache.remove_stale_temps(cache_dir, key)
    try:
        cache.save_entry(cache_dir, key, splits, vocab, metadata)
    except OSError as error:
        warnings.warn(f"could not write the dataset cache in {cache_dir}: {error}", stacklevel=3)


def load_imdb(
    config: DataConfig = DataConfig(),  # noqa: B008 (frozen, so a shared default is safe)
    data: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ImdbData:
    """Load the encoded IMDb splits, from the cache when an entry for this source and config
    exists, else by reading, tokenizing and encoding the reviews (then caching the result).

    ``data`` and ``cache_dir`` are as in :func:`resolve_source`; the encoded cache lives under
    ``cache_dir/encoded/`` (default :func:`default_cache_dir`). Concurrent calls for the same entry
    build it once: the others wait on a lock in ``cache_dir/locks/`` and then read it.

    Raises:
        DataError: the data cannot be found, downloaded or read (see :func:`resolve_source`).
    """
    watch = _Stopwatch()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    with watch.stage("resolve"):
        source = resolve_source(data, cache_dir=cache_dir, progress=progress)
        key = cache.cache_key(source.checksum, config)

    def result(loaded: tuple[dict[str, EncodedSplit], Vocab, dict], cache_hit: bool) -> ImdbData:
        splits, vocab, metadata = loaded
        return ImdbData(
            train=splits["train"],
            val=splits["val"],
            test=splits["test"],
            vocab=vocab,
            source=source,
            config=config,
            cache_key=key,
            cache_hit=cache_hit,
            timings_s=watch.timings_s,
            n_decode_errors=int(metadata["n_decode_errors"]),
        )

    with watch.stage("cache_read"):
        loaded = _try_load(cache_dir, key)
        if loaded is not None:
            return result(loaded, cache_hit=True)
        lock = _acquire_lock(cache_dir, key)
    try:
        if lock is not None:
            with watch.stage("cache_read"):
                loaded = _try_load(cache_dir, key)  # built by another process while this waited?
            if loaded is not None:
                return result(loaded, cache_hit=True)
        splits, vocab, n_errors = _read_and_encode(source, config, watch)
        metadata = {"n_decode_errors": n_errors, "source_checksum": source.checksum}
        if lock is not None:
            with watch.stage("cache_write"):
                _store(cache_dir, key, splits, vocab, metadata)
    finally:
        if lock is not None:
            lock.release()
    return result((splits, vocab, metadata), cache_hit=False)
