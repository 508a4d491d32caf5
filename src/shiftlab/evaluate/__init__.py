"""Metrics and evaluation of predictors into records."""

from shiftlab.evaluate.evaluator import evaluate_predictor, predictor_logits
from shiftlab.evaluate.metrics import classification_metrics, expected_calibration_error

__all__ = [
    "classification_metrics",
    "evaluate_predictor",
    "expected_calibration_error",
    "predictor_logits",
]
