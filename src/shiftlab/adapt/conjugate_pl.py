"""Test-time adaptation with conjugate pseudo-labels (Goyal et al., NeurIPS 2022,
arXiv 2207.09640).

The adaptation loss is derived from the loss the source model was trained with (cross-entropy,
PolyLoss, squared; see :mod:`shiftlab.adapt.losses`), on logits divided by a temperature.
Updated and normalised as TENT. Defaults follow ``locuslab/tta_conjugate`` (``cfgs/cifar.yaml``):
SGD lr 1e-3, momentum 0.9, Nesterov, batch 200, one step, online, prediction after the update.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from shiftlab.adapt.base import ConjugateReferenceOptions, NormAdapter
from shiftlab.adapt.losses import conjugate_loss
from shiftlab.errors import ConfigError
from shiftlab.registry import ADAPT
from shiftlab.typed import param


@dataclass
class ConjugatePLOptions(ConjugateReferenceOptions):
    """The source model's training loss, and the reference's CIFAR-10-C optimisation."""

    source_loss: Literal["auto", "ce", "squared", "poly"] = param(
        "auto", "the loss the model was trained with; auto reads the predictor's params.loss"
    )
    eps: float | None = param(
        None, "PolyLoss epsilon; default the predictor's params.eps, or 6", within="[-1, inf)"
    )
    temperature: float = param(1.0, "logits are divided by this before the loss", within="(0, inf)")

    def for_model(self, params: dict[str, Any]) -> ConjugatePLOptions:
        source = params.get("loss", "ce") if self.source_loss == "auto" else self.source_loss
        if source not in ("ce", "squared", "poly"):
            raise ConfigError(
                f"conjugate_pl derives its loss from ce, squared or poly; the model was trained "
                f"with {source}: set source_loss: ce to adapt it as if trained with cross-entropy"
            )
        eps = params.get("eps", 6.0) if self.eps is None else self.eps
        return dataclasses.replace(self, source_loss=source, eps=eps)


@ADAPT.register("conjugate_pl", options=ConjugatePLOptions, aliases=("conjugate",))
class ConjugatePL(NormAdapter):
    """Minimise the conjugate of the source training loss (softmax entropy for cross-entropy)."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        return conjugate_loss(
            logits, cfg.source_loss, eps=cfg.eps, temperature=cfg.temperature
        ).mean()
