"""Soft pseudo-labels: the PolyLoss of the model at its own softmax, the ``softmax_pl``
baseline of conjugate pseudo-labels (Goyal et al., NeurIPS 2022, arXiv 2207.09640).

As ``locuslab/tta_conjugate`` (``cifar_tta_test.py``, ``OPTIM.ADAPT: softmax_pl``): the loss is
``logsumexp(h) - sum(p h - eps p (1 - p))`` with ``p = softmax(h / T)``, the source loss's
PolyLoss form at the soft label ``p`` instead of the conjugate label ``y*``. For a model trained
with cross-entropy (eps 0) it equals the entropy (TENT). Updated and optimised as the conjugate
adapter (SGD lr 1e-3, momentum 0.9, Nesterov, batch 200, predictions after the update).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from shiftlab.adapt.base import ConjugateReferenceOptions, NormAdapter
from shiftlab.adapt.losses import softmax_pl_loss
from shiftlab.registry import ADAPT
from shiftlab.typed import param


@dataclass
class SoftmaxPLOptions(ConjugateReferenceOptions):
    """The source model's PolyLoss epsilon; the conjugate reference's optimisation."""

    eps: float | None = param(
        None,
        "PolyLoss epsilon; default the model's (its params.eps when trained with poly, else 0)",
        within="[-1, inf)",
    )
    temperature: float = param(1.0, "logits are divided by this before the loss", within="(0, inf)")

    def for_model(self, params: dict[str, Any]) -> SoftmaxPLOptions:
        if self.eps is not None:
            return self
        eps = params.get("eps", 6.0) if params.get("loss") == "poly" else 0.0
        return dataclasses.replace(self, eps=eps)


@ADAPT.register("softmax_pl", options=SoftmaxPLOptions)
class SoftmaxPL(NormAdapter):
    """Minimise the source PolyLoss at the model's own softmax (soft pseudo-labels)."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        return softmax_pl_loss(logits, eps=cfg.eps, temperature=cfg.temperature).mean()
