"""Reading reviews from archives (every accepted layout) and folders, and rejecting bad input."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_pipeline import DataError, make_synthetic_archive
from data_pipeline.reader import RawReviews, read_archive, read_folder
from data_pipeline.synthetic import generate_reviews

SIZES = {"n_per_class_train": 6, "n_per_class_test": 4}


def _expected() -> list[tuple[int, int, int, int, bytes]]:
    return [
        (0 if r.split == "train" else 1, r.label, r.review_id, r.stars, r.text)
        for r in generate_reviews(**SIZES)
    ]


def _as_rows(reviews: RawReviews) -> list[tuple[int, int, int, int, bytes]]:
    return list(
        zip(
            reviews.split.tolist(),
            reviews.label.tolist(),
            reviews.review_id.tolist(),
            reviews.stars.tolist(),
            reviews.texts,
            strict=True,
        )
    )


@pytest.mark.parametrize(
    ("layout", "tar_format", "compress", "root"),
    [
        ("labeled", "gnu", True, "aclImdb"),
        ("canonical", "gnu", True, "aclImdb"),
        ("labeled", "pax", True, "aclImdb"),
        ("labeled", "ustar", False, "aclImdb"),
        # Member names over 100 bytes: GNU long-name members, pax paths, ustar prefixes.
        ("labeled", "gnu", True, "x" * 90 + "/aclImdb"),
        ("labeled", "pax", True, "y" * 90 + "/aclImdb"),
        ("labeled", "ustar", True, "z" * 90 + "/aclImdb"),
    ],
)
def test_archive_reads_exactly_the_labeled_reviews(
    tmp_path: Path, layout: str, tar_format: str, compress: bool, root: str
) -> None:
    path = make_synthetic_archive(
        tmp_path / "a.tar.gz",
        layout=layout,
        tar_format=tar_format,
        compress=compress,
        root=root,
        **SIZES,
    )
    reviews = read_archive(path)
    assert _as_rows(reviews) == _expected()  # sorted by (split, label, id), unsup/.feat ignored
    assert set(reviews.stars[reviews.label == 1].tolist()) <= {7, 8, 9, 10}
    assert set(reviews.stars[reviews.label == 0].tolist()) <= {1, 2, 3, 4}


def test_folder_and_its_parent_read_like_the_archive(tmp_path: Path) -> None:
    folder = make_synthetic_archive(tmp_path / "extracted", layout="folder", **SIZES)
    assert folder.name == "aclImdb"
    assert _as_rows(read_folder(folder)) == _expected()
    assert _as_rows(read_folder(folder.parent)) == _expected()


def test_member_order_does_not_matter(tmp_path: Path) -> None:
    a = read_archive(make_synthetic_archive(tmp_path / "a.tar.gz", seed=3, **SIZES))
    buffer = io.BytesIO()
    with tarfile.open(tmp_path / "a.tar.gz") as src, tarfile.open(fileobj=buffer, mode="w") as dst:
        for member in sorted(src.getmembers(), key=lambda m: m.name, reverse=True):
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    (tmp_path / "b.tar.gz").write_bytes(gzip.compress(buffer.getvalue()))
    b = read_archive(tmp_path / "b.tar.gz")
    assert _as_rows(a) == _as_rows(b)


def test_synthetic_archive_is_deterministic(tmp_path: Path) -> None:
    first = make_synthetic_archive(tmp_path / "1.tar.gz", seed=5, **SIZES).read_bytes()
    second = make_synthetic_archive(tmp_path / "2.tar.gz", seed=5, **SIZES).read_bytes()
    other = make_synthetic_archive(tmp_path / "3.tar.gz", seed=6, **SIZES).read_bytes()
    assert first == second
    assert first != other


def test_invalid_utf8_is_kept_as_bytes(tmp_path: Path) -> None:
    path = make_synthetic_archive(tmp_path / "a.tar.gz", n_invalid_utf8=2, **SIZES)
    texts = read_archive(path).texts
    assert sum(b"\xff" in t for t in texts) == 2


def _write_tar(path: Path, files: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def test_missing_groups_are_named(tmp_path: Path) -> None:
    path = _write_tar(
        tmp_path / "partial.tar.gz",
        {
            "aclImdb/train/pos/1_9.txt": b"good",
            "aclImdb/test/neg/1_2.txt": b"bad",
            "other.txt": b"",
        },
    )
    with pytest.raises(
        DataError, match=r"no reviews under train/neg, test/pos; expected the aclImdb"
    ):
        read_archive(path)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("just some text, long enough " * 40)
    with pytest.raises(DataError, match="neither a gzip nor a tar archive"):
        read_archive(tmp_path / "notes.txt")
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="neither a gzip nor a tar archive"):
        read_archive(tmp_path / "empty.tar.gz")


def test_gzip_of_something_that_is_not_tar(tmp_path: Path) -> None:
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(b"hello " * 1000))
    with pytest.raises(DataError, match="not a tar archive"):
        read_archive(tmp_path / "x.tar.gz")


@pytest.mark.parametrize("keep", [0.3, 0.97, 0.9995])
def test_truncated_archive(tmp_path: Path, keep: float) -> None:
    data = make_synthetic_archive(tmp_path / "a.tar.gz", **SIZES).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="truncated"):
        read_archive(tmp_path / "cut.tar.gz")


def test_corrupt_archive(tmp_path: Path) -> None:
    data = bytearray(make_synthetic_archive(tmp_path / "a.tar.gz", **SIZES).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.tar.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt|truncated|not a tar"):
        read_archive(tmp_path / "bad.tar.gz")


def test_folder_without_the_layout(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not an extracted IMDb dataset"):
        read_folder(tmp_path / "empty")


def test_empty_reviews_are_read_as_empty(tmp_path: Path) -> None:
    path = make_synthetic_archive(tmp_path / "a.tar.gz", n_empty=3, **SIZES)
    reviews = read_archive(path)
    assert sum(len(t) == 0 for t in reviews.texts) == 3
    assert np.array_equal(np.unique(reviews.split), [0, 1])
