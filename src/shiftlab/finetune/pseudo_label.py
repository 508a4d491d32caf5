"""Pseudo-labelling with unlabeled data from the target domains (Lee, ICML 2013 workshop; as
WILDS runs it, Sagawa et al., "Extending the WILDS Benchmark for Unsupervised Adaptation", ICLR
2022, arXiv 2112.05090).

Each step forwards a labelled batch and a pool batch in train mode; the pool examples the model
itself predicts with confidence at least ``threshold`` are trained on their predicted class
(detached), the loss summed over them and divided by the whole pool batch (so a batch where
none is confident adds nothing); the pool term's weight rises linearly from 0 at the first
step to ``unlabeled_weight`` at ``ramp`` of the training steps, then stays.

Follows ``p-lambda/wilds`` ``algorithms/pseudolabel.py`` (``PseudoLabel``: one forward of the
concatenated batches, ``LinearScheduleWithWarmupAndThreshold`` with ``last_warmup_step 0``,
``threshold_step pseudolabel_T2 x n_train_steps``) and its defaults (``self_training_threshold``
0.7, ``self_training_lambda`` 1, ``pseudolabel_T2`` 0.4). The optimiser is the one shared by
shiftlab's pool recipes (SGD, momentum 0.9, lr 1e-3), not WILDS' per-dataset one; the labelled
and pool batches are forwarded separately (equal with LayerNorm; with BatchNorm the statistics
are per batch rather than over both).

The model starts as ``full_ft``'s does (the zero-shot head where the backbone has a text
side), as WILDS starts its self-training models as its ERM ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.unlabeled import (
    SelfTrainingOptions,
    fit,
    pseudo_label_loss,
    steps_of,
    trainee,
)
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class PseudoLabelOptions(SelfTrainingOptions):
    """WILDS' pseudo-label settings (the pool term's weight reaches ``unlabeled_weight``)."""

    ramp: float = param(
        0.4, "share of the steps over which the weight rises from 0 (pseudolabel_T2)",
        within="(0, 1]",
    )  # fmt: skip


def ramp_weight(step: int, total: int, ramp: float, top: float) -> float:
    """The pool term's weight at 0-based ``step``: ``top x min(1, step / (ramp x total))``."""
    return top * min(1.0, step / max(ramp * total, 1e-12))


@FINETUNE.register(
    "pseudo_label", options=PseudoLabelOptions, kinds=("encoder",), needs=("unlabeled",),
    fast=FAST,
)  # fmt: skip
def pseudo_label(ctx: RecipeContext, cfg: PseudoLabelOptions) -> Iterator[Predictor]:
    """Train on the labels and on the model's own confident predictions on the pool."""
    model = trainee(ctx, ctx.benchmark.num_classes, cfg.head_only, ctx.seed, start="auto")
    total = steps_of(ctx, cfg)
    step = np.zeros(1, dtype=np.int64)  # saved in checkpoints with the model

    def objective(logits: torch.Tensor, batch: Batch, index: np.ndarray) -> torch.Tensor:
        weight = ramp_weight(int(step[0]), total, cfg.ramp, cfg.unlabeled_weight)
        step[0] += 1
        loss = F.cross_entropy(logits, batch.labels)
        if weight == 0:
            return loss
        pool_logits = model.forward(model.pool_inputs(index))
        return loss + weight * pseudo_label_loss(pool_logits, pool_logits, cfg.threshold)

    result = fit(ctx, model, cfg, objective, seed=ctx.seed, description=ctx.name, stateful=[step])
    params = {"threshold": cfg.threshold, "head_only": cfg.head_only}
    yield Predictor(
        ctx.name, "pseudo_label", model.classifier(model.head), params, info=result.selection
    )
