import math

import numpy as np
import pytest

from shiftlab.evaluate.metrics import classification_metrics, expected_calibration_error


def test_ece_matches_a_hand_computation():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([1, 0, 0, 1])
    # bins of width 1/15: {0.9: right}, {0.8: wrong}, {0.6, 0.55: both right}
    # ECE = 1/4 * |1 - 0.9| + 1/4 * |0 - 0.8| + 2/4 * |1 - 0.575| = 0.4375
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(0.4375)


def test_ece_of_perfectly_calibrated_bins_is_zero():
    probs = np.array([[0.25, 0.75]] * 4)
    labels = np.array([1, 1, 1, 0])  # 75% right at confidence 0.75
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_nll_accuracy_and_macro_f1_by_hand():
    logits = np.log(np.array([[1, 3, 0.5], [2, 1, 1], [1, 8, 1], [1, 1, 2], [6, 1, 1]]))
    labels = np.array([1, 0, 1, 1, 2])
    m = classification_metrics(logits, labels)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert m["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(5), labels])))
    assert m["accuracy"] == pytest.approx(3 / 5)
    # predictions [1, 0, 1, 2, 0]; F1: class 0 = 2*0.5*1/(1.5) = 2/3, class 1 = 2*1*(2/3)/(5/3)
    # = 0.8, class 2 = 0 -> macro (2/3 + 0.8 + 0) / 3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert m["worst_group_accuracy"] is None


def test_nll_of_a_known_probability():
    m = classification_metrics(np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert m["nll"] == pytest.approx(-math.log(0.75))


def test_worst_group_accuracy_by_hand_and_absent_groups_reported():
    logits = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0]], dtype=float)
    labels = np.array([0, 1, 1, 1, 1])
    groups = np.array([0, 0, 1, 1, 1])
    m = classification_metrics(logits, labels, groups, group_names=["a", "b", "c"])
    # group a: 1 of 2 right; group b: 2 of 3 right; group c: no examples
    assert m["group_accuracy"] == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}
    assert m["worst_group_accuracy"] == 0.5
