"""Paired tests of two models scored on the same examples.

- **Paired bootstrap** (Efron & Tibshirani 1993, ch. 16; Koehn 2004, "Statistical significance
  tests for machine translation evaluation"): both models are scored on the same resampled
  examples (:mod:`shiftlab.evaluate.intervals` draws a split's resamples from its seed alone), and
  the percentile interval of the replicate differences is the 95% interval of the difference. A
  model against itself differs by exactly zero on every replicate.
- **Exact McNemar test** (McNemar 1947; recommended for comparing classifiers on one test set by
  Dietterich 1998, "Approximate statistical tests for comparing supervised classification
  learning algorithms"): only the discordant examples count; under the null each is equally
  likely to favour either model, so the number favouring the first is Binomial(b + c, 1/2):
  ``scipy.stats.binomtest(b, b + c, 0.5)``, two-sided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shiftlab.evaluate.intervals import LEVEL, RESAMPLES, percentile_interval, resampled_means


@dataclass(frozen=True)
class PairedDifference:
    """A difference of a metric between two models (first minus second) and its interval."""

    difference: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below zero (a significant difference)."""
        return self.low > 0.0 or self.high < 0.0


def difference_interval(
    estimate: float, replicates_a: np.ndarray, replicates_b: np.ndarray, level: float = LEVEL
) -> PairedDifference:
    """The percentile interval of paired replicate differences.

    Args:
        estimate: the difference on the full sample (first minus second).
        replicates_a: (B,) the first model's metric on each replicate.
        replicates_b: (B,) the second model's metric on the same replicates.
        level: the interval's coverage.
    """
    low, high = percentile_interval(np.asarray(replicates_a) - np.asarray(replicates_b), level)
    return PairedDifference(float(estimate), low, high)


def paired_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> PairedDifference:
    """Paired bootstrap of an accuracy difference on one split.

    Args:
        correct_a: (N,) whether the first model is right on each example.
        correct_b: (N,) the same for the second model, on the same examples in the same order.
        seed: the split's bootstrap seed.
        resamples: B.
        level: the interval's coverage.
    """
    return paired_bootstrap_mean([(correct_a, correct_b, seed)], resamples=resamples, level=level)


def paired_bootstrap_mean(
    splits: Sequence[tuple[np.ndarray, np.ndarray, int]],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> PairedDifference:
    """Paired bootstrap of the difference in mean accuracy over several splits: each split is
    resampled with its own seed, and the per-split differences are averaged per replicate.

    Args:
        splits: per split, (correct_a (N_s,), correct_b (N_s,), seed).
        resamples: B.
        level: the interval's coverage.
    """
    estimates, replicates = [], []
    for correct_a, correct_b, seed in splits:
        delta = np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64)
        estimates.append(delta.mean())
        replicates.append(resampled_means(delta, seed, resamples))
    low, high = percentile_interval(np.mean(replicates, axis=0), level)
    return PairedDifference(float(np.mean(estimates)), low, high)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: examples only the first model gets right, only the second, and the
    two-sided p-value of the binomial test on these discordant pairs."""

    only_a: int
    only_b: int
    pvalue: float


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Exact McNemar test of two models on the same examples (p = 1 without discordant pairs).

    Args:
        correct_a: (N,) whether the first model is right on each example.
        correct_b: (N,) the same for the second model, in the same order.
    """
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    pvalue = binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue
    return McNemar(only_a, only_b, float(pvalue))
