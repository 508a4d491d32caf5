"""Classification metrics on logits: accuracy, macro-F1, ECE, NLL, worst-group accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score


def log_probs(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """Row-wise log-softmax in float64, shape (N, K)."""
    tensor = torch.as_tensor(logits, dtype=torch.float64)
    return torch.log_softmax(tensor, dim=-1).numpy()


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, num_bins: int = 15
) -> dict[str, list[float | int | None]]:
    """Top-label confidence bins ``(b/M, (b+1)/M]``: count, mean confidence and accuracy of each.

    Empty bins have ``None`` confidence and accuracy. This is what a reliability diagram plots.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # A confidence c falls in bin b when edges[b] < c <= edges[b + 1].
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    out: dict[str, list[float | int | None]] = {"count": [], "confidence": [], "accuracy": []}
    for b in range(num_bins):
        members = bins == b
        out["count"].append(int(members.sum()))
        out["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        out["accuracy"].append(float(correct[members].mean()) if members.any() else None)
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017).

    ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over bins ``(b/M, (b+1)/M]``.

    Args:
        probs: (N, K) class probabilities.
        labels: (N,) true class indices.
        num_bins: M, the number of bins.
    """
    return ece_of_bins(reliability_bins(probs, labels, num_bins))


def ece_of_bins(bins: dict[str, list[Any]]) -> float:
    """ECE from :func:`reliability_bins`: the count-weighted mean gap of accuracy and
    confidence; NaN when no bin holds an example."""
    total = sum(bins["count"])
    if total == 0:
        return float("nan")
    return float(
        sum(
            n / total * abs(acc - conf)
            for n, conf, acc in zip(
                bins["count"], bins["confidence"], bins["accuracy"], strict=True
            )
            if n
        )
    )


def group_accuracies(
    predictions: np.ndarray, labels: np.ndarray, groups: np.ndarray, group_ids: list[int]
) -> dict[int, float | None]:
    """Accuracy per group id; ``None`` for a group with no examples in this split."""
    out: dict[int, float | None] = {}
    for g in group_ids:
        members = groups == g
        out[g] = float((predictions[members] == labels[members]).mean()) if members.any() else None
    return out


def classification_metrics(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    group_names: list[str] | None = None,
    num_bins: int = 15,
) -> dict[str, Any]:
    """Every record metric for one split.

    Args:
        logits: (N, K) unnormalised scores.
        labels: (N,) true class indices.
        groups: optional (N,) group ids; adds worst-group and per-group accuracy.
        group_names: names of group ids 0..G-1 (groups absent from the split are reported).
        num_bins: ECE bins.

    Returns:
        ``accuracy``, ``macro_f1``, ``ece``, ``nll``, ``reliability`` (the ECE bins),
        ``worst_group_accuracy`` (None without groups) and, with groups, ``group_accuracy``
        mapping group name to accuracy (None when the group has no examples here).
    """
    logp = log_probs(logits)
    labels = np.asarray(labels, dtype=np.int64)
    predictions = logp.argmax(axis=1)
    n = len(labels)
    bins = reliability_bins(np.exp(logp), labels, num_bins)
    result: dict[str, Any] = {
        "accuracy": float((predictions == labels).mean()) if n else float("nan"),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0))
        if n
        else float("nan"),
        "ece": ece_of_bins(bins),
        "reliability": bins,
        "nll": float(-logp[np.arange(n), labels].mean()) if n else float("nan"),
        "worst_group_accuracy": None,
    }
    if groups is not None:
        ids = list(range(len(group_names))) if group_names else sorted(np.unique(groups).tolist())
        names = group_names or [str(g) for g in ids]
        per_group = group_accuracies(predictions, labels, np.asarray(groups), ids)
        present = [a for a in per_group.values() if a is not None]
        result["worst_group_accuracy"] = min(present) if present else None
        result["group_accuracy"] = {names[g]: a for g, a in per_group.items()}
    return result


def score_of(record: dict[str, Any]) -> float | None:
    """A record's headline number: accuracy (classification) or ROUGE-L F1 (generation)."""
    return record.get("accuracy", record.get("rouge_l"))
