import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from shiftlab.curation import detection_metrics
from shiftlab.errors import DataError


def test_metrics_of_hand_made_flags():
    flagged = np.array([True, True, False, False, True])
    truth = np.array([True, False, True, False, True])
    m = detection_metrics(flagged, truth)  # 2 hits of 3 flags and of 3 true errors
    assert m == {
        "precision": 2 / 3,
        "recall": 2 / 3,
        "f1": pytest.approx(2 / 3),
        "n_flagged": 3,
        "n_true": 3,
        "true_positives": 2,
    }


def test_empty_sets_score_zero_with_their_counts():
    m = detection_metrics(np.zeros(4, bool), np.array([True, False, False, True]))
    assert (m["precision"], m["recall"], m["f1"], m["n_flagged"], m["n_true"]) == (0, 0, 0, 0, 2)
    m = detection_metrics(np.array([True, False]), np.zeros(2, bool))
    assert (m["precision"], m["recall"], m["n_flagged"], m["n_true"]) == (0, 0, 1, 0)


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    flagged, truth = rng.random(200) < 0.3, rng.random(200) < 0.2
    m = detection_metrics(flagged, truth)
    assert m["precision"] == pytest.approx(precision_score(truth, flagged, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(truth, flagged, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(truth, flagged, zero_division=0))


def test_indices_instead_of_masks_are_refused():
    with pytest.raises(DataError, match="boolean"):
        detection_metrics(np.array([0, 3]), np.array([1, 0]))
