"""What every membership score shares: the registry, one text's token statistics, and k%.

A score is a function ``(stats, options) -> float`` registered in :data:`MEMBERSHIP` with its
options dataclass, oriented so that a higher score means the text is more likely a member of the
model's training data (Min-K%++'s convention, ``zjysteven/mink-plus-plus`` ``run.py`` lines
86-88: "the score is larger for training data"). ``requires`` names what the score needs besides
each token's log-probability: ``vocab_stats`` (the vocabulary mean and standard deviation of
log p at each position) or ``reference`` (a reference model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftlab.errors import ConfigError
from shiftlab.registry import MEMBERSHIP
from shiftlab.typed import param

__all__ = ["MEMBERSHIP"]  # scores by name (loss, zlib, reference, min_k, min_k_pp)

VOCAB_STATS = "vocab_stats"
REFERENCE = "reference"


@dataclass(frozen=True)
class TextStats:
    """What the forward passes give about one text (T tokens, T - 1 of them scored).

    Attributes:
        text: the text as given.
        logp: (T - 1,) float64, log p(x_t | x_<t) under the target model.
        mean: (T - 1,) float64, sum_v p_v log p_v at each position (None unless asked).
        std: (T - 1,) float64, sqrt(sum_v p_v (log p_v)^2 - mean^2) (None unless asked).
        reference_logp: (T' - 1,) float64, the token log-probabilities of the text under the
            reference model and its own tokenizer (None without a reference).
    """

    text: str
    logp: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    reference_logp: np.ndarray | None = None


@dataclass
class KOptions:
    """Options of the scores that average the k% lowest token values."""

    k: float = param(
        0.2, "fraction of the text's scored tokens averaged (the lowest ones)", within="(0, 1]"
    )

    def __post_init__(self) -> None:
        if not 0 < self.k <= 1:
            raise ConfigError(f"k must be in (0, 1], got {self.k}")


def k_count(tokens: int, k: float) -> int:
    """How many tokens are "the lowest k%" of ``tokens`` scored tokens.

    ``int(tokens * k)`` (truncation of the float product), as the reference computes
    ``k_length`` (``zjysteven/mink-plus-plus`` ``run.py`` lines 104 and 111;
    ``swj0419/detect-pretrain-code`` ``src/run.py``, ``inference``), with a floor of 1: where
    the product is below 1 the reference averages an empty slice (NaN); here the single lowest
    token is used instead.
    """
    return max(1, int(tokens * k))


def lowest_k_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ``k_count(len(values), k)`` smallest values.

    Args:
        values: (T - 1,) per-token values (log-probabilities or their z-scores), non-empty.
        k: fraction in (0, 1].

    Returns:
        The mean of the lowest k% (``np.sort(values)[:k_length].mean()``).
    """
    return float(np.sort(values)[: k_count(len(values), k)].mean())
