"""Machine unlearning: methods that make a trained model forget a set of its training examples.

Each method is a class registered in :data:`UNLEARN` with its options dataclass and the model
kinds it applies to (``encoder``, ``causal_lm``), on the contract of :mod:`shiftlab.unlearn.base`,
and is run as::

    unlearned = unlearn("scrub", model, forget, retain, {"epochs": 2}, seed=0, device="cpu")

where ``forget`` and ``retain`` are :class:`Data`. It returns an unlearned copy; ``model`` is
never modified. :mod:`.forget_set` picks a run's forget set, :mod:`.judge` judges the result
against retraining.
"""

from __future__ import annotations

from shiftlab.registry import UNLEARN
from shiftlab.unlearn.base import Data, LossUnlearner, Unlearner, model_kind, unlearn

__all__ = ["UNLEARN", "Data", "LossUnlearner", "Unlearner", "model_kind", "unlearn"]
