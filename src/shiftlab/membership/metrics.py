"""How well a membership score separates members from non-members; classifier attacks.

:func:`attack_metrics` gives AUROC and the true-positive rate at 1% and 5% false-positive rate,
the measures of Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P
2022, arXiv 2112.03570), computed with scikit-learn as ``zjysteven/mink-plus-plus`` ``run.py``
``get_metrics`` (lines 117-121) does: ``roc_curve(is_member, scores)``, AUROC the area under it,
and ``TPR@x%FPR = tpr[np.where(fpr <= x)[0][-1]]``: the TPR of the last ROC point (the lowest
threshold) whose FPR is at most x, which is the highest TPR any threshold reaches at FPR <= x
(TPR never decreases along the curve). The curve is taken with ``drop_intermediate=False``
(every threshold), so a tied operating point dropped as collinear cannot lower it.

:func:`classifier_attack` runs the two threshold attacks on a classifier's logits: the loss
attack of Yeom et al., "Privacy Risk in Machine Learning: Analyzing the Connection to
Overfitting" (CSF 2018, arXiv 1709.01604), score = -cross-entropy of the true label (as
``tensorflow/privacy`` ``membership_inference_attack.py`` ``_run_threshold_attack`` ranks by
loss), and the confidence attack of Salem et al., "ML-Leaks" (NDSS 2019, arXiv 1806.01246;
its third adversary), score = the largest softmax probability. Both: higher = member.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from shiftlab.errors import DataError

#: The false-positive rates at which the true-positive rate is reported, by metric name.
FPR_LEVELS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values)


def _checked(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = _numpy(scores).astype(np.float64)
    members = _numpy(is_member)
    if scores.ndim != 1 or members.shape != scores.shape:
        raise DataError(
            f"scores {scores.shape} and is_member {members.shape} must be two (N,) arrays"
        )
    if members.dtype != bool:
        if not np.isin(members, (0, 1)).all():
            raise DataError("is_member must hold booleans or 0 / 1")
        members = members.astype(bool)
    if members.all() or not members.any():
        raise DataError("is_member needs both members and non-members to measure an attack")
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} membership scores are not finite")
    return scores, members


def tpr_at_fpr(scores: Any, is_member: Any, fpr: float) -> float:
    """Highest true-positive rate of a threshold on ``scores`` with false-positive rate <= fpr.

    Args:
        scores: (N,) membership scores, higher = member.
        is_member: (N,) booleans (or 0 / 1).
        fpr: the false-positive budget in [0, 1].

    Returns:
        ``tpr[np.where(fpr_curve <= fpr)[0][-1]]`` of ``roc_curve(is_member, scores,
        drop_intermediate=False)``; the curve starts at (0, 0), so some point always qualifies.
    """
    scores, members = _checked(scores, is_member)
    fprs, tprs, _ = roc_curve(members, scores, drop_intermediate=False)
    return float(tprs[np.flatnonzero(fprs <= fpr)[-1]])


def attack_metrics(scores: Any, is_member: Any) -> dict[str, float]:
    """AUROC and TPR at 1% and 5% FPR of a membership score.

    Args:
        scores: (N,) membership scores, higher = member (numpy, list or tensor).
        is_member: (N,) booleans (or 0 / 1): the ground truth.

    Returns:
        ``{"auroc", "tpr_at_1fpr", "tpr_at_5fpr"}``: ``roc_auc_score(is_member, scores)`` and
        :func:`tpr_at_fpr` at 0.01 and 0.05.

    Raises:
        DataError: shapes differ, is_member is not binary or has one class, or a score is not
            finite.
    """
    scores, members = _checked(scores, is_member)
    out = {"auroc": float(roc_auc_score(members, scores))}
    fprs, tprs, _ = roc_curve(members, scores, drop_intermediate=False)
    for name, level in FPR_LEVELS.items():
        out[name] = float(tprs[np.flatnonzero(fprs <= level)[-1]])
    return out


def attack_intervals(
    scores: Any, is_member: Any, *, seed: Any, resamples: int = 1000, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of :func:`attack_metrics`: members and non-members are
    resampled apart (each with replacement, their counts kept), as the examples of a record's
    interval are (:mod:`shiftlab.evaluate.intervals`).

    Returns:
        ``{"auroc": [low, high], "tpr_at_1fpr": [...], "tpr_at_5fpr": [...]}``.
    """
    scores, members = _checked(scores, is_member)
    rng = np.random.default_rng(seed)
    inside, outside = np.flatnonzero(members), np.flatnonzero(~members)
    truth = np.r_[np.ones(len(inside), bool), np.zeros(len(outside), bool)]
    replicates: dict[str, list[float]] = {"auroc": [], **{name: [] for name in FPR_LEVELS}}
    for _ in range(resamples):
        drawn = np.r_[rng.choice(inside, len(inside)), rng.choice(outside, len(outside))]
        values = scores[drawn]
        replicates["auroc"].append(float(roc_auc_score(truth, values)))
        fprs, tprs, _ = roc_curve(truth, values, drop_intermediate=False)
        for name, fpr in FPR_LEVELS.items():
            replicates[name].append(float(tprs[np.flatnonzero(fprs <= fpr)[-1]]))
    tail = (1.0 - level) / 2.0
    return {
        name: [float(v) for v in np.quantile(values, [tail, 1.0 - tail])]
        for name, values in replicates.items()
    }


def classifier_scores(logits: Any, labels: Any) -> dict[str, np.ndarray]:
    """Membership scores of a classifier's examples from its logits.

    Args:
        logits: (N, K) logits.
        labels: (N,) true class indices.

    Returns:
        ``{"loss": (N,) -cross-entropy = log softmax(logits)[label], "confidence": (N,)
        max_k softmax(logits)_k}``, float64.
    """
    logits = _numpy(logits).astype(np.float64)
    labels = _numpy(labels)
    if logits.ndim != 2 or labels.shape != (len(logits),):
        raise DataError(f"logits {logits.shape} and labels {labels.shape} must be (N, K), (N,)")
    if (
        not np.issubdtype(labels.dtype, np.integer)
        or labels.min(initial=0) < 0
        or (labels.max(initial=0) >= logits.shape[1])
    ):
        raise DataError(f"labels must be class indices in [0, {logits.shape[1]})")
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "loss": logp[np.arange(len(labels)), labels],
        "confidence": np.exp(logp.max(axis=1)),
    }


def classifier_attack(
    logits: Any, labels: Any, is_member: Any, *, seed: Any = None
) -> dict[str, dict[str, Any]]:
    """Loss-threshold and confidence-threshold membership attacks on a classifier.

    Args:
        logits: (N, K) the classifier's logits on members and non-members.
        labels: (N,) their true class indices.
        is_member: (N,) booleans: whether each example was in the training set.
        seed: with a seed, each attack's metrics get ``ci`` (:func:`attack_intervals`).

    Returns:
        ``{"loss": metrics, "confidence": metrics}``, each as :func:`attack_metrics`.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, values in classifier_scores(logits, labels).items():
        found[name] = dict(attack_metrics(values, is_member))
        if seed is not None:
            found[name]["ci"] = attack_intervals(
                values, is_member, seed=[*np.atleast_1d(seed), len(found)]
            )
    return found
