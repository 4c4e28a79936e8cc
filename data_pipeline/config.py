"""What produces an encoded dataset: the settings, and the pipeline version that interprets them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PIPELINE_VERSION", "DataConfig"]

# Part of every cache key: bump it whenever a change alters the encoded output (tokenizer, vocab
# ordering, split rules, cache layout), so stale cache entries are never read back.
PIPELINE_VERSION = 1

_N_SPECIALS = 2  # <unk>, <pad>


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DataConfig:
    """Settings of the IMDb pipeline; every field takes part in the cache key.

    Attributes:
        vocab_size: vocabulary size including the two specials (torchtext's ``max_tokens``).
        max_len: reviews are truncated to their first ``max_len`` token ids.
        val_fraction: share of the (sub-sampled) train split carved out, stratified, for validation.
        split_seed: seeds the sub-sampling and the validation split (separate from model seeds).
        train_limit: if set, a stratified sub-sample of this many train reviews is taken before the
            validation split is carved.
        test_limit: if set, a stratified sub-sample of this many test reviews.
    """

    vocab_size: int = 10_000
    max_len: int = 250
    val_fraction: float = 0.1
    split_seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.vocab_size) or self.vocab_size <= _N_SPECIALS:
            raise ValueError(
                f"vocab_size must be an integer > {_N_SPECIALS} (it counts <unk> and <pad>), "
                f"got {self.vocab_size!r}"
            )
        if not _is_int(self.max_len) or self.max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1, got {self.max_len!r}")
        if (
            isinstance(self.val_fraction, bool)
            or not isinstance(self.val_fraction, (int, float))
            or not 0.0 < self.val_fraction < 1.0
        ):
            raise ValueError(
                f"val_fraction must be a number strictly between 0 and 1, got {self.val_fraction!r}"
            )
        if not _is_int(self.split_seed) or self.split_seed < 0:
            raise ValueError(f"split_seed must be an integer >= 0, got {self.split_seed!r}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 2):
                raise ValueError(
                    f"{name} must be None or an integer >= 2 (one review per class), got {value!r}"
                )
