"""Test-batch normalisation statistics (Schneider et al. 2020, arXiv 2006.16971; TENT's
``norm.py`` baseline, arXiv 2006.10726).

Every BatchNorm layer normalises with the mean and variance of the test batch instead of the
running statistics of training; no parameter changes.
"""

from __future__ import annotations

from torch import nn

from shiftlab.adapt.base import Adapter, AdaptOptions
from shiftlab.adapt.params import use_batch_statistics
from shiftlab.errors import AdaptError
from shiftlab.registry import ADAPT


@ADAPT.register("norm", options=AdaptOptions)
class Norm(Adapter):
    """BatchNorm with test-batch statistics; nothing is trained."""

    def configure(self, model: nn.Module) -> list[nn.Parameter]:
        if use_batch_statistics(model) == 0:
            raise AdaptError(
                f"adapter 'norm' needs BatchNorm layers, and {type(model).__name__} has none "
                "(LayerNorm and GroupNorm already normalise each example by itself); use tent"
            )
        return []
