"""Generated memory tasks: how far back can a model carry what it has read?

IMDb cannot answer that (a bag of embeddings comes within half a point of the best recurrent
model there), so these sequences are built so that only order across a distance decides the label.

One instance: noise tokens, with ``n_signals`` *signal* symbols, all different, drawn from an
alphabet of ``alphabet`` symbols that never occur as noise. The first and the last signal stand
exactly ``distance`` (T) positions apart, any others at distinct random positions between them;
random noise precedes the first and follows the last (up to ``margin * T`` tokens each, so neither
end of the sequence sits at a fixed distance from a signal). The label is the parity of the number
of inversions of the signals in reading order; with two signals, "the first symbol is larger than
the second".

Why this label (Hochreiter & Schmidhuber 1997's adding problem and Arjovsky et al. 2016's copy
task, Le et al. 2015, adapted):

* A bag of tokens, or of n-grams, sees *which* symbols occur but not in which order, and every set
  of symbols comes equally often with either label (a label flip is a swap of two symbols), so it
  is at chance by construction. The adding problem's sum is linear in (marker, value) bigrams and
  a marker-then-signal task names the class in one bigram: both are solvable without memory.
* The two outer signals are T apart, so some direction must hold a symbol across T steps whichever
  end a model reads from: a forward reader holds the first symbol until it meets the last, a
  backward reader the last until it meets the first.
* The load is a setting: ``alphabet`` (how much each symbol weighs, log2 of it in bits) and
  ``n_signals`` (how many to hold). With two symbols of 16 the model must remember one of 16
  values, not one bit, which is what separates architectures: a one-bit "which came first" task
  is solved by every recurrent model up to T = 1,024.

Vocabulary: ``<unk>`` = 0, ``<pad>`` = 1 (the pipeline's specials), then ``noise_vocab`` noise
tokens ``n0, n1, ...`` and the signals ``s0, s1, ...``. Labels are exactly balanced in every split;
each split has its own generator stream, derived from ``seed`` and the split's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .encode import EncodedSplit
from .tasks import TaskData, register_task
from .vocab import SPECIALS, Vocab

__all__ = [
    "MEMORY_CITATION",
    "MemoryConfig",
    "generate_memory_splits",
    "inversion_parity",
    "label_of",
    "load_label",
    "memory_vocab",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of one memory task. Every field enters the run id through the task's settings."""

    distance: int = 64  # T: positions between the first and the last signal
    alphabet: int = 16  # signal symbols to draw from
    n_signals: int = 2  # symbols to hold (all different)
    noise_vocab: int = 32  # noise tokens
    margin: float = 0.25  # noise before the first / after the last signal: up to margin * T each
    n_train: int = 4_000
    n_val: int = 1_000
    n_test: int = 2_000
    seed: int = 0  # the data's seed (the model's seed is the run's)

    def __post_init__(self) -> None:
        checks = [
            (self.n_signals >= 2, "n_signals must be >= 2 (order needs two symbols)"),
            (self.alphabet >= self.n_signals, "alphabet must be >= n_signals (symbols differ)"),
            (self.distance >= self.n_signals - 1, "distance must be >= n_signals - 1"),
            (self.noise_vocab >= 1, "noise_vocab must be >= 1"),
            (0.0 <= self.margin <= 4.0, "margin must be in [0, 4]"),
            (min(self.n_train, self.n_val, self.n_test) >= 2, "every split needs >= 2 sequences"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"memory task: {message}")

    @property
    def first_signal_id(self) -> int:
        return len(SPECIALS) + self.noise_vocab

    def run_label(self) -> str:
        """What tells this task's runs apart in a grid's log lines (``bench.grid.runner.start_line``)."""
        return f"T = {self.distance}, load {load_label(self.alphabet, self.n_signals)}"


def memory_vocab(config: MemoryConfig) -> Vocab:
    """``<unk>``, ``<pad>``, the noise tokens, then the signal symbols."""
    noise = [f"n{i}" for i in range(config.noise_vocab)]
    signals = [f"s{i}" for i in range(config.alphabet)]
    return Vocab([*SPECIALS, *noise, *signals])


def inversion_parity(symbols: np.ndarray) -> np.ndarray:
    """Parity (0/1) of the number of inversions of each row of ``symbols [N, k]``."""
    k = symbols.shape[1]
    inversions = np.zeros(len(symbols), dtype=np.int64)
    for i in range(k):
        for j in range(i + 1, k):
            inversions += symbols[:, i] > symbols[:, j]
    return inversions % 2


def label_of(tokens: np.ndarray | torch.Tensor, config: MemoryConfig) -> int:
    """The label of one sequence, computed from its tokens alone: the signals' inversion parity."""
    ids = np.asarray(tokens)
    signals = ids[ids >= config.first_signal_id] - config.first_signal_id
    return int(inversion_parity(signals[np.newaxis, :])[0])


def _generate(
    config: MemoryConfig, name: str, count: int, rng: np.random.Generator
) -> EncodedSplit:
    t, k = config.distance, config.n_signals
    max_margin = int(config.margin * t)
    pre = rng.integers(0, max_margin + 1, count)
    post = rng.integers(0, max_margin + 1, count)
    lengths = pre + t + 1 + post
    offsets = np.zeros(count + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    tokens = rng.integers(len(SPECIALS), config.first_signal_id, int(offsets[-1]))

    # Positions within each sequence: the first at `pre`, the last T later, the rest strictly
    # between at distinct places (sampled without replacement from the T - 1 inner positions).
    inner = np.argsort(rng.random((count, max(t - 1, 1))), axis=1)[:, : k - 2] + 1
    relative = np.sort(np.concatenate(
        [np.zeros((count, 1), np.int64), inner, np.full((count, 1), t)], axis=1
    ), axis=1)
    positions = offsets[:-1, None] + pre[:, None] + relative

    # k different symbols per sequence, then exactly balanced labels: where the drawn order's
    # parity is not the wanted label, swapping two symbols flips it and keeps the set.
    symbols = np.argsort(rng.random((count, config.alphabet)), axis=1)[:, :k]
    labels = rng.permutation(np.arange(count) % 2)
    flip = inversion_parity(symbols) != labels
    symbols[flip, 0], symbols[flip, 1] = symbols[flip, 1], symbols[flip, 0]
    tokens[positions.ravel()] = (symbols + config.first_signal_id).ravel()
    return EncodedSplit(
        name=name,
        tokens=torch.from_numpy(tokens.astype(np.int64)),
        offsets=torch.from_numpy(offsets),
        labels=torch.from_numpy(labels.astype(np.int64)),
        review_ids=torch.arange(count, dtype=torch.int64),
        stars=torch.zeros(count, dtype=torch.int64),
    )


def generate_memory_splits(config: MemoryConfig) -> dict[str, EncodedSplit]:
    """The train, validation and test splits of ``config``, deterministic from ``config.seed``."""
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    return {
        name: _generate(config, name, counts[name], np.random.default_rng([config.seed, index]))
        for index, name in enumerate(SPLITS)
    }


def load_label(alphabet: int, n_signals: int) -> str:
    """How a memory load is named in tables and run settings: "2 of 16" (symbols of alphabet)."""
    return f"{n_signals} of {alphabet}"


# --- the registered task ----------------------------------------------------------------------

MEMORY_CITATION = (
    "Adapted from the adding problem (Sepp Hochreiter and Jürgen Schmidhuber. 1997. \"Long "
    "Short-Term Memory.\" *Neural Computation* 9(8):1735–1780), the copy-memory task (Martin "
    "Arjovsky, Amar Shah and Yoshua Bengio. 2016. \"Unitary Evolution Recurrent Neural Networks.\" "
    "*ICML 2016*) and Quoc V. Le, Navdeep Jaitly and Geoffrey E. Hinton. 2015. \"A Simple Way to "
    "Initialize Recurrent Networks of Rectified Linear Units.\" arXiv:1504.00941; generated here."
)


def _load_memory_task(settings: MemoryConfig, data: object = None, *, progress: bool = True) -> TaskData:
    """The task's splits under ``settings``: generated, so ``data`` (a path) and ``progress``
    (it takes well under a second) do not apply."""
    del data, progress
    return TaskData(**generate_memory_splits(settings), vocab=memory_vocab(settings),
                    details={"source": "generated", "source_kind": "generated",
                             "generator": f"{__name__} (seed {settings.seed})"})


register_task(
    "memory",
    settings=MemoryConfig,
    loader=_load_memory_task,
    description=("Generated memory task: noise tokens with signal symbols drawn from an alphabet; "
                 "the label is the parity of the signals' order, whose first and last stand T "
                 "positions apart, so a model must carry a symbol across T steps"),
    title="Memory",
    citation=MEMORY_CITATION,
    example="sequence",
    text_inputs=False,
    # smoke: a few hundred short sequences, so a run takes seconds.
    profile_deltas={"smoke": {"distance": 8, "n_train": 400, "n_val": 200, "n_test": 400}},
)
