"""Fine-tuning recipes, one module each; every module registers its recipe in ``FINETUNE``
(found by the registry itself: adding a recipe is one file). :class:`RecipeContext` is all a
recipe sees."""

from shiftlab.finetune.context import RecipeContext

__all__ = ["RecipeContext"]
