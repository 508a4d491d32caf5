"""Hard pseudo-labels: self-training on the model's own confident predictions (Lee 2013), as
the ``hard_pl`` baseline of conjugate pseudo-labels (Goyal et al. 2022, arXiv 2207.09640).

As ``locuslab/tta_conjugate`` (``cifar_tta_test.py``): the argmax class is the label of every
example whose softmax confidence exceeds 0.75, the loss is the source loss's form at that
one-hot label (PolyLoss with the model's epsilon, cross-entropy when eps is 0), and the update
is as TENT's (normalisation affine parameters). A batch with no confident example is not used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from shiftlab.adapt.base import ConjugateReferenceOptions, NormAdapter
from shiftlab.registry import ADAPT
from shiftlab.typed import param


@dataclass
class PseudoLabelOptions(ConjugateReferenceOptions):
    """Confidence threshold and loss form; optimisation as the conjugate reference."""

    threshold: float = param(
        0.75, "only examples predicted with higher confidence are used", within="[0, 1]"
    )
    eps: float | None = param(
        None,
        "PolyLoss epsilon of the loss form; default the model's (0, cross-entropy, unless "
        "it was trained with PolyLoss)",
        within="[-1, inf)",
    )

    def for_model(self, params: dict[str, Any]) -> PseudoLabelOptions:
        if self.eps is not None:
            return self
        return dataclasses.replace(
            self, eps=params.get("eps", 6.0) if params.get("loss") == "poly" else 0.0
        )


@ADAPT.register("pseudo_label", options=PseudoLabelOptions)
class PseudoLabel(NormAdapter):
    """Self-train on confident argmax pseudo-labels, updating normalisation affine parameters."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor | None:
        p = logits.softmax(dim=1)
        confident = p.max(dim=1).values > self.cfg.threshold
        if not confident.any():
            return None
        h, label = logits[confident], logits[confident].argmax(dim=1)
        p_label = p[confident].gather(1, label[:, None]).squeeze(1)
        loss = F.cross_entropy(h, label, reduction="none") + self.cfg.eps * (1 - p_label)
        return loss.mean()
