"""D-BAT: Diversity-By-disAgreement Training (Pagliardini, Jaggi, Fleuret, Karimireddy, "Agree
to Disagree", ICLR 2023, arXiv 2202.04414).

Models are trained one after another. The first minimises cross-entropy; each later one adds
``alpha`` times its disagreement loss against every earlier (frozen) model on unlabeled batches
from where the models will be used: for an earlier model's predicted class ``k`` with
probability ``p1`` and the current model's probability ``p2`` of that class, the loss is
``-log(p1 (1 - p2) + p2 (1 - p1) + 1e-7)``, averaged over the batch and then over the earlier
models: the current model is pushed to disagree with the earlier ones off the training
distribution while agreeing on it. Every model is a predictor; one is chosen as DivDis chooses a
head (the labels of the pool examples on which the models disagree most, or ID val accuracy).

Follows ``mpagli/Agree-to-Disagree`` ``src/main.py`` (``train``, ``dbat_loss_type v1``; earlier
models in eval mode under ``torch.no_grad``; a fresh model and optimiser per member; the last
iterate is what the paper reports). Defaults: 2 models (argparse ``ensemble_size``), SGD
momentum 0.9 (every script), lr 1e-3 (argparse and Waterbirds), weight decay 1e-4 and batch 128
(Waterbirds), no schedule; ``alpha`` 1.0 (argparse; the scripts use 1e-4 to 1e-6 for
ResNet-50s trained for hundreds of epochs, the notebooks 0.1 to 2 for small models); epochs
cut from 300 (Waterbirds) to 10. The pool batch is as large as the labelled one, as the
reference's perturbation loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.unlabeled import (
    MembersOptions,
    fit,
    selected,
    trainee,
)
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class DBATOptions(MembersOptions):
    """D-BAT's argparse and Waterbirds settings (epochs cut from 300 to 10)."""

    models: int = param(2, "models trained in turn (ensemble_size)", within="[2, inf)")
    alpha: float = param(1.0, "weight of the disagreement loss (argparse)", within="[0, inf)")
    batch_size: int = param(128, "labelled examples per step (Waterbirds script)")


def disagreement_loss(earlier: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """D-BAT's loss (v1) of the current model against one earlier model on a batch.

    Args:
        earlier: (B, K) the earlier model's class probabilities (no gradient flows into them).
        current: (B, K) the current model's class probabilities.
    """
    p1, k = earlier.detach().max(dim=1)
    p2 = current.gather(1, k.unsqueeze(1)).squeeze(1)
    return -torch.log(p1 * (1 - p2) + p2 * (1 - p1) + 1e-7).mean()


@FINETUNE.register("dbat", options=DBATOptions, kinds=("encoder",), needs=("unlabeled",), fast=FAST)
def dbat(ctx: RecipeContext, cfg: DBATOptions) -> Iterator[Predictor]:
    """Models trained in turn, each to disagree with the earlier ones on the unlabeled pool."""
    k = ctx.benchmark.num_classes
    members: list[nn.Module] = []  # (inputs -> logits) of the frozen earlier models
    classifiers, selections = [], []
    for m in range(cfg.models):
        seed = ctx.seed + 1000 * m
        model = trainee(ctx, k, cfg.head_only, seed)
        earlier = list(members)

        def objective(
            logits: torch.Tensor, batch: Batch, index: np.ndarray, model=model, earlier=earlier
        ) -> torch.Tensor:
            loss = torch.nn.functional.cross_entropy(logits, batch.labels)
            if not earlier or cfg.alpha == 0:
                return loss
            inputs = model.pool_inputs(index)
            current = model.forward(inputs).softmax(-1)
            with torch.no_grad():
                before = [member(inputs).softmax(-1) for member in earlier]
            adversarial = torch.stack([disagreement_loss(p, current) for p in before]).mean()
            return loss + cfg.alpha * adversarial

        result = fit(ctx, model, cfg, objective, seed=seed, description=f"{ctx.name}: model {m}")
        model.model.eval()
        for p in model.model.parameters():
            p.requires_grad_(False)
        members.append(model.forward)
        classifiers.append(model.classifier(model.head))
        selections.append(result.selection)
    params = {"models": cfg.models, "alpha": cfg.alpha, "head_only": cfg.head_only}
    for m, classifier in enumerate(classifiers):
        yield Predictor(
            f"{ctx.name}[model={m}]", "dbat", classifier, {**params, "model": m}, info=selections[m]
        )
    yield selected(ctx, "dbat", classifiers, cfg, "model", params, selections)
