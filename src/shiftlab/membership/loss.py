"""``loss``: the target model's mean token log-probability (the negative mean token loss).

The LOSS attack of Yeom et al., "Privacy Risk in Machine Learning: Analyzing the Connection to
Overfitting" (CSF 2018, arXiv 1709.01604), as language-model membership papers run it: Min-K%++
(Zhang et al., ICLR 2025, arXiv 2404.02936), reference ``zjysteven/mink-plus-plus`` ``run.py``
lines 82-84 and 91: ``ll = -loss`` where ``loss`` is Hugging Face's mean cross-entropy over the
T - 1 predicted tokens. Here: ``mean_t log p(x_t | x_<t)``, from :func:`shiftlab.lm.logprobs.
token_logprobs` (the same tokens: the tokenizer's special tokens added, the first token not
scored). Higher = more likely a member.
"""

from __future__ import annotations

from shiftlab.membership.base import TextStats
from shiftlab.registry import MEMBERSHIP
from shiftlab.typed import NoOptions


@MEMBERSHIP.register("loss", options=NoOptions)
def loss_score(stats: TextStats, options: NoOptions) -> float:
    """Negative mean token loss: mean_t log p(x_t | x_<t)."""
    return float(stats.logp.mean())
