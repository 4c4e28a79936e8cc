"""Classify reviews with a trained run: ``python -m bench.predict RUN_DIR "a review"``.

Loads the run's resolved spec (``config.json``), vocabulary and selected checkpoint, then runs the
same tokenizer and encoding as training. Only a run of a task whose inputs are text (as the task's
registration declares) can classify text; any other is refused with one line.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.run.config import ConfigError, RunSpec
from bench.run.execute import CHECKPOINT_NAME, CONFIG_NAME, VOCAB_NAME, build_model
from data_pipeline import DataError, EncodedSplit, UnknownTaskError, Vocab, task_info, tokenize


class PredictError(Exception):
    """A run folder that cannot be loaded, or input that cannot be classified."""


@dataclass(frozen=True)
class Prediction:
    label: str  # "positive" or "negative"
    probability: float  # P(positive)


@dataclass(frozen=True)
class TrainedRun:
    """A finished run loaded from its folder: its resolved spec, its vocabulary, and its model
    with the selected checkpoint's weights, on the CPU, in evaluation mode."""

    spec: RunSpec
    vocab: Vocab
    model: nn.Module


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message: torch's load errors run to many lines."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def load_trained_run(run_dir: Path) -> TrainedRun:
    """Load the run in ``run_dir`` (``config.json``, ``vocab.txt``, ``model.pt``), whatever its
    task; raise :class:`PredictError` with one line saying what is missing or damaged."""
    run_dir = Path(run_dir)
    missing = [n for n in (CONFIG_NAME, VOCAB_NAME, CHECKPOINT_NAME) if not (run_dir / n).is_file()]
    if missing:
        raise PredictError(
            f"{run_dir} has no {', '.join(missing)}: give a run folder (results/<...>/runs/<run_id>) "
            "of a run that kept its artifacts (not --records-only)"
        )
    rerun = f"the run folder is damaged: re-run it (run_all.py --run-id {run_dir.name})"
    try:
        payload = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        if not isinstance(payload, dict):
            raise TypeError(f"expected a JSON object, got {type(payload).__name__}")
        spec = RunSpec.from_dict(payload)
    except UnknownTaskError as exc:  # a KeyError, so caught before the others
        raise PredictError(f"{run_dir} is a run of a task this installation does not "
                           f"register ({exc})") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError,
            ConfigError) as exc:  # JSONDecodeError is a ValueError
        # A KeyError's text is the bare key: say it is a missing field.
        reason = f"it has no field {exc}" if type(exc) is KeyError else _first_line(exc)
        raise PredictError(f"{run_dir / CONFIG_NAME} is not a valid run config ({reason}); "
                           f"{rerun}") from None
    try:
        vocab = Vocab.load(run_dir / VOCAB_NAME)
    except DataError as exc:
        raise PredictError(f"{exc}; {rerun}") from None
    try:
        model = build_model(spec, len(vocab), vocab.pad_index)
    except (RuntimeError, MemoryError, ValueError, TypeError) as exc:  # e.g. too large to allocate
        raise PredictError(f"cannot build the model {run_dir / CONFIG_NAME} describes "
                           f"({_first_line(exc)}): classify on a machine with the memory it "
                           "was trained with, or re-run it if the config is damaged") from None
    try:
        state = torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    # A damaged file raises any of these (not a zip: RuntimeError; truncated: EOFError; not a
    # pickle: UnpicklingError), another model's weights a RuntimeError, a non-dict a TypeError.
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, TypeError) as exc:
        # torch's UnpicklingError text advises weights_only=False: not advice to pass on.
        reason = ("not a file of saved weights" if isinstance(exc, pickle.UnpicklingError)
                  else _first_line(exc) or f"{type(exc).__name__}: the file is truncated")
        raise PredictError(f"cannot load checkpoint {run_dir / CHECKPOINT_NAME} ({reason}); "
                           f"{rerun}") from None
    model.eval()
    return TrainedRun(spec, vocab, model)


class Predictor:
    """A trained model with its vocabulary and settings, ready to classify raw text."""

    def __init__(self, run_dir: Path) -> None:
        run = load_trained_run(run_dir)
        task = task_info(run.spec.task)
        if not task.text_inputs:
            raise PredictError(f"{run_dir} is a run of task {task.name!r}, whose inputs are not "
                               "text: predict classifies text with runs of a text task (e.g. imdb)")
        self.spec, self.vocab, self.model = run.spec, run.vocab, run.model
        # A text task may leave its length uncut (no max_len setting).
        self.max_len = getattr(self.spec.config.data, "max_len", None)

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (cut at the run's max length); raise :class:`PredictError`
        if it has no words: a sentiment read off nothing would be a made-up answer."""
        ids = self.vocab.lookup(tokenize(text))[: self.max_len]
        if not ids:
            raise PredictError(f"review {text[:60]!r} has no words to classify; give text with words")
        return ids

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> list[Prediction]:
        """Classify each text; returns one prediction per text, in order.

        Raises :class:`PredictError` for a text with no words, before anything is classified.
        """
        if not texts:
            return []
        split = EncodedSplit.unlabeled("predict", [self.encode(t) for t in texts])
        tokens, lengths = split.pad(range(len(split)), self.vocab.pad_index)
        probs = torch.sigmoid(self.model(tokens, lengths).float()).tolist()
        return [Prediction("positive" if p > 0.5 else "negative", p) for p in probs]


def _read_lines(name: str) -> list[str]:
    """The lines of file ``name``, or of standard input for ``-``."""
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(name).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise PredictError(f"cannot read --file {name}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.predict",
        description="Classify movie reviews as positive or negative with a trained run.",
        epilog="Output: one line per review, tab-separated: the label (positive or negative), "
        "the model's probability that the review is positive, and the review's first 60 "
        "characters. Exit codes: 0 done, 2 bad input or a run folder that cannot be used.",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder: results/<name>/runs/<run_id>")
    parser.add_argument("text", nargs="*", help="review text(s) to classify")
    parser.add_argument("--file", help="a text file with one review per line ('-': standard "
                        "input); blank lines are skipped")
    args = parser.parse_args(argv)
    texts = list(args.text)
    try:
        if args.file is not None:
            texts += [ln for ln in _read_lines(args.file) if ln.strip()]
        if not texts:
            raise PredictError("nothing to classify: give review text(s) or --file FILE")
        predictor = Predictor(args.run_dir)
        predictions = predictor.predict(texts)
    except PredictError as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return 2
    if predictor.spec.profile == "smoke":
        print(f"predict: note: {args.run_dir} is a smoke run (a tiny model on a subsample, made "
              "to check the pipeline): its answers are near chance", file=sys.stderr)
    for text, pred in zip(texts, predictions, strict=True):
        snippet = text if len(text) <= 60 else text[:57] + "..."
        print(f"{pred.label}\t{pred.probability:.3f}\t{snippet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
