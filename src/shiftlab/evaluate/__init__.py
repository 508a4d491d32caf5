"""Metrics and evaluation of predictors into records."""

from shiftlab.evaluate.metrics import classification_metrics, expected_calibration_error
from shiftlab.evaluate.records import evaluate_predictor, predictor_logits

__all__ = [
    "classification_metrics",
    "evaluate_predictor",
    "expected_calibration_error",
    "predictor_logits",
]
