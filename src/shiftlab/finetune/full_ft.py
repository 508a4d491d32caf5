"""Full fine-tuning with cross-entropy, as WiSE-FT trains its end point (arXiv 2109.01903).

Follows ``mlfoundations/wise-ft`` (``src/models/finetune.py``): the classifier starts from the
zero-shot head when the backbone has a text side (the head is otherwise freshly initialised),
every parameter is trained with AdamW (lr 3e-5, weight decay 0.1), a linear warmup of 500 steps
then cosine decay, and gradients clipped to norm 1. The last checkpoint is kept.

The loss is cross-entropy by default; ``loss: squared`` or ``loss: poly`` trains a source model
for test-time adaptation with conjugate pseudo-labels (see :mod:`shiftlab.training.losses`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import STANDARD, Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions, TrainResult
from shiftlab.training.losses import LossName, classification_loss
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class FullFTOptions(TrainOptions):
    """WiSE-FT's fine-tuning recipe, plus how the head starts."""

    head_init: Literal["auto", "zero_shot", "random"] = param(
        "auto", "head start: zero-shot from prompts (auto, when the backbone has a text side)"
    )
    label_smoothing: float = param(
        0.0, "cross-entropy label smoothing (WiSE-FT --ls)", within="[0, 1)"
    )
    loss: LossName = param("ce", "training loss: ce, squared, or poly (PolyLoss)")
    eps: float = param(6.0, "PolyLoss epsilon (tta_conjugate's CIFAR default)", within="[-1, inf)")
    epoch_points: bool = param(
        False,
        "also score the weights after each other epoch, as extra baseline points of the "
        "effective-robustness line (one evaluation per epoch)",
    )


def initial_head(ctx: RecipeContext, how: str) -> nn.Linear:
    """The zero-shot head, or a freshly initialised one (seeded)."""
    if how == "zero_shot" or (how == "auto" and ctx.backbone.has_text_side):
        return ctx.zero_shot_head()
    torch.manual_seed(ctx.seed)
    return nn.Linear(ctx.feature_dim(), ctx.benchmark.num_classes)


def finetune(
    ctx: RecipeContext,
    head: nn.Linear,
    cfg: TrainOptions,
    *,
    label_smoothing: float = 0.0,
    eval_mode: bool = False,
    loss: LossName = "ce",
    eps: float = 6.0,
    decay_head: bool = True,
    **train_options: object,
) -> tuple[Classifier, TrainResult]:
    """Train a copy of the pretrained featurizer and ``head`` end to end; return the model and
    what training did (including which epoch's weights were kept).

    ``decay_head=False`` exempts the head from weight decay. ``train_options`` (``seed=``,
    ``description=``, ``on_epoch_end=``) go to :meth:`RecipeContext.train`.
    """
    model = Classifier(ctx.trainable_copy(), head.to(ctx.device))
    if not decay_head:
        train_options["params"] = [
            {"params": list(model.featurizer.parameters())},
            {"params": list(model.head.parameters()), "weight_decay": 0.0},
        ]

    def loss_fn(batch: Batch) -> torch.Tensor:
        logits = model(batch.inputs)
        return classification_loss(
            logits, batch.labels, loss, eps=eps, label_smoothing=label_smoothing
        )

    result = ctx.train(model, loss_fn, cfg, eval_mode=eval_mode, **train_options)
    return model, result


def epoch_predictors(
    name: str, recipe: str, model: Classifier, result: TrainResult, params: dict[str, object]
) -> Iterator[Predictor]:
    """``name[epoch=E]`` from the weights kept after every epoch but the selected one: extra
    baseline points of the effective-robustness line (not saved)."""
    for epoch, state in result.states.items():
        if epoch == result.selected_epoch:
            continue
        snapshot = copy.deepcopy(model)
        snapshot.load_state_dict(state)
        yield Predictor(
            f"{name}[epoch={epoch}]",
            recipe,
            snapshot.eval(),
            params={**params, "epoch": epoch},
            save=False,
            info={**STANDARD, "trend_point": True},
        )


@FINETUNE.register("full_ft", options=FullFTOptions, kinds=("encoder",), fast=FAST)
def full_ft(ctx: RecipeContext, cfg: FullFTOptions) -> Iterator[Predictor]:
    """Fine-tune every weight (AdamW, warmup + cosine), the head from zero-shot when it can."""
    model, result = finetune(
        ctx,
        initial_head(ctx, cfg.head_init),
        cfg,
        label_smoothing=cfg.label_smoothing,
        loss=cfg.loss,
        eps=cfg.eps,
        keep_states=cfg.epoch_points,
    )
    params = loss_params(cfg)
    info = {**result.selection, **STANDARD}
    yield Predictor(ctx.name, "full_ft", model, params=params, info=info)
    yield from epoch_predictors(ctx.name, "full_ft", model, result, params)


def loss_params(cfg: FullFTOptions) -> dict[str, object]:
    """The training loss, for the records: ``{"loss": "poly", "eps": 6.0}``."""
    return {"loss": cfg.loss, "eps": cfg.eps} if cfg.loss == "poly" else {"loss": cfg.loss}
