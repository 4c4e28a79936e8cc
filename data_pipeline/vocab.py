"""The vocabulary: torchtext's ``build_vocab_from_iterator`` ordering, saved as a text file."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["SPECIALS", "Vocab", "build_vocab", "select_top_tokens"]

SPECIALS = ("<unk>", "<pad>")


class Vocab:
    """Token <-> id mapping with ``<unk>`` = 0 (also the id of any unknown token) and ``<pad>`` = 1.

    Attributes:
        itos: tokens in id order, specials first.
        stoi: the inverse mapping.
    """

    unk_index = 0
    pad_index = 1

    def __init__(self, itos: Sequence[str]) -> None:
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {tuple(itos[:2])}")
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary must not hold the same token twice")

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def lookup(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``unk_index``."""
        get = self.stoi.get
        return [get(token, self.unk_index) for token in tokens]

    def save(self, path: str | Path) -> None:
        """Write one token per line, in id order (UTF-8), atomically."""
        path = Path(path)
        for token in self.itos:
            # Tokens come from str.split(), so they hold no whitespace; a line break in a token
            # would break the one-token-per-line format, so refuse it rather than write garbage.
            if not token or "\n" in token or "\r" in token:
                raise ValueError(f"token {token!r} cannot be stored one per line")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text("\n".join(self.itos) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a file written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read vocabulary file {path}: {error}") from error
        # split("\n"), not splitlines(): tokens may hold characters splitlines() breaks on (\x1c).
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        try:
            return cls(lines)
        except ValueError as error:
            raise DataError(f"vocabulary file {path} is invalid: {error}") from error


def select_top_tokens(tokens: Sequence[str], counts: np.ndarray, max_tokens: int) -> list[int]:
    """Indices into ``tokens`` of the vocabulary entries after the specials, in vocabulary order.

    torchtext's rule: sort by descending count, ties by ascending string, keep the first
    ``max_tokens - len(SPECIALS)``, *then* drop any special that occurs as a text token (so the
    vocabulary can come out shorter than ``max_tokens``). Tokens with a zero count are ignored.
    Only the candidates that can make the cut are sorted.
    """
    keep = max_tokens - len(SPECIALS)
    counts = np.asarray(counts, dtype=np.int64)
    candidates = np.flatnonzero(counts > 0)
    if len(candidates) > keep:
        # Every token counted at least as often as the keep-th largest count may make the cut.
        threshold = np.partition(counts[candidates], len(candidates) - keep)[len(candidates) - keep]
        candidates = candidates[counts[candidates] >= threshold]
    candidate_counts = counts[candidates].tolist()
    order = sorted(
        range(len(candidates)), key=lambda i: (-candidate_counts[i], tokens[candidates[i]])
    )[:keep]
    return [int(candidates[i]) for i in order if tokens[candidates[i]] not in SPECIALS]


def build_vocab(token_lists: Iterable[list[str]], max_tokens: int) -> Vocab:
    """``build_vocab_from_iterator(token_lists, specials=["<unk>", "<pad>"], max_tokens=max_tokens,
    special_first=True)`` with ``<unk>`` as the default index."""
    if max_tokens <= len(SPECIALS):
        raise ValueError(f"max_tokens must exceed the {len(SPECIALS)} specials, got {max_tokens}")
    counter: Counter[str] = Counter()
    for tokens in token_lists:
        counter.update(tokens)
    tokens = list(counter)
    counts = np.fromiter(counter.values(), dtype=np.int64, count=len(tokens))
    return Vocab([*SPECIALS, *(tokens[i] for i in select_top_tokens(tokens, counts, max_tokens))])
