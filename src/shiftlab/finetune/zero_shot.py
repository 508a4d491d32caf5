"""Zero-shot classification from class prompts (Radford et al. 2021, arXiv 2103.00020).

The head is built from the prompt embeddings as WiSE-FT builds it (arXiv 2109.01903); nothing
is trained. Needs a backbone with a text side; on a causal language model it is the pretrained
model prompted with the task (label words scored after each prompt, k-shot as the task says).
"""

from __future__ import annotations

from collections.abc import Iterator

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.typed import NoOptions


@FINETUNE.register("zero_shot", options=NoOptions, kinds=("text_side", "causal_lm"))
def zero_shot(ctx: RecipeContext, cfg: NoOptions) -> Iterator[Predictor]:
    """Zero-shot head from class prompts on the pretrained featurizer (or the pretrained
    language model prompted with the task); nothing trained."""
    if ctx.backbone.kind == "causal_lm":
        yield Predictor(ctx.name, "zero_shot", ctx.backbone.featurizer, save=False)
        return
    yield Predictor(ctx.name, "zero_shot", ctx.head_only(ctx.zero_shot_head()))
