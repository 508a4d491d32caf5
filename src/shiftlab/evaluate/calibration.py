"""Temperature scaling (Guo et al., ICML 2017, arXiv 1706.04599): one scalar per predictor.

The temperature ``T`` minimises the negative log-likelihood of ``softmax(logits / T)`` on ID
validation data. The NLL is convex in ``1 / T``, so a 1-D search is exact: we minimise over
``log T`` with L-BFGS and strong-Wolfe line search, in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.data.benchmark import Split
from shiftlab.evaluate.records import predictor_logits
from shiftlab.features import FeatureCache
from shiftlab.models.classifier import Predictor
from shiftlab.models.combination import TemperatureScaled


def fit_temperature(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """The temperature ``T > 0`` minimising ``NLL(softmax(logits / T), labels)``.

    Args:
        logits: (N, K) uncalibrated logits (ID validation).
        labels: (N,) true classes.
    """
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def temperature_scaled(predictor: Predictor, val: Split, cache: FeatureCache) -> Predictor:
    """``predictor`` with its logits divided by the temperature fitted on ``val``.

    Named ``NAME+ts``; same recipe; ``params.temperature`` holds T and the records carry
    ``"calibrated": true``. Scored from cached features: no encoder runs again.
    """
    temperature = fit_temperature(predictor_logits(predictor, val, cache), val.labels)
    return Predictor(
        f"{predictor.name}+ts",
        predictor.recipe,
        TemperatureScaled(predictor.model, temperature),
        params={**predictor.params, "temperature": round(temperature, 4)},
        save=False,
        info={**predictor.info, "calibrated": True},
    )
