"""Effective robustness (Taori et al., NeurIPS 2020, arXiv 2007.00644).

Across standard models trained on the ID data, OOD accuracy is close to a linear function of ID
accuracy once both are mapped through the logit (or probit) function. Following
``modestyachts/imagenet-testbed`` (its plotting scripts: ``--transform`` default ``logit``; the
line is fitted only on models flagged ``use_for_line_fit``, the standard ones), the line is
fitted on a run's baseline predictors alone; a predictor's effective robustness is its OOD
accuracy minus the line's prediction at its ID accuracy: how much more robust it is than its
ID accuracy alone predicts. ``probit`` is the link of Miller et al. 2021 ("Accuracy on the
line", arXiv 2107.04649).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Link = Literal["probit", "logit"]
EPS = 1e-4  # accuracies are clipped to [EPS, 1 - EPS] before the link


def link(accuracy: np.ndarray | float, kind: Link) -> np.ndarray:
    """Probit (inverse normal CDF) or logit of accuracies."""
    p = np.clip(np.asarray(accuracy, dtype=np.float64), EPS, 1 - EPS)
    if kind == "probit":
        return torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy()
    return np.log(p / (1 - p))


def inverse_link(value: np.ndarray | float, kind: Link) -> np.ndarray:
    """Map back from probit or logit space to accuracies."""
    x = np.asarray(value, dtype=np.float64)
    if kind == "probit":
        return torch.special.ndtr(torch.as_tensor(x, dtype=torch.float64)).numpy()
    return 1 / (1 + np.exp(-x))


MIN_RELIABLE_POINTS = 4  # below this, a fitted line says little


@dataclass(frozen=True)
class Trend:
    """``link(OOD) = slope * link(ID) + intercept``, fitted by least squares on ``points``
    baselines, with the coefficient of determination ``r2`` in link space."""

    slope: float
    intercept: float
    kind: Link
    points: int = 0
    r2: float = float("nan")

    @property
    def reliable(self) -> bool:
        """Whether the line rests on enough points to mean much (at least 4)."""
        return self.points >= MIN_RELIABLE_POINTS

    def predict(self, id_accuracy: np.ndarray | float) -> np.ndarray:
        """The OOD accuracy the trend expects at ``id_accuracy``."""
        return inverse_link(self.slope * link(id_accuracy, self.kind) + self.intercept, self.kind)


def fit_trend(
    id_accuracy: Sequence[float], ood_accuracy: Sequence[float], kind: Link = "logit"
) -> Trend | None:
    """Least-squares line through the baselines in link space; None with fewer than two
    distinct ID accuracies."""
    x, y = link(np.asarray(id_accuracy), kind), link(np.asarray(ood_accuracy), kind)
    if len(np.unique(np.round(x, 12))) < 2:
        return None
    slope, intercept = np.polyfit(x, y, deg=1)
    residual = float(np.sum((y - (slope * x + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - residual / total if total > 0 else 1.0
    return Trend(float(slope), float(intercept), kind, len(x), r2)


def effective_robustness(id_accuracy: float, ood_accuracy: float, trend: Trend) -> float:
    """OOD accuracy above (positive) or below the baselines' trend at this ID accuracy."""
    return float(ood_accuracy - trend.predict(id_accuracy))
