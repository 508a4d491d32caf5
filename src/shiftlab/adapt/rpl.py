"""Robust pseudo-labelling (Rusak, Schneider, Pachitariu, Eck, Gehler, Bringmann, Brendel,
Bethge, TMLR 2022, arXiv 2104.12928), as a baseline of conjugate pseudo-labels (Goyal et al.
2022, arXiv 2207.09640).

As ``locuslab/tta_conjugate`` (``cifar_tta_test.py``, ``OPTIM.ADAPT: rpl``): the generalised
cross-entropy of the argmax pseudo-label, ``(1 - p_argmax ** q) / q`` with q = 0.8, on every
example of the batch; normalisation affine parameters are updated with the conjugate
reference's optimisation (SGD lr 1e-3, momentum 0.9, Nesterov, batch 200, predictions after the
update).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.adapt.base import ConjugateReferenceOptions, NormAdapter
from shiftlab.adapt.losses import rpl_loss
from shiftlab.errors import ConfigError
from shiftlab.registry import ADAPT
from shiftlab.typed import param


@dataclass
class RPLOptions(ConjugateReferenceOptions):
    """The generalised cross-entropy's q; the conjugate reference's optimisation."""

    q: float = param(
        0.8, "exponent of the generalised cross-entropy (tta_conjugate: 0.8)", within="(0, 1]"
    )
    temperature: float = param(1.0, "logits are divided by this before the loss", within="(0, inf)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.q <= 1:
            raise ConfigError(f"rpl q must be in (0, 1], got {self.q}")


@ADAPT.register("rpl", options=RPLOptions)
class RPL(NormAdapter):
    """Minimise the generalised cross-entropy of argmax pseudo-labels (robust pseudo-labels)."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        return rpl_loss(logits, q=self.cfg.q, temperature=self.cfg.temperature).mean()
