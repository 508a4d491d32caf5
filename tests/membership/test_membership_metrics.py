"""Attack metrics against scikit-learn and brute force; the classifier threshold attacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from shiftlab.errors import DataError
from shiftlab.membership import attack_metrics, classifier_attack, classifier_scores, tpr_at_fpr


def brute_force_tpr(scores: np.ndarray, members: np.ndarray, budget: float) -> float:
    """Best TPR over every threshold "member iff score >= t" with FPR <= budget."""
    best = 0.0
    for t in [np.inf, *np.unique(scores)]:
        predicted = scores >= t
        if predicted[~members].mean() <= budget:
            best = max(best, predicted[members].mean())
    return float(best)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_and_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    members = rng.random(400) < 0.4
    # rounded scores: many ties between members and non-members
    scores = np.round(rng.normal(size=400) + 0.8 * members, 1)
    got = attack_metrics(scores, members)
    assert got["auroc"] == pytest.approx(roc_auc_score(members, scores), abs=1e-12)
    assert got["tpr_at_1fpr"] == pytest.approx(brute_force_tpr(scores, members, 0.01))
    assert got["tpr_at_5fpr"] == pytest.approx(brute_force_tpr(scores, members, 0.05))
    assert tpr_at_fpr(scores, members, 0.05) == got["tpr_at_5fpr"]


def test_tpr_on_a_curve_known_by_hand() -> None:
    # 100 non-members, 10 members; 3 members score above every non-member, 1 non-member
    # scores above the other 7 members.
    members = np.array([True] * 10 + [False] * 100)
    scores = np.concatenate([[10, 9, 8, 6, 5, 4, 3, 2, 1, 0], np.arange(100) / 100 - 2])
    scores[10] = 7  # the one non-member above 7 members
    assert tpr_at_fpr(scores, members, 0.0) == pytest.approx(0.3)
    assert tpr_at_fpr(scores, members, 0.01) == pytest.approx(1.0)
    assert attack_metrics(scores, members)["tpr_at_1fpr"] == pytest.approx(1.0)


def test_tied_operating_points_are_kept() -> None:
    # one member and one non-member tied at each of 10 top scores: the ROC points lie on a
    # straight line, which roc_curve's drop_intermediate would thin out
    members = np.array([True, False] * 10 + [True] * 90 + [False] * 90)
    scores = np.concatenate([np.repeat(np.arange(20, 10, -1), 2), np.zeros(180)])
    assert tpr_at_fpr(scores, members, 0.05) == pytest.approx(
        brute_force_tpr(scores, members, 0.05)
    )
    assert tpr_at_fpr(scores, members, 0.05) == pytest.approx(0.05)


def test_metrics_accept_tensors_and_0_1_labels() -> None:
    scores = torch.tensor([0.1, 0.9, 0.4, 0.8])
    assert attack_metrics(scores, torch.tensor([0, 1, 0, 1]))["auroc"] == 1.0
    assert attack_metrics(-scores, [0, 1, 0, 1])["auroc"] == 0.0


def test_metric_errors() -> None:
    with pytest.raises(DataError, match="both members and non-members"):
        attack_metrics([0.1, 0.2], [True, True])
    with pytest.raises(DataError, match="not finite"):
        attack_metrics([0.1, np.nan], [True, False])
    with pytest.raises(DataError, match="two"):
        attack_metrics([0.1, 0.2, 0.3], [True, False])
    with pytest.raises(DataError, match="0 / 1"):
        attack_metrics([0.1, 0.2], [2, 0])


def test_classifier_attack_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5)) * 3
    labels = rng.integers(5, size=300)
    members = rng.random(300) < 0.5
    logits[members, labels[members]] += 2.0  # members fit better
    ce = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(labels), reduction="none"
    ).numpy()
    confidence = torch.softmax(torch.tensor(logits), dim=1).max(dim=1).values.numpy()
    scores = classifier_scores(logits, labels)
    np.testing.assert_allclose(scores["loss"], -ce, rtol=1e-10)
    np.testing.assert_allclose(scores["confidence"], confidence, rtol=1e-10)
    got = classifier_attack(torch.tensor(logits, dtype=torch.float32), labels, members)
    assert set(got) == {"loss", "confidence"}
    assert got["loss"]["auroc"] == pytest.approx(roc_auc_score(members, -ce), abs=1e-6)
    assert got["confidence"]["auroc"] == pytest.approx(roc_auc_score(members, confidence), abs=1e-6)
    assert got["loss"]["tpr_at_5fpr"] == pytest.approx(
        brute_force_tpr(-ce, members, 0.05), abs=0.01
    )
    assert got["loss"]["auroc"] > 0.6


def test_classifier_attack_errors() -> None:
    with pytest.raises(DataError, match="class indices"):
        classifier_scores(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(DataError, match=r"\(N, K\)"):
        classifier_scores(np.zeros(3), np.array([0, 1, 2]))
