"""``reference``: a reference model's loss minus the target model's loss.

The reference-model calibration of Carlini et al., "Extracting Training Data from Large Language
Models" (USENIX Security 2021, arXiv 2012.07805; the "Small" / "Medium" comparisons of section
5.1), as Min-K%++ (arXiv 2404.02936) runs it: ``zjysteven/mink-plus-plus`` ``run_ref.py``
line 111, ``scores['ref'].append(ll - ll_ref)`` with ``ll = -loss`` of each model (lines
91-98). Score = ``loss_ref - loss_target`` = ``mean log p_target - mean log p_ref``: high when
the target finds the text much likelier than a model that never saw it. Higher = more likely a
member.

Difference, stated: the reference tokenises the text for both models with the target's tokenizer
(``run_ref.py`` line 92 reads the global ``tokenizer``), which is right only for a reference of
the same tokenizer; here each model reads the text with its own tokenizer, and each loss is a
mean over that model's tokens (the same thing when the tokenizers agree).
"""

from __future__ import annotations

from shiftlab.membership.base import REFERENCE, TextStats
from shiftlab.registry import MEMBERSHIP
from shiftlab.typed import NoOptions


@MEMBERSHIP.register("reference", options=NoOptions, needs=(REFERENCE,))
def reference_score(stats: TextStats, options: NoOptions) -> float:
    """Reference model's mean token loss minus the target model's."""
    if stats.reference_logp is None:  # score_all checks this before any forward pass
        raise ValueError("the reference score needs the reference model's log-probabilities")
    return float(stats.logp.mean()) - float(stats.reference_logp.mean())
