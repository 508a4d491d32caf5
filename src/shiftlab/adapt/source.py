"""No adaptation: the source model as trained, in eval mode (the baseline of TENT,
arXiv 2006.10726, and every TTA paper)."""

from __future__ import annotations

from shiftlab.adapt.base import Adapter, AdaptOptions
from shiftlab.registry import ADAPT


@ADAPT.register("source", options=AdaptOptions)
class Source(Adapter):
    """The model unchanged: its own (training) normalisation statistics, no update."""
