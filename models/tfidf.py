"""``tfidf_logreg``: the linear floor, TF-IDF over uni- and bigrams with logistic regression.

The model reads the same inputs as every other model: the token ids of the shared tokenizer and
vocabulary, truncated to ``data.max_len``. That keeps the comparison on identical inputs; published
TF-IDF figures on IMDb (about 88-91%) use the full, untruncated text and an open vocabulary, so
they are not the same experiment.

Features: every unigram id, and every bigram of adjacent ids inside a review (keyed
``vocab_size + a * vocab_size + b``), kept when it occurs in at least ``min_df`` training reviews.
Weights are scikit-learn's ``TfidfVectorizer`` defaults: raw counts times the smoothed idf
``ln((1 + n) / (1 + df)) + 1``, each review scaled to unit L2 norm. Logistic regression
(scikit-learn, L2) is fitted once per ``C`` in ``c_grid`` on the training split; the ``C`` with
the lowest validation loss is kept.

It is a ``torch`` module all the same: the fitted coefficients are a weight vector over the kept
features, the forward pass computes the features of a padded batch with tensor operations and
returns logits, and the state dict holds plain tensors (feature keys, idf, weight, bias). So the
trainer's evaluation, latency measurement, checkpoints and ``bench.predict`` work unchanged; only
learning goes through :meth:`TfidfLogReg.fit` (the self-fitting protocol of :mod:`models.fitted`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from torch import Tensor, nn

from models.base import TextClassifier
from models.fitted import SelfFitReport, SplitLike
from models.registry import register_model

__all__ = ["TfidfLogReg", "ngram_keys"]

C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)


def ngram_keys(flat_tokens: Tensor, rows: Tensor, vocab_size: int) -> tuple[Tensor, Tensor]:
    """Unigram and bigram keys of reviews stored back to back.

    Args:
        flat_tokens: int64 ids of all reviews, review after review.
        rows: the review of each token (non-decreasing), same shape.
        vocab_size: ids lie in ``[0, vocab_size)``.

    Returns:
        ``(rows, keys)``: a unigram's key is its id, a bigram ``(a, b)`` of adjacent tokens of one
        review is ``vocab_size + a * vocab_size + b``, so the two never collide.
    """
    same_review = rows[1:] == rows[:-1]
    bigrams = vocab_size + flat_tokens[:-1][same_review] * vocab_size + flat_tokens[1:][same_review]
    return torch.cat([rows, rows[:-1][same_review]]), torch.cat([flat_tokens, bigrams])


def _split_keys(split: SplitLike, vocab_size: int) -> tuple[Tensor, Tensor]:
    rows = torch.repeat_interleave(torch.arange(len(split.labels)), split.lengths)
    return ngram_keys(split.tokens, rows, vocab_size)


class TfidfLogReg(TextClassifier):
    """TF-IDF features -> one linear logit; fitted by logistic regression with ``C`` chosen on
    validation.

    Until :meth:`fit` runs, the features are the unigrams with idf 1 and the weights are
    initialised like ``nn.Linear``'s (uniform in ±1/sqrt(features)): a valid, seeded model that
    the contract tests treat like any other.

    Args:
        vocab_size: number of token ids.
        pad_index: the padding id (padding never becomes a feature: only real tokens are read).
        c_grid: inverse regularisation strengths tried; the lowest validation loss wins.
        min_df: training reviews a feature must occur in to be kept.
        max_iter: the solver's iteration limit per fit.
    """

    def __init__(
        self, *, vocab_size: int, pad_index: int, c_grid: Sequence[float], min_df: int,
        max_iter: int,
    ) -> None:
        super().__init__(vocab_size=vocab_size, pad_index=pad_index)
        if not c_grid or any(c <= 0 for c in c_grid):
            raise ValueError(f"c_grid must hold positive values, got {tuple(c_grid)}")
        if min_df < 1:
            raise ValueError(f"min_df must be >= 1, got {min_df}")
        self.c_grid = tuple(float(c) for c in c_grid)
        self.min_df = min_df
        self.max_iter = max_iter
        bound = 1.0 / math.sqrt(vocab_size)
        self._set_features(
            feature_keys=torch.arange(vocab_size),
            idf=torch.ones(vocab_size),
            weight=torch.empty(vocab_size).uniform_(-bound, bound),
            bias=torch.empty(1).uniform_(-bound, bound),
        )

    def _set_features(self, *, feature_keys: Tensor, idf: Tensor, weight: Tensor, bias: Tensor) -> None:
        """Install a feature set and its weights, on the device the model is on."""
        # Once built, the model's device; while building, where the tensors were made (the meta
        # device when a caller builds an empty model to load weights into).
        device = self.bias.device if hasattr(self, "bias") else feature_keys.device
        # Buffers: sorted int64 keys (see ngram_keys) and their idf; parameters: the linear model.
        self.register_buffer("feature_keys", feature_keys.to(device, torch.long))
        self.register_buffer("idf", idf.to(device, torch.float32))
        self.weight = nn.Parameter(weight.to(device, torch.float32))
        self.bias = nn.Parameter(bias.to(device, torch.float32).reshape(1))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load a checkpoint; the feature set is sized by fitting, so adopt its shapes first."""
        if "feature_keys" in state_dict:
            size = state_dict["feature_keys"].shape
            self._set_features(
                feature_keys=torch.zeros(size, dtype=torch.long), idf=torch.zeros(size),
                weight=torch.zeros(size), bias=torch.zeros(1),
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def features(self, rows: Tensor, keys: Tensor, n_rows: int) -> tuple[Tensor, Tensor, Tensor]:
        """TF-IDF entries of ``n_rows`` reviews from their n-gram ``(rows, keys)``.

        Returns ``(rows, features, values)``, one entry per distinct (review, kept feature),
        sorted by review then feature; each review's values have unit L2 norm.
        """
        n_features = self.feature_keys.numel()
        position = torch.searchsorted(self.feature_keys, keys).clamp_(max=n_features - 1)
        kept = self.feature_keys[position] == keys
        pairs, counts = torch.unique(rows[kept] * n_features + position[kept], return_counts=True)
        rows, features = pairs // n_features, pairs % n_features
        values = counts.to(torch.float32) * self.idf[features]
        norms = torch.zeros(n_rows, device=values.device).index_add_(0, rows, values * values)
        return rows, features, values / norms.sqrt()[rows]

    def classify(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``[B]``: the weight of each feature times its TF-IDF value, plus the bias."""
        device = tokens.device
        lengths = lengths.to(device)
        real = torch.arange(tokens.shape[1], device=device) < lengths.unsqueeze(1)
        rows = torch.repeat_interleave(torch.arange(tokens.shape[0], device=device), lengths)
        rows, features, values = self.features(
            *ngram_keys(tokens[real], rows, self.vocab_size), tokens.shape[0]
        )
        logits = torch.zeros(tokens.shape[0], device=device).index_add(
            0, rows, values * self.weight[features]
        )
        return logits + self.bias

    def _matrix(self, split: SplitLike) -> sparse.csr_matrix:
        """The TF-IDF matrix of a split, for scikit-learn (rows in split order)."""
        n_rows = len(split.labels)
        rows, features, values = self.features(*_split_keys(split, self.vocab_size), n_rows)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows.cpu().numpy(), minlength=n_rows), out=indptr[1:])
        return sparse.csr_matrix(
            (values.cpu().numpy().astype(np.float64), features.cpu().numpy(), indptr),
            shape=(n_rows, self.feature_keys.numel()),
        )

    def _fit_vocabulary(self, train: SplitLike) -> None:
        """Keep the n-grams of at least ``min_df`` training reviews; compute their idf."""
        rows, keys = _split_keys(train, self.vocab_size)
        # Distinct (review, key) pairs; the key range is vocab_size * (vocab_size + 1).
        span = self.vocab_size * (self.vocab_size + 1)
        document_keys = torch.unique(rows * span + keys) % span
        unique_keys, document_freq = torch.unique(document_keys, return_counts=True)
        kept = document_freq >= self.min_df
        n_reviews = len(train.labels)
        idf = torch.log((1.0 + n_reviews) / (1.0 + document_freq[kept].double())) + 1.0
        n_kept = int(kept.sum())
        self._set_features(
            feature_keys=unique_keys[kept], idf=idf.float(), weight=torch.zeros(n_kept),
            bias=torch.zeros(1),
        )

    def fit(self, train: SplitLike, val: SplitLike, *, seed: int) -> SelfFitReport:
        """Featurise ``train``, fit one logistic regression per ``C``, keep the lowest val loss.

        Only ``train`` and ``val`` are read; test stays untouched until the caller evaluates.
        """
        start = time.perf_counter()
        self._fit_vocabulary(train)
        x_train = self._matrix(train)
        featurise_s = time.perf_counter() - start
        x_val = self._matrix(val)
        y_train, y_val = train.labels.numpy(), val.labels.numpy()

        # (val loss, val accuracy, C, classifier, fit seconds) of the best C so far
        best: tuple[float, float, float, LogisticRegression, float] | None = None
        for c in self.c_grid:
            fit_start = time.perf_counter()
            clf = LogisticRegression(
                C=c, solver="liblinear", max_iter=self.max_iter, random_state=seed
            ).fit(x_train, y_train)
            fit_s = time.perf_counter() - fit_start
            val_probs = clf.predict_proba(x_val)[:, 1]
            val_loss = float(log_loss(y_val, val_probs, labels=[0, 1]))
            if best is None or val_loss < best[0]:
                best = (val_loss, float(((val_probs > 0.5) == y_val).mean()), c, clf, fit_s)
        assert best is not None  # c_grid is never empty
        val_loss, val_accuracy, chosen_c, clf, fit_s = best
        self._set_features(
            feature_keys=self.feature_keys, idf=self.idf,
            weight=torch.from_numpy(clf.coef_.ravel()), bias=torch.from_numpy(clf.intercept_),
        )
        train_probs = clf.predict_proba(x_train)[:, 1]
        history = [{
            "epoch": 1,
            "train_loss": float(log_loss(y_train, train_probs, labels=[0, 1])),
            "train_accuracy": float(((train_probs > 0.5) == y_train).mean()),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "epoch_time_s": fit_s,
        }]  # fmt: skip
        return SelfFitReport(history=history, timed_s=featurise_s + fit_s, chosen={"C": chosen_c})


@register_model(
    description="Linear floor: TF-IDF of uni- and bigram ids, logistic regression, C chosen on "
    "validation (same truncated inputs as the others)",
    default=True,
    recurrent=False,
    family="floor",
    training="self_fit",
    # No declared size (the kept n-grams are counted by fitting) and no FLOPs: the forward pass is
    # a sparse lookup, not multiply-adds a matmul calibration can rate.
)
def tfidf_logreg(
    *,
    vocab_size: int,
    pad_index: int,
    c_grid: tuple[float, ...] = C_GRID,
    min_df: int = 2,
    max_iter: int = 1000,
) -> TfidfLogReg:
    """TF-IDF + logistic regression over the shared tokenizer's ids (see the module docstring)."""
    return TfidfLogReg(
        vocab_size=vocab_size, pad_index=pad_index, c_grid=c_grid, min_df=min_df, max_iter=max_iter
    )
