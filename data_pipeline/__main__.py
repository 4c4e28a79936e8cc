"""``python -m data_pipeline``: load the IMDb data and describe it, with the time of each stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import DataError
from .pipeline import ImdbData, load_imdb
from .source import ENV_DATA, ENV_MD5, ENV_URL

_PERCENTILES = (50, 90, 95, 99)
_STAGES = ("resolve", "cache_read", "read", "tokenize", "vocab", "encode", "cache_write")


#: The DataConfig fields the command sets: (field, type, metavar, help); the option is
#: ``--field-name`` and its default the field's.
_CONFIG_OPTIONS: tuple[tuple[str, type, str, str], ...] = (
    ("vocab_size", int, "N", "vocabulary size, counting <unk> and <pad>"),
    ("max_len", int, "N", "keep the first N tokens of each review"),
    ("val_fraction", float, "F", "share of train carved out, stratified, for validation"),
    ("split_seed", int, "N", "seed of the sub-sampling and the validation split"),
    ("train_limit", int, "N", "use a stratified sample of N train reviews, before the validation split"),
    ("test_limit", int, "N", "use a stratified sample of N test reviews"),
)


def _parser() -> argparse.ArgumentParser:
    defaults = DataConfig()
    parser = argparse.ArgumentParser(
        prog="python -m data_pipeline",
        description=(
            "Load the IMDb reviews through the rnnbench data pipeline and print where they came "
            "from, the split sizes, label balance, vocabulary size, review lengths, decode errors "
            "and the time of each stage. Run it twice to see a cold and a warm (cached) start."
        ),
        epilog=(
            f"Without --data the dataset is looked up in ${ENV_DATA}, then in the cache, then "
            f"downloaded (${ENV_URL} overrides the URL, ${ENV_MD5} the expected MD5). "
            "Exit status 2 means the data could not be found or read."
        ),
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="the IMDb archive (aclImdb_v1.tar.gz, or one holding only its labeled part) or an "
        f"extracted aclImdb/ folder (default: ${ENV_DATA}, then the cache, then a download)",
    )
    for field, kind, metavar, text in _CONFIG_OPTIONS:
        default = getattr(defaults, field)
        shown = "all" if default is None else "%(default)s"
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=default,
                            metavar=metavar, help=f"{text} (default: {shown})")  # fmt: skip
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache folder for the download and the encoded splits "
        "(default: $XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar while downloading"
    )
    return parser


def _describe(data: ImdbData) -> list[str]:
    source = data.source
    lines = [
        f"source       {source.path} ({source.kind}, origin: {source.origin})",
        f"checksum     {source.checksum}",
        f"cache        {'hit' if data.cache_hit else 'miss (built and stored)'}, key {data.cache_key}",
    ]
    for split in (data.train, data.val, data.test):
        n_pos = int(split.labels.sum())
        lines.append(
            f"{split.name:<5} split  {len(split):>6,} reviews   pos {n_pos:,} / neg "
            f"{len(split) - n_pos:,} ({100 * n_pos / max(len(split), 1):.1f}% pos)"
        )
    lines.append(
        f"vocabulary   {len(data.vocab):,} tokens (incl. <unk>, <pad>; built on train only)"
    )
    lengths = np.concatenate(
        [s.untruncated_lengths.numpy() for s in (data.train, data.val, data.test)]
    )
    if len(lengths):
        values = np.percentile(lengths, _PERCENTILES)
        shown = "  ".join(f"p{p} {v:.0f}" for p, v in zip(_PERCENTILES, values, strict=True))
        n_truncated = int((lengths > data.config.max_len).sum())
        lines.append(
            f"lengths      tokens per review before truncation: {shown}  max {lengths.max()}  "
            f"mean {lengths.mean():.1f}; {100 * n_truncated / len(lengths):.1f}% truncated to "
            f"{data.config.max_len}"
        )
    lines.append(
        f"decode errs  {data.n_decode_errors} reviews held bytes that are not UTF-8 (replaced)"
    )
    timings = data.timings_s
    stages = "  ".join(f"{name} {timings[name]:.3f}" for name in _STAGES if name in timings)
    kind = "warm (cache hit)" if data.cache_hit else "cold (no cache entry)"
    lines.append(f"time (s)     {stages}  | total {sum(timings.values()):.3f}, {kind}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the inspect command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = DataConfig(**{field: getattr(args, field) for field, *_ in _CONFIG_OPTIONS})
    except ValueError as error:
        parser.error(str(error))
    try:
        data = load_imdb(config, args.data, cache_dir=args.cache_dir, progress=not args.no_progress)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in _describe(data):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
