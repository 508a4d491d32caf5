"""TENT: fully test-time adaptation by entropy minimisation (Wang et al., ICLR 2021,
arXiv 2006.10726).

Follows ``DequanWang/tent`` (``tent.py``): the model is put in train mode (``configure_model``;
a model with dropout stays in eval mode, shiftlab's choice: see :mod:`shiftlab.adapt.base`),
BatchNorm layers use test-batch statistics, only the affine scale and shift of normalisation
layers are updated, by Adam (lr 1e-3, betas (0.9,
0.999), no weight decay), one step per batch, online within a stream; the predictions returned
are those computed before the update. LayerNorm and GroupNorm affine parameters adapt too, so
transformers can be adapted (the reference handles BatchNorm2d only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.adapt.base import AdaptOptions, NormAdapter
from shiftlab.adapt.losses import entropy
from shiftlab.registry import ADAPT
from shiftlab.typed import param


@dataclass
class TentOptions(AdaptOptions):
    """TENT's defaults (cfgs/tent.yaml): Adam 1e-3, batch 200, one step, online; with
    ``optimizer: sgd``, Nesterov momentum as its conf.py."""

    nesterov: bool = param(True, "Nesterov momentum (SGD only; TENT's conf.py)")


@ADAPT.register("tent", options=TentOptions)
class Tent(NormAdapter):
    """Minimise the softmax entropy of predictions, updating normalisation affine parameters."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        return entropy(logits).mean()
