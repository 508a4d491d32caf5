"""Label issues by confident learning, through cleanlab.

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels"
(JAIR 2021, arXiv 1911.00068). Nothing is re-implemented: the flags are
``cleanlab.filter.find_label_issues(labels, pred_probs)`` with its defaults
(``filter_by="prune_by_noise_rate"`` unless the score's ``filter_by`` option names another
rule, ``frac_noise=1``, ``min_examples_per_class=1``; per-class thresholds, calibrated
confident joint, and examples whose given label is the argmax never flagged), and the quality is
``cleanlab.rank.get_label_quality_scores`` with its default ``method="self_confidence"``:
``pred_probs[i, labels[i]]``. ``pred_probs`` should be out-of-sample (see
:mod:`shiftlab.curation.oof`). cleanlab is the ``curation`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from shiftlab._optional import require
from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.errors import DataError
from shiftlab.registry import CURATE
from shiftlab.typed import param

# cleanlab's own tolerance on probabilities (cleanlab/internal/constants.py).
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LabelIssues:
    """What confident learning says of each example.

    Attributes:
        flagged: (N,) bool, True where the given label is likely wrong.
        quality: (N,) float in [0, 1], cleanlab's label quality (lower: more likely wrong).
        suggested: (N,) int, the most probable class (argmax of ``pred_probs``).
    """

    flagged: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray


def check_pred_probs(labels: np.ndarray, pred_probs: np.ndarray) -> None:
    """Raise a one-line DataError unless ``pred_probs`` (N, K) are probabilities for ``labels``
    (N,) of integer classes in [0, K)."""
    if pred_probs.ndim != 2 or labels.ndim != 1 or len(labels) != len(pred_probs):
        raise DataError(
            f"pred_probs must be (N, K) and labels (N,), got {pred_probs.shape} and {labels.shape}"
        )
    if labels.size == 0:
        raise DataError("label issues need at least one example")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError("labels must be non-negative integer class indices")
    if labels.max() >= pred_probs.shape[1]:
        raise DataError(f"label {labels.max()} has no column in pred_probs {pred_probs.shape}")
    if not np.isfinite(pred_probs).all() or pred_probs.min() < -_TOLERANCE:
        raise DataError("pred_probs must be finite and non-negative")
    if not np.allclose(pred_probs.sum(axis=1), 1.0, atol=1e-3):
        raise DataError("every row of pred_probs must sum to 1 (pass probabilities, not logits)")
    if len(np.unique(labels)) < 2:
        raise DataError("confident learning needs at least 2 classes among the labels")


FilterBy = Literal[
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]


@dataclass
class LabelIssueScoreOptions:
    """Which of cleanlab's rules flags an example (the precision / recall trade-off)."""

    filter_by: FilterBy = param(
        "prune_by_noise_rate",
        "cleanlab's filter_by: prune_by_noise_rate (its default), confident_learning (fewer, "
        "surer flags), predicted_neq_given (more flags, higher recall), both, ...",
    )


def label_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    n_jobs: int = 1,
    filter_by: FilterBy = "prune_by_noise_rate",
) -> LabelIssues:
    """Flag likely label errors by confident learning (cleanlab's defaults).

    Args:
        labels: (N,) given (possibly noisy) class indices.
        pred_probs: (N, K) out-of-sample predicted probabilities.
        n_jobs: cleanlab's worker processes; cleanlab states results do not depend on it
            (``cleanlab/filter.py``), and its own default (every core) would fork a pool.
        filter_by: cleanlab's rule (its default ``prune_by_noise_rate``).

    Returns:
        The flags, quality scores and suggested labels.
    """
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    check_pred_probs(labels, pred_probs)
    cleanlab_filter = require("cleanlab.filter", "curation")
    cleanlab_rank = require("cleanlab.rank", "curation")
    flagged = cleanlab_filter.find_label_issues(
        labels, pred_probs, n_jobs=n_jobs, filter_by=filter_by
    )
    quality = cleanlab_rank.get_label_quality_scores(labels, pred_probs)
    return LabelIssues(
        flagged=np.asarray(flagged, dtype=bool),
        quality=np.asarray(quality, dtype=np.float64),
        suggested=pred_probs.argmax(axis=1),
    )


@CURATE.register("label_issues", options=LabelIssueScoreOptions)
def label_issues_score(ctx: CurationContext, cfg: LabelIssueScoreOptions) -> ScoreResult:
    """Confident learning (cleanlab) on out-of-sample probabilities: flags, quality, suggestion."""
    found = label_issues(ctx.train.labels, ctx.out_of_sample(), filter_by=cfg.filter_by)
    return ScoreResult(
        found.quality,
        "label quality (cleanlab self-confidence; low: likely mislabelled)",
        flagged=found.flagged,
        suggested=found.suggested,
        summary={"flagged": int(found.flagged.sum())},
    )
