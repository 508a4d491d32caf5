"""What a curation score sees, and what it gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shiftlab.data.benchmark import Benchmark, Split


@dataclass
class ScoreResult:
    """One score of every ID training example.

    Attributes:
        values: (N,) the score; what a high value means is ``meaning``.
        meaning: e.g. "label quality (low: likely mislabelled)", "difficulty (high: hard)".
        flagged: (N,) bool, examples the score flags (label issues, duplicates), if it flags.
        suggested: (N,) int, a suggested label per example, if the score suggests one.
        pairs: near-duplicate pairs ``(split, i, j, similarity)``: ``i`` in train, ``j`` in
            ``split`` (train itself, or an evaluation split: leakage).
        summary: numbers for the report (e.g. how many were flagged).
        features: (N, D) the features the score read, for actions that select by geometry
            (k-center, D2), if it carries them.
        columns: more per-example values, (N,) each, written beside the score in its file
            (e.g. T-MARS's number of text boxes per image).
    """

    values: np.ndarray
    meaning: str
    flagged: np.ndarray | None = None
    suggested: np.ndarray | None = None
    pairs: list[tuple[str, int, int, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    features: np.ndarray | None = field(default=None, repr=False)
    columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class CurationContext:
    """Everything a score may use. Scores never read files.

    Attributes:
        benchmark: the splits; scores judge ``benchmark.train``.
        features: cached pretrained features (N, D) of a split (one encoder pass per split).
        out_of_sample: (N, K) probabilities of every training example from models that never
            saw it (K-fold, by the configured scorer); computed once, on first use.
        seed: the run's seed.
        device: where heads train.
        featurizer: the pretrained featurizer behind ``features`` (its text side encodes
            captions: T-MARS, CLIP score), if the caller has it.
    """

    benchmark: Benchmark
    features: Callable[[Split], torch.Tensor]
    out_of_sample: Callable[[], np.ndarray]
    seed: int
    device: torch.device
    featurizer: torch.nn.Module | None = None

    @property
    def train(self) -> Split:
        return self.benchmark.train

    def train_features(self) -> np.ndarray:
        """Cached pretrained features (N, D) of the training split, float32."""
        return self.features(self.benchmark.train).numpy().astype(np.float32)
