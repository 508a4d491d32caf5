"""How well a set of flags recovers the truly noisy examples: precision, recall, F1.

The label-error detection scores of confident learning's planted-noise experiments (Northcutt,
Jiang and Chuang, JAIR 2021, arXiv 1911.00068): flags scored against the examples whose labels
were flipped. Computed as scikit-learn's ``precision_score`` / ``recall_score`` / ``f1_score``
with ``zero_division=0`` (the reference followed for the empty cases): the precision of an
empty flag set is 0 (reported with ``n_flagged`` 0, so it is not mistaken for a bad detector),
the recall when nothing is truly noisy is 0 (with ``n_true`` 0), and F1 is 0 whenever
precision + recall is 0.
"""

from __future__ import annotations

import numpy as np

from shiftlab.errors import DataError


def detection_metrics(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """Precision, recall and F1 of ``flagged`` against ``truth``.

    Args:
        flagged: (N,) bool, the examples a detector flagged.
        truth: (N,) bool, the examples that really are noisy.

    Returns:
        ``precision``, ``recall``, ``f1`` (floats in [0, 1]), and the counts ``n_flagged``,
        ``n_true`` and ``true_positives``.
    """
    flagged = np.asarray(flagged)
    truth = np.asarray(truth)
    if flagged.shape != truth.shape or flagged.ndim != 1:
        raise DataError(
            f"flags and truth must be (N,) of one length: {flagged.shape}, {truth.shape}"
        )
    if flagged.dtype != bool or truth.dtype != bool:
        raise DataError("flags and truth must be boolean masks, not indices")
    hits = int((flagged & truth).sum())
    n_flagged, n_true = int(flagged.sum()), int(truth.sum())
    precision = hits / n_flagged if n_flagged else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_flagged": n_flagged,
        "n_true": n_true,
        "true_positives": hits,
    }
