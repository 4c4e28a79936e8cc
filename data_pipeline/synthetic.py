"""A small, generated IMDb look-alike for tests and benchmarks (no real review text).

Reviews are made of made-up filler words with sentiment words of their class mixed in, so a model
can learn the labels; they carry what the tokenizer must handle (``<br />`` tags, quotes,
apostrophes, parentheses, ``!?;:``, digits, hyphens, some non-ASCII letters). The archive uses the
aclImdb layout and naming (``aclImdb/train/pos/<id>_<stars>.txt``; stars 7-10 for pos, 1-4 for
neg) and is byte-for-byte deterministic given its arguments.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SyntheticReview",
    "generate_reviews",
    "make_synthetic_archive",
    "POSITIVE_WORDS",
    "NEGATIVE_WORDS",
]

POSITIVE_WORDS = (
    "great",
    "wonderful",
    "excellent",
    "brilliant",
    "loved",
    "superb",
    "moving",
    "delightful",
)
NEGATIVE_WORDS = ("awful", "boring", "terrible", "worst", "waste", "dull", "clumsy", "hated")
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ven",
    "tor",
    "sa",
    "re",
    "bu",
    "ni",
    "pel",
    "dra",
    "so",
    "quin",
    "ta",
)
_EXTRAS = (
    "didn't",
    "it's",
    "(really)",
    "wow!",
    "why?",
    "well:",
    "so;",
    '"quoted"',
    "e.g.",
    "3.5/10",
    "x-ray",
    "10/10",
    "...",
    "--",
    "'single'",
    "<br/>",
    "<BR />",
)
_NON_ASCII = ("naïve", "café", "—", "Zoë", "déjà-vu", "ÉCLAIR", "straße", "İstanbul")
_N_FILLER = 3_000  # made-up words; Zipf-distributed, so most are rare, as in real text
_MTIME = 1_300_000_000  # fixed, so archives are reproducible
_LAYOUTS = ("labeled", "canonical", "folder")


@dataclass(frozen=True)
class SyntheticReview:
    """One generated review: ``split`` is ``"train"``/``"test"``, ``label`` 1 = pos, 0 = neg."""

    split: str
    label: int
    review_id: int
    stars: int
    text: bytes

    @property
    def member_name(self) -> str:
        """Its path inside the aclImdb folder."""
        return f"{self.split}/{'pos' if self.label else 'neg'}/{self.review_id}_{self.stars}.txt"


def _filler_words() -> list[str]:
    rng = np.random.default_rng(12345)  # fixed: the filler vocabulary does not vary with seed
    words: set[str] = set()
    while len(words) < _N_FILLER:
        n = int(rng.integers(1, 5))
        words.add("".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), n)))
    return sorted(words)


_FILLER = _filler_words()
_FILLER_WEIGHTS = 1.0 / np.arange(1, len(_FILLER) + 1)  # Zipf: a realistic long tail
_FILLER_WEIGHTS /= _FILLER_WEIGHTS.sum()


def _review_text(rng: np.random.Generator, label: int) -> str:
    own, other = (POSITIVE_WORDS, NEGATIVE_WORDS) if label else (NEGATIVE_WORDS, POSITIVE_WORDS)
    sentences = []
    for _ in range(int(rng.integers(1, 9))):
        words = [
            _FILLER[i]
            for i in rng.choice(len(_FILLER), int(rng.integers(3, 15)), p=_FILLER_WEIGHTS)
        ]
        for _ in range(int(rng.integers(0, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), own[int(rng.integers(len(own)))])
        if rng.random() < 0.15:
            words.insert(int(rng.integers(0, len(words) + 1)), other[int(rng.integers(len(other)))])
        if rng.random() < 0.4:
            words.insert(
                int(rng.integers(0, len(words) + 1)), _EXTRAS[int(rng.integers(len(_EXTRAS)))]
            )
        if rng.random() < 0.05:
            words.insert(
                int(rng.integers(0, len(words) + 1)), _NON_ASCII[int(rng.integers(len(_NON_ASCII)))]
            )
        sentence = " ".join(words)
        sentences.append(sentence[:1].upper() + sentence[1:] + ".!?"[int(rng.integers(3))])
    # The sentiment signal is guaranteed even in a one-sentence review.
    sentences.append(
        f"{own[int(rng.integers(len(own)))].capitalize()}, {own[int(rng.integers(len(own)))]}."
    )
    separators = rng.choice(
        [" ", "  ", "<br /><br />", "\n"], len(sentences) - 1, p=[0.6, 0.1, 0.25, 0.05]
    )
    text = sentences[0]
    for separator, sentence in zip(separators, sentences[1:], strict=True):
        text += str(separator) + sentence
    return text


def generate_reviews(
    *,
    n_per_class_train: int = 100,
    n_per_class_test: int = 100,
    seed: int = 0,
    n_invalid_utf8: int = 0,
    n_empty: int = 0,
) -> list[SyntheticReview]:
    """The reviews :func:`make_synthetic_archive` writes, in (split, label, id) order.

    ``n_invalid_utf8`` train reviews get a ``0xff`` byte (not UTF-8) injected; ``n_empty`` other
    train reviews are empty files.
    """
    rng = np.random.default_rng(seed)
    reviews = []
    for split, n in (("train", n_per_class_train), ("test", n_per_class_test)):
        for label in (0, 1):
            for review_id in range(n):
                stars = int(rng.integers(7, 11)) if label else int(rng.integers(1, 5))
                text = _review_text(rng, label).encode("utf-8")
                reviews.append(SyntheticReview(split, label, review_id, stars, text))
    n_train = 2 * n_per_class_train
    if n_invalid_utf8 + n_empty > n_train:
        raise ValueError("n_invalid_utf8 + n_empty exceeds the number of train reviews")
    chosen = rng.permutation(n_train)
    for k, i in enumerate(chosen[: n_invalid_utf8 + n_empty]):
        review = reviews[int(i)]
        if k < n_invalid_utf8:
            cut = len(review.text) // 2
            text = review.text[:cut] + b" caf\xff " + review.text[cut:]
        else:
            text = b""
        reviews[int(i)] = SyntheticReview(
            review.split, review.label, review.review_id, review.stars, text
        )
    return reviews


def _extra_files(
    reviews: list[SyntheticReview], layout: str, rng: np.random.Generator
) -> dict[str, bytes]:
    files = {
        "README": b"Synthetic stand-in for the Large Movie Review Dataset (generated for tests).\n",
        "imdb.vocab": "\n".join(_FILLER + list(POSITIVE_WORDS + NEGATIVE_WORDS)).encode() + b"\n",
        "imdbEr.txt": "\n".join(f"{x:.4f}" for x in rng.normal(size=20)).encode() + b"\n",
    }
    if layout == "canonical":
        n_unsup = sum(r.split == "train" for r in reviews) // 2 or 1
        for i in range(n_unsup):
            files[f"train/unsup/{i}_0.txt"] = _review_text(rng, int(rng.integers(2))).encode()
        for split in ("train", "test"):
            feats = "\n".join(
                f"{int(rng.integers(1, 11))} 0:{int(rng.integers(1, 9))} 7:1" for _ in range(30)
            )
            files[f"{split}/labeledBow.feat"] = feats.encode() + b"\n"
            for kind in ("pos", "neg"):
                files[f"{split}/urls_{kind}.txt"] = (
                    b"http://www.imdb.com/title/tt0000000/usercomments\n" * 5
                )
        files["train/unsupBow.feat"] = b"0:1 1:2\n" * 30
        files["train/urls_unsup.txt"] = b"http://www.imdb.com/title/tt0000000/usercomments\n" * 5
    return files


def make_synthetic_archive(
    path: str | Path,
    *,
    n_per_class_train: int = 100,
    n_per_class_test: int = 100,
    seed: int = 0,
    layout: str = "labeled",
    n_invalid_utf8: int = 0,
    n_empty: int = 0,
    tar_format: str = "gnu",
    compress: bool = True,
    root: str = "aclImdb",
) -> Path:
    """Write a generated dataset in the aclImdb layout; returns the archive (or folder) path.

    Args:
        path: the archive file to write; for ``layout="folder"``, the parent folder in which
            ``<root>/`` is created (its path is returned).
        n_per_class_train, n_per_class_test: reviews per label and split.
        seed: all content derives from it.
        layout: ``"labeled"`` (like ``aclImdb_v1_labeled.tar.gz``: the labeled reviews plus
            README, imdb.vocab, imdbEr.txt), ``"canonical"`` (adds ``train/unsup``, ``*.feat`` and
            ``urls_*.txt``, as in ``aclImdb_v1.tar.gz``) or ``"folder"`` (labeled, extracted).
        n_invalid_utf8, n_empty: see :func:`generate_reviews`.
        tar_format: ``"gnu"``, ``"pax"`` or ``"ustar"`` (how long member names are stored).
        compress: gzip the tar (else a plain ``.tar``).
        root: the top folder inside the archive (long values exercise long-name headers).
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    formats = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}
    if tar_format not in formats:
        raise ValueError(f"tar_format must be one of {tuple(formats)}, got {tar_format!r}")
    path = Path(path)
    reviews = generate_reviews(
        n_per_class_train=n_per_class_train,
        n_per_class_test=n_per_class_test,
        seed=seed,
        n_invalid_utf8=n_invalid_utf8,
        n_empty=n_empty,
    )
    rng = np.random.default_rng([seed, 1])
    files = {r.member_name: r.text for r in reviews}
    files.update(_extra_files(reviews, layout, rng))
    if layout == "folder":
        for name, data in files.items():
            target = path / root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return path / root

    # Real archives list members in no particular order; shuffling makes the reader prove that
    # its output order does not depend on the member order.
    names = sorted(files)
    names = [names[i] for i in rng.permutation(len(names))]
    folders = sorted({str(Path(root, name).parent) for name in names} | {root})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=formats[tar_format]) as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
            tar.addfile(info)
        for name in names:
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode, info.mtime = len(files[name]), 0o644, _MTIME
            tar.addfile(info, io.BytesIO(files[name]))
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(data)
    else:
        path.write_bytes(data)
    return path
