"""Turn raw review bytes into token *keys*: one uint64 per token, computed with numpy.

Creating a Python object per token (13 million on IMDb) and hashing it into a dict is what makes a
straightforward pipeline slow, so tokens are never materialised one by one. A token of at most 8
bytes is identified by its UTF-8 bytes packed little-endian into a uint64 (zero-padded; such tokens
hold no NUL, so this is one-to-one). Longer tokens (about 6%) are numbered in a side table of
distinct ``bytes`` (found with a vectorized sort for up to 16 bytes) and get the key
``(number + 1) << 8``, whose low byte is zero: no packed token has that, because a packed token's
first byte is non-zero. Key ``0`` is never a token.

Reviews are joined (with a NUL byte as separator token) and normalized in bulk, exactly as
``basic_english`` does (see :mod:`.tokenizer` for why this order is equivalent): lower-case
(``bytes.translate`` for ASCII text, ``str.lower`` otherwise), delete ``"``, drop ``<br />``, turn
non-ASCII whitespace into spaces. A per-byte class table then marks separators (whitespace, ``;``,
``:``), one-character tokens (``' . , ( ) ! ?``) and word bytes, and numpy finds the boundaries.
Bytes that are not UTF-8 are replaced (U+FFFD) and the reviews holding them counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .tokenizer import ASCII_LOWER

__all__ = [
    "KeyTable",
    "TokenKeys",
    "UNICODE_SPACES",
    "keys_to_tokens",
    "token_ranges",
    "tokenize_to_keys",
]

_SEPARATOR = b" \0 "  # joins reviews; the NUL survives as a token with key 0
_SHORT = 8  # bytes that fit one uint64 key
_CHUNK_BYTES = 4 << 20  # tokenize this much text at a time (bounds temporary memory)

# The non-ASCII characters str.split() treats as whitespace (tests check this list against
# str.isspace over all of Unicode).
UNICODE_SPACES = (
    "\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
# In valid UTF-8 these byte sequences can only be those characters (UTF-8 is self-synchronizing).
_UNICODE_SPACE_BYTES = re.compile(b"|".join(re.escape(c.encode("utf-8")) for c in UNICODE_SPACES))

# Byte classes: 0 separator, 1 one-character token, 2 part of a word (incl. all non-ASCII bytes).
_CLASSES = bytes(
    0 if c in b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f;:" else 1 if c in b"'.,()!?" else 2
    for c in range(256)
)
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(_SHORT)] + [2**64 - 1], dtype=np.uint64)


@dataclass
class TokenKeys:
    """Every review's tokens as keys (see the module docstring).

    Attributes:
        keys: uint64, all reviews' tokens back to back (in an order given by ``starts``).
        starts: int64 [N], where review ``i`` begins in ``keys``.
        lengths: int64 [N], how many tokens review ``i`` has (before any truncation).
        long_tokens: the tokens longer than 8 bytes; key ``(j + 1) << 8`` is ``long_tokens[j]``.
        n_decode_errors: reviews that held bytes that are not UTF-8.
    """

    keys: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    long_tokens: list[bytes]
    n_decode_errors: int


def token_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] .. starts[i] + lengths[i] - 1`` of every ``i``, concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    begins_out = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(begins_out - starts, lengths)


def _normalize(texts: list[bytes]) -> tuple[bytes, int]:
    """The reviews joined by ``_SEPARATOR`` and normalized (up to the punctuation split), plus the
    number of reviews that were not valid UTF-8."""
    joined = _SEPARATOR.join(texts)
    if joined.isascii():
        return joined.translate(ASCII_LOWER, b'"').replace(b"<br />", b" "), 0
    n_errors = 0
    try:
        text = joined.decode("utf-8")
    except UnicodeDecodeError:
        decoded = []
        for raw in texts:
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(raw.decode("utf-8", errors="replace"))
                n_errors += 1
        text = _SEPARATOR.decode().join(decoded)
    # Non-ASCII spaces become ' ' only after <br /> is removed, as in basic_english, where the
    # whitespace pass comes last (so "<br\u3000/>" is not a line break).
    normalized = text.lower().encode("utf-8").translate(None, b'"').replace(b"<br />", b" ")
    return _UNICODE_SPACE_BYTES.sub(b" ", normalized), n_errors


def _bounds(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) byte offsets of the tokens of normalized ``text``."""
    cls = np.frombuffer(text.translate(_CLASSES), dtype=np.uint8)
    word = cls == 2
    starts = cls == 1
    ends = starts.copy()
    starts[:1] |= word[:1]
    starts[1:] |= word[1:] > word[:-1]
    ends[-1:] |= word[-1:]
    ends[:-1] |= word[:-1] > word[1:]
    return np.flatnonzero(starts), np.flatnonzero(ends) + 1


def _distinct_rows(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a uint64 [n, 2] array and each row's index among them (sort based)."""
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    ordered = pairs[order]
    new = np.ones(len(pairs), dtype=bool)
    new[1:] = (ordered[1:, 0] != ordered[:-1, 0]) | (ordered[1:, 1] != ordered[:-1, 1])
    inverse = np.empty(len(pairs), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _pack(
    text: bytes, starts: np.ndarray, ends: np.ndarray, long_index: dict[bytes, int]
) -> np.ndarray:
    """Keys of the tokens ``text[starts[i]:ends[i]]`` (which must hold no NUL byte, except the
    one-byte separator token); long tokens are numbered in ``long_index``."""
    padded = np.frombuffer(text + bytes(2 * _SHORT), dtype=np.uint8)
    # Every byte offset read as an unaligned little-endian uint64 (a view, no copy).
    words = np.ndarray(
        shape=(len(text) + _SHORT + 1,), dtype="<u8", buffer=padded.data, strides=(1,)
    )
    lengths = ends - starts
    keys = words[starts] & _MASKS[np.minimum(lengths, _SHORT)]
    long_positions = np.flatnonzero(lengths > _SHORT)
    if not len(long_positions):
        return keys
    long_starts, long_lengths = starts[long_positions], lengths[long_positions]
    pairs = np.empty((len(long_positions), 2), dtype=np.uint64)
    pairs[:, 0] = keys[long_positions]
    pairs[:, 1] = words[long_starts + _SHORT] & _MASKS[np.minimum(long_lengths - _SHORT, _SHORT)]
    numbers = np.empty(len(long_positions), dtype=np.uint64)
    fits = long_lengths <= 2 * _SHORT
    if fits.any():
        distinct, inverse = _distinct_rows(pairs[fits])
        # numpy's fixed-width bytes type drops trailing NULs: exactly the zero padding.
        tokens = distinct.view("S16").ravel().tolist()
        table = np.array(
            [long_index.setdefault(t, len(long_index)) for t in tokens], dtype=np.uint64
        )
        numbers[fits] = table[inverse]
    for i in np.flatnonzero(~fits).tolist():  # over 16 bytes: a handful per thousand reviews
        token = text[int(long_starts[i]) : int(long_starts[i] + long_lengths[i])]
        numbers[i] = long_index.setdefault(token, len(long_index))
    keys[long_positions] = (numbers + np.uint64(1)) << np.uint64(8)
    return keys


def _tokenize_joined(
    texts: list[bytes], long_index: dict[bytes, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keys, per-review token counts and decode-error count of reviews holding no NUL byte."""
    text, n_errors = _normalize(texts)
    starts, ends = _bounds(text)
    keys = _pack(text, starts, ends, long_index)
    separators = np.flatnonzero(keys == 0)
    lengths = np.diff(separators, prepend=-1, append=len(keys)) - 1
    return keys[keys != 0], lengths, n_errors


def _tokenize_with_nul(
    raw: bytes, long_index: dict[bytes, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keys of one review that contains NUL bytes (rare): tokens holding a NUL are stored as long
    tokens, since zero padding would make them ambiguous."""
    text, n_errors = _normalize([raw])
    starts, ends = _bounds(text)
    keys = np.empty(len(starts), dtype=np.uint64)
    plain = np.array(
        [b"\0" not in text[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)],
        dtype=bool,
    )
    keys[plain] = _pack(text, starts[plain], ends[plain], long_index)
    for i in np.flatnonzero(~plain).tolist():
        number = long_index.setdefault(text[starts[i] : ends[i]], len(long_index))
        keys[i] = np.uint64(number + 1) << np.uint64(8)
    return keys, np.array([len(keys)], dtype=np.int64), n_errors


def _chunks(indices: list[int], texts: list[bytes]) -> list[list[int]]:
    chunks, current, size = [], [], 0
    for i in indices:
        current.append(i)
        size += len(texts[i])
        if size >= _CHUNK_BYTES:
            chunks.append(current)
            current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


def tokenize_to_keys(texts: list[bytes]) -> TokenKeys:
    """Tokenize every review (``basic_english``) into token keys.

    Single-threaded on purpose: with the per-token work in numpy, the whole IMDb corpus takes
    about 1.5 s here, and neither a fork pool (results must be pickled back) nor threads (the
    ``bytes`` methods hold the GIL) measured faster on two shared cores.
    """
    # ASCII and non-ASCII reviews go to separate chunks so that ASCII chunks take the fast path.
    plain_ascii, plain_other, with_nul = [], [], []
    for i, text in enumerate(texts):
        if b"\0" in text:
            with_nul.append(i)
        else:
            (plain_ascii if text.isascii() else plain_other).append(i)
    long_index: dict[bytes, int] = {}

    def run(members: list[int]) -> tuple[list[int], np.ndarray, np.ndarray, int]:
        if len(members) == 1 and b"\0" in texts[members[0]]:
            return members, *_tokenize_with_nul(texts[members[0]], long_index)
        return members, *_tokenize_joined([texts[i] for i in members], long_index)

    jobs = _chunks(plain_ascii, texts) + _chunks(plain_other, texts) + [[i] for i in with_nul]
    results = [run(job) for job in jobs]

    starts = np.zeros(len(texts), dtype=np.int64)
    lengths = np.zeros(len(texts), dtype=np.int64)
    position = 0
    for members, keys, chunk_lengths, _ in results:
        order = np.array(members, dtype=np.int64)
        lengths[order] = chunk_lengths
        starts[order] = position + np.cumsum(chunk_lengths) - chunk_lengths
        position += len(keys)
    return TokenKeys(
        keys=np.concatenate([r[1] for r in results]) if results else np.empty(0, dtype=np.uint64),
        starts=starts,
        lengths=lengths,
        long_tokens=list(long_index),
        n_decode_errors=sum(r[3] for r in results),
    )


def keys_to_tokens(keys: np.ndarray, long_tokens: list[bytes]) -> list[str]:
    """The token each key stands for."""
    keys = np.asarray(keys, dtype=np.uint64)
    # numpy's fixed-width bytes type drops trailing NULs: exactly the padding of a packed key.
    tokens: list[bytes] = keys.astype("<u8").view("S8").tolist()
    for position in np.flatnonzero((keys & np.uint64(0xFF)) == 0).tolist():
        tokens[position] = long_tokens[(int(keys[position]) >> 8) - 1]
    return [token.decode("utf-8") for token in tokens]


class KeyTable:
    """Maps token keys to ids, vectorized: an open-addressing hash table held in numpy arrays.

    Unknown keys map to ``default``. At a load factor under 1/16 nearly every lookup is settled by
    the first probe, so a lookup costs a few passes over the query array.
    """

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, keys: np.ndarray, ids: np.ndarray, default: int = 0) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        if (keys == 0).any():
            raise ValueError("key 0 marks empty slots and cannot be stored")
        self._bits = max(10, int(len(keys) * 16 - 1).bit_length())
        size = 1 << self._bits
        self._keys = np.zeros(size, dtype=np.uint64)
        self._ids = np.full(size, default, dtype=np.int64)
        self.default = default
        slots = self._slots(keys)
        for key, slot, value in zip(
            keys.tolist(), slots.tolist(), np.asarray(ids).tolist(), strict=True
        ):
            while self._keys[slot] not in (0, key):
                slot = (slot + 1) & (size - 1)
            self._keys[slot] = key
            self._ids[slot] = value

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * self._MULTIPLIER) >> np.uint64(64 - self._bits)).astype(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """int64 ids of ``keys`` (``default`` for keys not in the table)."""
        keys = np.asarray(keys, dtype=np.uint64)
        slots = self._slots(keys)
        found = self._keys[slots]
        ids = np.where(found == keys, self._ids[slots], self.default)
        # Keys whose first slot holds another key probe on, linearly, until a hit or an empty slot.
        pending = np.flatnonzero((found != keys) & (found != 0))
        mask = (1 << self._bits) - 1
        while len(pending):
            slots[pending] = (slots[pending] + 1) & mask
            probe = slots[pending]
            found = self._keys[probe]
            hit = found == keys[pending]
            ids[pending[hit]] = self._ids[probe[hit]]
            pending = pending[~hit & (found != 0)]
        return ids
