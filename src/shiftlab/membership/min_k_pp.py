"""``min_k_pp``: Min-K%++, Min-K% over token log-probabilities standardised per position.

Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language
Models" (ICLR 2025, arXiv 2404.02936). Reference followed: ``zjysteven/mink-plus-plus``
``run.py`` lines 95-100 and 108-113. At each position t, with p the model's next-token
distribution over the vocabulary,

- ``mu_t = sum_v p_v log p_v`` (line 99),
- ``sigma_t = sqrt(sum_v p_v (log p_v)^2 - mu_t^2)`` (line 100, square-rooted at line 109),
- ``z_t = (log p(x_t | x_<t) - mu_t) / sigma_t`` (line 109),

and the score is the mean of the ``int(len(z) * k)`` lowest ``z_t`` (lines 111-113). Higher =
more likely a member. Default k = 0.2. ``mu`` and ``sigma`` come from
:func:`shiftlab.lm.logprobs.token_logprobs` with ``with_vocab_stats=True`` (float32 softmax).

Differences, stated: as for ``min_k``, at least one token is averaged (the reference's empty
slice is NaN); and where ``sigma_t`` is 0 (a distribution that is one-hot to float32 precision,
where the reference divides 0 by 0) ``z_t`` is 0.
"""

from __future__ import annotations

import numpy as np

from shiftlab.membership.base import (
    MEMBERSHIP,
    VOCAB_STATS,
    KOptions,
    TextStats,
    lowest_k_mean,
)


def standardised(logp: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-token z-scores of Min-K%++.

    Args:
        logp: (T - 1,) token log-probabilities.
        mean: (T - 1,) vocabulary mean of log p at each position.
        std: (T - 1,) vocabulary standard deviation of log p at each position.

    Returns:
        (T - 1,) float64 ``(logp - mean) / std``, 0 where ``std`` is 0.
    """
    logp, mean, std = (np.asarray(a, dtype=np.float64) for a in (logp, mean, std))
    return np.divide(logp - mean, std, out=np.zeros_like(logp), where=std > 0)


@MEMBERSHIP.register("min_k_pp", options=KOptions, needs=(VOCAB_STATS,))
def min_k_pp_score(stats: TextStats, options: KOptions) -> float:
    """Mean of the k% lowest standardised token log-probabilities (Min-K%++)."""
    if stats.mean is None or stats.std is None:  # score_all asks for them
        raise ValueError("min_k_pp needs the vocabulary mean and std of log p")
    return lowest_k_mean(standardised(stats.logp, stats.mean, stats.std), options.k)
