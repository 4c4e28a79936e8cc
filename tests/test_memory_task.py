"""The generated memory task: its label depends on the signals' order only, and a bag cannot see it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from data_pipeline.memory import (
    MemoryConfig,
    generate_memory_splits,
    inversion_parity,
    label_of,
    memory_vocab,
)


def sequences(split) -> list[np.ndarray]:
    offsets = split.offsets.numpy()
    tokens = split.tokens.numpy()
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(split))]


def test_inversion_parity_by_hand() -> None:
    rows = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [2, 0, 1]])
    # inversions: 0, 1, 3, 2
    assert inversion_parity(rows).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("n_signals", [2, 3])
def test_every_sequence_has_its_signals_t_apart_and_its_label_from_them(n_signals: int) -> None:
    config = MemoryConfig(distance=20, n_signals=n_signals, n_train=300, n_val=10, n_test=10)
    split = generate_memory_splits(config)["train"]
    for seq, label in zip(sequences(split), split.labels.tolist(), strict=True):
        where = np.flatnonzero(seq >= config.first_signal_id)
        assert len(where) == n_signals
        assert where[-1] - where[0] == config.distance
        assert len(set(seq[where].tolist())) == n_signals  # all different
        assert label_of(seq, config) == label
        assert 0 <= where[0] <= config.margin * config.distance
    assert split.labels.float().mean().item() == 0.5  # exactly balanced
    assert int(split.tokens.min()) >= 2  # never <unk> or <pad>
    assert int(split.tokens.max()) < len(memory_vocab(config))


def test_label_ignores_the_noise_and_where_the_signals_stand() -> None:
    config = MemoryConfig(distance=30, n_signals=3, n_train=50, n_val=2, n_test=2)
    rng = np.random.default_rng(1)
    for seq in sequences(generate_memory_splits(config)["train"]):
        label = label_of(seq, config)
        signal = seq >= config.first_signal_id
        shuffled = seq.copy()
        shuffled[~signal] = rng.permutation(seq[~signal])
        assert label_of(shuffled, config) == label
        # Move the signals: same symbols in the same order, at other (wider) distances.
        moved = rng.integers(2, config.first_signal_id, len(seq) * 3)
        places = np.sort(rng.choice(len(moved), size=signal.sum(), replace=False))
        moved[places] = seq[signal]
        assert label_of(moved, config) == label
        # Swapping two signals is what changes the label.
        swapped = seq.copy()
        first, second = np.flatnonzero(signal)[:2]
        swapped[[first, second]] = seq[[second, first]]
        assert label_of(swapped, config) != label


def test_generation_is_deterministic_per_seed_and_splits_differ() -> None:
    config = MemoryConfig(distance=8, n_train=20, n_val=20, n_test=20)
    one, two = generate_memory_splits(config), generate_memory_splits(config)
    assert all(np.array_equal(one[s].tokens, two[s].tokens) for s in one)
    assert not np.array_equal(one["train"].tokens[:50], one["test"].tokens[:50])
    other = generate_memory_splits(MemoryConfig(distance=8, n_train=20, n_val=20, n_test=20, seed=1))
    assert not np.array_equal(one["train"].tokens, other["train"].tokens)


def test_a_bag_of_tokens_and_bigrams_is_at_chance_at_large_t() -> None:
    config = MemoryConfig(distance=256, n_train=3_000, n_val=2, n_test=2_000)
    splits = generate_memory_splits(config)

    def as_text(split):
        return [" ".join(f"t{t}" for t in seq) for seq in sequences(split)]

    bag = CountVectorizer(ngram_range=(1, 2), token_pattern=r"\S+")
    train_x = bag.fit_transform(as_text(splits["train"]))
    classifier = LogisticRegression(C=1.0, max_iter=2_000).fit(train_x, splits["train"].labels)
    accuracy = classifier.score(bag.transform(as_text(splits["test"])), splits["test"].labels)
    # 2,000 test sequences: chance is 0.5 with a standard error of 0.011.
    assert abs(accuracy - 0.5) < 0.04, accuracy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_signals": 1}, "n_signals"), ({"alphabet": 2, "n_signals": 3}, "alphabet"),
     ({"distance": 1, "n_signals": 3}, "distance"), ({"n_test": 1}, "split")],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryConfig(**kwargs)
