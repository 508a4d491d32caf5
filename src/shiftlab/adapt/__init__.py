"""Test-time adaptation: adapters register in ``ADAPT`` on import.

``create(name, model, **config)`` returns an ``nn.Module`` whose ``forward(x)`` adapts (as
configured) and returns logits, and whose ``reset()`` restores the state it started from.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from shiftlab.adapt.base import Adapter, AdaptOptions
from shiftlab.adapt.params import norm_affine_parameters, use_batch_statistics
from shiftlab.registry import ADAPT
from shiftlab.typed import build


def create(
    name: str, model: nn.Module, *, model_params: dict[str, Any] | None = None, **config: Any
) -> Adapter:
    """An adapter of kind ``name`` around a copy of ``model``; ``config`` sets its options.

    ``model_params`` (a predictor's params, e.g. ``{"loss": "poly", "eps": 6}``) fills options
    left to the model, such as the conjugate loss's ``source_loss: auto``.

    Raises:
        ConfigError: unknown adapter or option. AdaptError: the model cannot be adapted.
    """
    entry = ADAPT[name]
    options = build(entry.options, config, f"adapt.{name}").for_model(model_params or {})
    return entry.obj(model, options)


__all__ = [
    "AdaptOptions",
    "Adapter",
    "create",
    "norm_affine_parameters",
    "use_batch_statistics",
]
