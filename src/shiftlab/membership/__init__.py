"""Training data inside a model: membership inference scores and attack metrics.

Scores of a text under a causal LM, each in one module and registered in :data:`MEMBERSHIP`
(higher = more likely a member):

- ``loss``: mean token log-probability (Yeom et al., arXiv 1709.01604; :mod:`.loss`);
- ``zlib``: that over the text's zlib-compressed length (Carlini et al., arXiv 2012.07805;
  :mod:`.zlib_ratio`);
- ``reference``: a reference model's loss minus the target's (:mod:`.reference`);
- ``min_k``: Min-K% Prob (Shi et al., arXiv 2310.16789; :mod:`.min_k`);
- ``min_k_pp``: Min-K%++ (Zhang et al., arXiv 2404.02936; :mod:`.min_k_pp`).

::

    scores = score(model, tokenizer, texts, "min_k_pp", k=0.2)
    every = score_all(model, tokenizer, texts, ["loss", "zlib", "min_k", "min_k_pp"])
    attack_metrics(scores, is_member)  # {"auroc", "tpr_at_1fpr", "tpr_at_5fpr"}
    classifier_attack(logits, labels, is_member)  # {"loss": ..., "confidence": ...}

The reference implementation followed throughout is ``zjysteven/mink-plus-plus`` (``run.py``,
``run_ref.py``); each module names the lines.
"""

from shiftlab.membership.base import KOptions, TextStats, k_count, lowest_k_mean
from shiftlab.membership.metrics import (
    attack_intervals,
    attack_metrics,
    classifier_attack,
    classifier_scores,
    tpr_at_fpr,
)
from shiftlab.membership.score_texts import DEFAULT_METHODS, score, score_all
from shiftlab.membership.zlib_ratio import compressed_length
from shiftlab.registry import MEMBERSHIP

__all__ = [
    "DEFAULT_METHODS",
    "MEMBERSHIP",
    "KOptions",
    "TextStats",
    "attack_intervals",
    "attack_metrics",
    "classifier_attack",
    "classifier_scores",
    "compressed_length",
    "k_count",
    "lowest_k_mean",
    "score",
    "score_all",
    "tpr_at_fpr",
]
