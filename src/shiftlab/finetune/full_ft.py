"""Full fine-tuning with cross-entropy, as WiSE-FT trains its end point (arXiv 2109.01903).

Follows ``mlfoundations/wise-ft`` (``src/models/finetune.py``): the classifier starts from the
zero-shot head when the backbone has a text side (the head is otherwise freshly initialised),
every parameter is trained with AdamW (lr 3e-5, weight decay 0.1), a linear warmup of 500 steps
then cosine decay, and gradients clipped to norm 1. The last checkpoint is kept.

The loss is cross-entropy by default; ``loss: squared`` or ``loss: poly`` trains a source model
for test-time adaptation with conjugate pseudo-labels, ``loss: gce`` (optionally truncated) or
``loss: sce`` trains through noisy labels (see :mod:`shiftlab.training.losses`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import STANDARD, Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions, TrainResult
from shiftlab.training.losses import (
    LossName,
    LossOptions,
    TruncatableLossOptions,
    Truncation,
    classification_loss,
)
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class FullFTOptions(TrainOptions, TruncatableLossOptions):
    """WiSE-FT's fine-tuning recipe, plus how the head starts and the loss."""

    head_init: Literal["auto", "zero_shot", "random"] = param(
        "auto", "head start: zero-shot from prompts (auto, when the backbone has a text side)"
    )
    label_smoothing: float = param(
        0.0, "cross-entropy label smoothing (WiSE-FT --ls)", within="[0, 1)"
    )
    loss: LossName = param("ce", "training loss: ce, gce or sce (noisy labels), squared or poly")
    eps: float = param(6.0, "PolyLoss epsilon (tta_conjugate's CIFAR default)", within="[-1, inf)")
    epoch_points: bool = param(
        False,
        "also score the weights after each other epoch, as extra baseline points of the "
        "effective-robustness line (one evaluation per epoch)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_loss()


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
    loss: LossOptions | None = None,
    decay_head: bool = True,
    **train_options: object,
) -> tuple[Classifier, TrainResult]:
    """Train a copy of the pretrained featurizer and ``head`` end to end; return the model and
    what training did (including which epoch's weights were kept).

    ``loss`` is the training loss (default cross-entropy); a truncated GCE prunes the
    training set as its options say. ``decay_head=False`` exempts the head from weight decay.
    ``train_options`` (``seed=``, ``description=``) go to :meth:`RecipeContext.train`.
    """
    model = Classifier(ctx.trainable_copy(), head.to(ctx.device))
    if not decay_head:
        train_options["params"] = [
            {"params": list(model.featurizer.parameters())},
            {"params": list(model.head.parameters()), "weight_decay": 0.0},
        ]

    loss = loss or LossOptions()
    truncation = truncation_of(ctx, model, loss, train_options, eval_mode)

    def loss_fn(batch: Batch) -> torch.Tensor:
        logits = model(batch.inputs)
        if truncation is not None:
            p_true = logits.softmax(-1).gather(1, batch.labels[:, None]).squeeze(1)
            return truncation.loss(p_true, batch.index)
        terms = loss.loss_terms()
        return classification_loss(
            logits, batch.labels, loss.loss, label_smoothing=label_smoothing, **terms
        )

    result = ctx.train(model, loss_fn, cfg, eval_mode=eval_mode, **train_options)
    return model, result


def truncation_of(
    ctx: RecipeContext,
    model: Classifier,
    loss: LossOptions,
    train_options: dict[str, Any],
    eval_mode: bool,
) -> Truncation | None:
    """The truncated L_q loss's weights when ``loss`` asks for it (else None): pruned after
    the epochs its options say from the model's label probabilities on the training split,
    and saved in training checkpoints (added to ``train_options``)."""
    if not isinstance(loss, TruncatableLossOptions) or not loss.truncate:
        return None
    train = ctx.benchmark.train
    truncation = Truncation(len(train), loss.q, loss.k)

    def prune(epoch: int) -> None:  # 0-based epoch just finished
        if loss.prunes_after(epoch + 1):
            labels = torch.as_tensor(train.labels)
            p_true = ctx.logits(model, train).softmax(-1).gather(1, labels[:, None]).squeeze(1)
            truncation.prune(p_true.numpy())
            model.train(not eval_mode)

    train_options["on_epoch_end"] = prune
    train_options["stateful"] = [*train_options.get("stateful", ()), truncation]
    return truncation


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
        loss=cfg,
        keep_states=cfg.epoch_points,
    )
    params = cfg.loss_params()
    info = {**result.selection, **STANDARD}
    yield Predictor(ctx.name, "full_ft", model, params=params, info=info)
    yield from epoch_predictors(ctx.name, "full_ft", model, result, params)
