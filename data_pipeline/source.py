"""Find the IMDb dataset: an explicit path, ``$RNNBENCH_IMDB``, the cache, or a verified download.

Downloads go to a temporary file in the cache folder, are checked against the MD5 and only then
renamed into place (atomic), all under a file lock in the cache folder (never beside the data,
which may be read-only), so concurrent runs neither corrupt nor duplicate the download.

Environment:
    RNNBENCH_IMDB: path of the archive or extracted folder (used when no explicit path is given).
    RNNBENCH_IMDB_URL: download from this mirror instead of Stanford.
    RNNBENCH_IMDB_MD5: the MD5 the download must have. Defaults to the canonical archive's MD5 for
        either URL, since a mirror is expected to serve the very same file; set it only for a mirror
        that serves a different file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import portalocker
from tqdm import tqdm

from .errors import DataError
from .reader import find_folder_root, review_files

__all__ = [
    "Source",
    "resolve_source",
    "default_cache_dir",
    "file_sha256",
    "folder_fingerprint",
    "CANONICAL_URL",
    "CANONICAL_MD5",
    "ARCHIVE_NAME",
]

CANONICAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
CANONICAL_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
ENV_DATA, ENV_URL, ENV_MD5 = "RNNBENCH_IMDB", "RNNBENCH_IMDB_URL", "RNNBENCH_IMDB_MD5"
DOWNLOAD_TIMEOUT_S = 30.0  # per connection attempt and per read: an offline machine fails fast
LOCK_TIMEOUT_S = 3600.0  # a concurrent download of 84 MB may take a while on a slow line
_READ_CHUNK = 1 << 20
_HOW_TO_SUPPLY = (
    f"download {ARCHIVE_NAME} from {CANONICAL_URL} (or use an extracted aclImdb/ folder) and "
    f"pass --data PATH or set {ENV_DATA}=PATH"
)


@dataclass(frozen=True)
class Source:
    """Where the dataset comes from.

    Attributes:
        path: the archive file, or the extracted ``aclImdb`` folder.
        kind: ``"archive"`` or ``"folder"``.
        origin: ``"explicit"`` (the ``data`` argument), ``"env"`` (``$RNNBENCH_IMDB``),
            ``"cache"`` or ``"download"``.
        checksum: ``"sha256:<hex>"`` of an archive, or ``"fingerprint:<hex>"`` of a folder (see
            :func:`folder_fingerprint`).
    """

    path: Path
    kind: str
    origin: str
    checksum: str


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rnnbench``, else ``~/.cache/rnnbench``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "rnnbench"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(8 * _READ_CHUNK):
                digest.update(block)
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from error
    return digest.hexdigest()


def folder_fingerprint(root: Path) -> str:
    """SHA-256 over the sorted lines ``<relative path>\\t<size>\\t<mtime_ns>`` of every review file
    (``{train,test}/{pos,neg}/<id>_<stars>.txt``) under an ``aclImdb`` folder.

    Cheap (no file is read), and any added, removed, resized or re-saved review changes it. An edit
    that keeps both size and modification time would go unnoticed.
    """
    lines = []
    try:
        for _, _, _, _, entry in review_files(root):
            stat = entry.stat()
            relative = os.path.relpath(entry.path, root).replace(os.sep, "/")
            lines.append(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}")
    except OSError as error:
        raise DataError(f"cannot read {error.filename}: {error.strerror}") from error
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _local_source(path: Path, origin: str, named_by: str) -> Source:
    if not path.exists():
        raise DataError(f"{named_by} {path} does not exist; {_HOW_TO_SUPPLY}")
    if path.is_dir():
        root = find_folder_root(path)
        return Source(root, "folder", origin, f"fingerprint:{folder_fingerprint(root)}")
    return Source(path, "archive", origin, f"sha256:{file_sha256(path)}")


def _download(url: str, md5: str, target: Path, progress: bool) -> str:
    """Fetch ``url`` into ``target`` (temp file, verified, then renamed); return its SHA-256."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        md5_digest, sha_digest = hashlib.md5(), hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            expected = response.headers.get("Content-Length")
            expected_bytes = int(expected) if expected and expected.isdigit() else None
            with tqdm(
                total=expected_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"downloading {target.name}",
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                while block := response.read(_READ_CHUNK):
                    out.write(block)
                    md5_digest.update(block)
                    sha_digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if expected_bytes is not None and received != expected_bytes:
            raise DataError(
                f"download from {url} was interrupted ({received} of {expected_bytes} bytes); "
                f"run again, or {_HOW_TO_SUPPLY}"
            )
        if md5_digest.hexdigest() != md5.lower():
            raise DataError(
                f"download from {url} has MD5 {md5_digest.hexdigest()}, expected {md5} "
                f"(a corrupt transfer or a wrong file); run again, set {ENV_MD5} for a mirror "
                f"that serves another file, or {_HOW_TO_SUPPLY}"
            )
        os.replace(tmp, target)
        return sha_digest.hexdigest()
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(
            f"could not download the IMDb dataset from {url} ({reason}); {_HOW_TO_SUPPLY}"
        ) from error
    finally:
        tmp.unlink(missing_ok=True)


def resolve_source(
    data: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    url: str | None = None,
    progress: bool = True,
) -> Source:
    """Locate the dataset, downloading it if needed, and checksum it.

    Order: ``data`` (``--data PATH``), then ``$RNNBENCH_IMDB``, then ``<cache_dir>/aclImdb_v1.tar.gz``,
    then a download from ``url`` (default ``$RNNBENCH_IMDB_URL``, else Stanford) checked against
    ``$RNNBENCH_IMDB_MD5`` (default: the canonical MD5). Accepts the canonical archive, an archive
    of its labeled part only, and an extracted ``aclImdb/`` folder or its parent.

    Raises:
        DataError: a given path does not exist, or the download fails (offline, interrupted,
            checksum mismatch). Nothing half-written is left in the cache.
    """
    if data is not None and str(data) != "":
        return _local_source(Path(data).expanduser(), "explicit", "--data")
    if env_path := os.environ.get(ENV_DATA):
        return _local_source(Path(env_path).expanduser(), "env", ENV_DATA)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / ARCHIVE_NAME
    if target.is_file():
        return Source(target, "archive", "cache", f"sha256:{file_sha256(target)}")
    url = url or os.environ.get(ENV_URL) or CANONICAL_URL
    md5 = os.environ.get(ENV_MD5) or CANONICAL_MD5
    try:
        (cache_dir / "locks").mkdir(parents=True, exist_ok=True)
        lock = portalocker.Lock(
            cache_dir / "locks" / "download.lock", mode="a", timeout=LOCK_TIMEOUT_S
        )
        with lock:
            # Another process may have finished the download while this one waited for the lock.
            if target.is_file():
                return Source(target, "archive", "cache", f"sha256:{file_sha256(target)}")
            sha256 = _download(url, md5, target, progress)
    except portalocker.LockException as error:
        raise DataError(
            f"timed out waiting for another process downloading into {cache_dir}; {_HOW_TO_SUPPLY}"
        ) from error
    except OSError as error:
        raise DataError(
            f"cannot write the download cache {cache_dir} ({error.strerror or error}); "
            f"{_HOW_TO_SUPPLY}"
        ) from error
    return Source(target, "archive", "download", f"sha256:{sha256}")
