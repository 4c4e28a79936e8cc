"""Stratified, seeded sub-sampling and the validation split carved from train."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_take", "split_rng"]

# Separate random streams per purpose, so changing train_limit does not reshuffle the test sample.
STREAM_TRAIN_LIMIT, STREAM_VAL, STREAM_TEST_LIMIT = 1, 2, 3


def split_rng(split_seed: int, stream: int) -> np.random.Generator:
    """The generator for one purpose (``STREAM_*``) under one ``split_seed``."""
    return np.random.default_rng([split_seed, stream])


def stratified_take(labels: np.ndarray, n_take: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``n_take`` items drawn without replacement, stratified by label.

    Each class gets its proportional share; the shares are rounded by largest remainder (ties to
    the smaller label) so they add up to exactly ``n_take``.
    """
    labels = np.asarray(labels)
    n_take = min(max(int(n_take), 0), len(labels))
    classes, class_sizes = np.unique(labels, return_counts=True)
    exact = class_sizes * n_take / max(len(labels), 1)
    shares = np.floor(exact).astype(np.int64)
    short = n_take - int(shares.sum())
    if short:
        shares[np.argsort(-(exact - shares), kind="stable")[:short]] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == cls))[:share]
        for cls, share in zip(classes, shares, strict=True)
    ]
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
