"""The on-disk cache of encoded splits: ``<cache>/encoded/<key>/``, verified before it is trusted.

An entry holds ``vocab.txt``, one ``.npy`` file per array and ``manifest.json`` listing each
payload file with its size and SHA-256. It is written into a temporary folder and renamed into
place, so a reader sees a whole entry or none. On load every file is checked against the manifest;
anything missing, truncated or altered makes the entry be removed and rebuilt, never used.
Token ids are stored in the narrowest unsigned type that holds the vocabulary (uint16 for 10,000
tokens), which quarters the bytes read and hashed on a warm start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .config import PIPELINE_VERSION, DataConfig
from .encode import EncodedSplit
from .vocab import Vocab

__all__ = [
    "CacheCorrupt",
    "cache_key",
    "entry_dir",
    "load_entry",
    "remove_entry",
    "remove_stale_temps",
    "save_entry",
]

_SPLITS = ("train", "val", "test")
_ARRAYS = ("tokens", "offsets", "labels", "review_ids", "stars", "untruncated_lengths")
_MANIFEST = "manifest.json"
_VOCAB = "vocab.txt"


class CacheCorrupt(Exception):
    """A cache entry that is incomplete or does not match its manifest."""


def cache_key(checksum: str, config: DataConfig) -> str:
    """Hash of everything that determines the encoded output."""
    payload = {
        "pipeline_version": PIPELINE_VERSION,
        "source_checksum": checksum,
        "config": dataclasses.asdict(config),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def entry_dir(cache_dir: Path, key: str) -> Path:
    """Where the entry for ``key`` lives."""
    return cache_dir / "encoded" / key


def _token_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _file_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def save_entry(
    cache_dir: Path,
    key: str,
    splits: dict[str, EncodedSplit],
    vocab: Vocab,
    metadata: dict,
) -> Path:
    """Write an entry atomically; returns its folder. If another process wrote the same entry
    first, that one is kept."""
    final = entry_dir(cache_dir, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
    try:
        files: dict[str, dict] = {}
        token_dtype = _token_dtype(len(vocab))
        for split_name in _SPLITS:
            split = splits[split_name]
            for array_name in _ARRAYS:
                values = getattr(split, array_name).numpy()
                if array_name == "tokens":
                    values = values.astype(token_dtype)
                data = _file_bytes(values)
                name = f"{split_name}.{array_name}.npy"
                (tmp / name).write_bytes(data)
                files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        vocab.save(tmp / _VOCAB)
        vocab_bytes = (tmp / _VOCAB).read_bytes()
        files[_VOCAB] = {
            "bytes": len(vocab_bytes),
            "sha256": hashlib.sha256(vocab_bytes).hexdigest(),
        }
        manifest = {
            "pipeline_version": PIPELINE_VERSION,
            "key": key,
            "files": files,
            "metadata": metadata,
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        for name in os.listdir(tmp):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _MANIFEST).is_file():
                raise
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_verified(path: Path, spec: dict) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CacheCorrupt(f"{path.name}: {error.strerror or error}") from error
    if len(data) != spec["bytes"] or hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise CacheCorrupt(f"{path.name} does not match the manifest")
    return data


def load_entry(cache_dir: Path, key: str) -> tuple[dict[str, EncodedSplit], Vocab, dict]:
    """Read and verify an entry: ``(splits, vocab, metadata)``.

    Raises:
        FileNotFoundError: there is no entry for ``key``.
        CacheCorrupt: the entry is incomplete, altered, or from another pipeline version.
    """
    folder = entry_dir(cache_dir, key)
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except FileNotFoundError:
        if folder.exists():
            raise CacheCorrupt("the manifest is missing") from None
        raise
    except (OSError, ValueError) as error:
        raise CacheCorrupt(f"unreadable manifest: {error}") from error
    try:
        if manifest["pipeline_version"] != PIPELINE_VERSION or manifest["key"] != key:
            raise CacheCorrupt("the manifest belongs to another pipeline version or key")
        files = manifest["files"]
        splits = {}
        for split_name in _SPLITS:
            arrays = {}
            for array_name in _ARRAYS:
                name = f"{split_name}.{array_name}.npy"
                data = _read_verified(folder / name, files[name])
                array = np.load(io.BytesIO(data), allow_pickle=False)
                arrays[array_name] = torch.from_numpy(array.astype(np.int64, copy=False))
            splits[split_name] = EncodedSplit(name=split_name, **arrays)
        vocab_bytes = _read_verified(folder / _VOCAB, files[_VOCAB])
        vocab = Vocab(vocab_bytes.decode("utf-8").split("\n")[:-1])
        metadata = manifest["metadata"]
    except (KeyError, TypeError, ValueError) as error:
        raise CacheCorrupt(f"malformed entry: {error}") from error
    for split in splits.values():
        n = len(split.labels)
        consistent = (
            len(split.offsets) == n + 1
            and all(
                len(getattr(split, a)) == n for a in ("review_ids", "stars", "untruncated_lengths")
            )
            and int(split.offsets[0]) == 0
            and int(split.offsets[-1]) == len(split.tokens)
            and bool((split.lengths >= 1).all())
            and (len(split.tokens) == 0 or int(split.tokens.max()) < len(vocab))
        )
        if not consistent:
            raise CacheCorrupt(f"the {split.name} arrays are inconsistent")
    return splits, vocab, metadata


def remove_entry(cache_dir: Path, key: str) -> None:
    """Delete an entry (a corrupt one), ignoring one that is already gone."""
    shutil.rmtree(entry_dir(cache_dir, key), ignore_errors=True)


def remove_stale_temps(cache_dir: Path, key: str) -> None:
    """Delete temporary folders left for ``key`` by a writer that died; call it holding the key's
    lock, so no live writer is using them."""
    parent = entry_dir(cache_dir, key).parent
    if parent.is_dir():
        for path in parent.glob(f".tmp-{key}-*"):
            shutil.rmtree(path, ignore_errors=True)
