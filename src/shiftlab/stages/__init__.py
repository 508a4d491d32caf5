"""Stages: each kind of run entry as one module on one protocol (:mod:`.base`).

In the order a run's records follow: recipes (:mod:`.recipes`), recipes retrained on curated
sets (:mod:`.curated`), unlearning (:mod:`.unlearn`), conjugate prompts (:mod:`.conjugate`),
test-time adapters (:mod:`.adapt`). A new kind of entry is a new module and one line in
:func:`default_stages`.
"""

from __future__ import annotations

from shiftlab.stages.adapt import AdaptStage
from shiftlab.stages.base import Stage, TargetStage
from shiftlab.stages.conjugate import ConjugateStage
from shiftlab.stages.curated import CuratedStage
from shiftlab.stages.recipes import RecipeStage
from shiftlab.stages.unlearn import UnlearnStage


def default_stages() -> list[Stage]:
    """A fresh instance of every stage, in records order."""
    return [RecipeStage(), CuratedStage(), UnlearnStage(), ConjugateStage(), AdaptStage()]


__all__ = [
    "AdaptStage",
    "ConjugateStage",
    "CuratedStage",
    "RecipeStage",
    "Stage",
    "TargetStage",
    "UnlearnStage",
    "default_stages",
]
