"""``min_k``: Min-K% Prob, the mean log-probability of the text's k% least likely tokens.

Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024,
arXiv 2310.16789. Reference followed: ``zjysteven/mink-plus-plus`` ``run.py`` lines 95-106 (the
Min-K%++ authors' re-implementation, same as ``swj0419/detect-pretrain-code`` ``src/run.py``
``inference`` up to its sign): with ``logp`` the T - 1 token log-probabilities,
``k_length = int(len(logp) * k)`` and the score is ``mean(np.sort(logp)[:k_length])``. Higher =
more likely a member (``detect-pretrain-code`` stores the negation and negates again in
``sweep``). Default k = 0.2, the paper's choice.

Difference, stated: where ``int(len(logp) * k)`` is 0 (fewer than 1/k scored tokens) the
reference averages an empty slice (NaN); here the single lowest token is used
(:func:`shiftlab.membership.base.k_count`).
"""

from __future__ import annotations

from shiftlab.membership.base import KOptions, TextStats, lowest_k_mean
from shiftlab.registry import MEMBERSHIP


@MEMBERSHIP.register("min_k", options=KOptions)
def min_k_score(stats: TextStats, options: KOptions) -> float:
    """Mean of the k% lowest token log-probabilities (Min-K% Prob)."""
    return lowest_k_mean(stats.logp, options.k)
