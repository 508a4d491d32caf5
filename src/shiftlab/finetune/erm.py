"""Empirical risk minimisation: the mean cross-entropy, optionally with group-balanced
sampling (the ERM baseline of Group DRO, Sagawa et al., ICLR 2020, arXiv 1911.08731).

Trains as the other group recipes (:mod:`shiftlab.finetune.groups`); ``balanced: true`` draws
every group equally often (``reweight_groups`` in ``kohpangwei/group_DRO``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import GroupTrainOptions, average_loss, describe, group_train
from shiftlab.models.classifier import STANDARD, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training.options import FAST


@dataclass
class ERMOptions(GroupTrainOptions):
    """Average cross-entropy; the group-robustness references' optimisation."""


@FINETUNE.register("erm", options=ERMOptions, kinds=("encoder",), fast=FAST)
def erm(ctx: RecipeContext, cfg: ERMOptions) -> Iterator[Predictor]:
    """Minimise the average cross-entropy (optionally sampling groups equally)."""
    model, result = group_train(ctx, cfg, average_loss(cfg))
    # Plain ERM is a standard model (an effective-robustness baseline); group-balanced is not.
    info = {**result.selection, **({} if cfg.balanced else STANDARD)}
    yield Predictor(ctx.name, "erm", model, params=describe(cfg), info=info)
