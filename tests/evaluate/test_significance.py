"""Paired bootstrap and exact McNemar tests."""

from math import comb

import numpy as np
import pytest
from scipy.stats import binomtest

from shiftlab.evaluate.intervals import bootstrap_seed, resampled_means
from shiftlab.evaluate.significance import (
    difference_interval,
    mcnemar,
    paired_bootstrap,
    paired_bootstrap_mean,
)


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors of two models with the given 2x2 table."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_a_model_against_itself_differs_by_exactly_zero():
    correct = np.random.default_rng(0).random(500) < 0.7
    diff = paired_bootstrap(correct, correct, seed=bootstrap_seed(0, "id_test"))
    assert (diff.difference, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert not diff.excludes_zero
    seeds = [bootstrap_seed(0, s) for s in ("tweets", "nyt")]
    mean = paired_bootstrap_mean([(correct, correct, s) for s in seeds])
    assert (mean.difference, mean.low, mean.high) == (0.0, 0.0, 0.0)
    same = resampled_means(correct + 0.0, seeds[0])
    diff = difference_interval(0.0, same, same.copy())
    assert (diff.low, diff.high) == (0.0, 0.0)


@pytest.mark.parametrize(
    "table", [(50, 7, 2, 41), (10, 0, 10, 0), (100, 30, 31, 9), (0, 1, 0, 0), (5, 12, 3, 80)]
)
def test_mcnemar_matches_the_binomial_test_on_the_discordant_pairs(table):
    a, b = outcomes(*table)
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b) == (table[1], table[2])
    expected = binomtest(table[1], table[1] + table[2], 0.5, alternative="two-sided").pvalue
    assert result.pvalue == pytest.approx(expected, rel=1e-12)


def test_mcnemar_by_hand():
    # 7 against 2 discordant pairs: p = 2 * P(X <= 2), X ~ Binomial(9, 1/2) = 2 * 46 / 512
    a, b = outcomes(50, 7, 2, 41)
    assert mcnemar(a, b).pvalue == pytest.approx(2 * sum(comb(9, k) for k in range(3)) / 2**9)
    a, b = outcomes(20, 0, 0, 5)
    assert mcnemar(a, b).pvalue == 1.0  # no discordant pair


def test_a_real_difference_is_found_and_a_small_one_is_not():
    rng = np.random.default_rng(1)
    base = rng.random(1000) < 0.7
    better = base | (rng.random(1000) < 0.25)  # right wherever base is, and on more
    diff = paired_bootstrap(better, base, seed=5)
    assert diff.difference == pytest.approx(better.mean() - base.mean())
    assert diff.low > 0 and diff.excludes_zero
    flip = base.copy()
    flip[:3] = ~flip[:3]  # three examples differ
    assert not paired_bootstrap(flip, base, seed=5).excludes_zero


def test_pairing_narrows_the_interval_of_correlated_models():
    rng = np.random.default_rng(2)
    a = rng.random(800) < 0.8
    b = a.copy()
    b[rng.choice(800, 40, replace=False)] ^= True  # agree on 95% of the examples
    paired = paired_bootstrap(a, b, seed=11)
    unpaired = difference_interval(
        a.mean() - b.mean(), resampled_means(a + 0.0, 11), resampled_means(b + 0.0, 12)
    )
    assert paired.high - paired.low < (unpaired.high - unpaired.low) / 2
