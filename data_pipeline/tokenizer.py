"""torchtext's ``basic_english`` tokenizer, token for token, without torchtext.

``basic_english`` lower-cases a line, applies twelve regex substitutions *in order*, then splits on
whitespace. Order matters: ``"`` is deleted before ``<br />`` is matched (so ``<br "/>`` is a line
break), while ``;`` and ``:`` become spaces only afterwards (so ``<br;/>`` is not).

:func:`tokenize_reference` is the literal twelve-pass implementation, kept as the oracle for tests
and the baseline for benchmarks. :func:`tokenize` computes the same thing with plain string
replacements; :mod:`.corpus` does it for many reviews at once with numpy. Why the reordering is
exact: the single-character rules for ``' " . , ( ) ! ?`` keep their own
character in the output (or, for ``"``, only delete), so none of them can create or destroy a
``<br />`` except the deletion of ``"``, which the reference also performs first. The rules that
turn ``;`` and ``:`` into spaces *can* create ``<br />``, so they run after the ``<br />`` pass, as in
the reference. The final ``\\s+`` -> ``' '`` pass cannot change what ``str.split()`` returns.
"""

from __future__ import annotations

import re

__all__ = ["ASCII_LOWER", "tokenize", "tokenize_reference"]

# torchtext.data.utils._basic_english_normalize, verbatim patterns and replacements.
_REFERENCE_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in zip(
        [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"],
        [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "],
        strict=True,
    )
]


def tokenize_reference(text: str) -> list[str]:
    """The straightforward ``basic_english``: lower-case, twelve regex passes, whitespace split."""
    line = text.lower()
    for pattern, replacement in _REFERENCE_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def tokenize(text: str) -> list[str]:
    """Tokenize one review exactly like torchtext's ``basic_english`` (see the module docstring)."""
    return (
        text.lower()
        .replace('"', "")
        .replace("'", " ' ")
        .replace(".", " . ")
        .replace(",", " , ")
        .replace("(", " ( ")
        .replace(")", " ) ")
        .replace("!", " ! ")
        .replace("?", " ? ")
        .replace("<br />", " ")
        .replace(";", " ")
        .replace(":", " ")
        .split()
    )


# bytes.translate table doing what str.lower() does to ASCII text (used by the bulk tokenizer).
ASCII_LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))
