"""Shared machinery of the group-robustness recipes (erm, group_dro, jtt, cvar_dro, br_dro).

Each recipe supplies an objective on a batch (its logits, features, labels and groups); this
module trains either a linear head on cached pretrained features (``head_only: true``, fast) or
the whole model, with the shared trainer, group-balanced sampling when asked, and model
selection by ID val worst-group accuracy by default.

The shared defaults are those of ``kohpangwei/group_DRO`` ``run_expt.py`` (the driver of Group
DRO and of its ERM baseline): SGD with momentum 0.9, lr 1e-3, weight decay 5e-5, batch 32, 4
epochs, a constant learning rate (no ``--scheduler``), no gradient clipping. Recipes from other
drivers override what theirs sets: ``cvar_dro`` takes ``anniesch/jtt`` ``run_expt.py``'s
weight decay 1e-4; ``jtt`` and ``br_dro`` take the settings of their reference runs (JTT's
CelebA command in its README; BR-DRO's CelebA line in ``run.sh``). docs/methods.md lists every
default with its source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.full_ft import initial_head
from shiftlab.models.classifier import Classifier
from shiftlab.training import Batch, ReferenceSGD, TrainResult
from shiftlab.training.losses import LossOptions
from shiftlab.typed import param

# objective(logits (B, K), features (B, D), batch, groups (B,)) -> scalar loss
Objective = Callable[[torch.Tensor, torch.Tensor, Batch, torch.Tensor], torch.Tensor]


def average_loss(cfg: LossOptions) -> Objective:
    """The plain objective: the batch's average loss (cross-entropy unless ``cfg`` says)."""

    def objective(
        logits: torch.Tensor, features: torch.Tensor, batch: Batch, groups: torch.Tensor | None
    ) -> torch.Tensor:
        return cfg.mean_loss(logits, batch.labels)

    return objective


@dataclass
class GroupTrainOptions(ReferenceSGD, LossOptions):
    """group_DRO's run_expt.py optimisation (SGD, momentum 0.9), what is trained, and the
    per-example loss the objective is made of (cross-entropy, as the references)."""

    epochs: int = param(4, "passes over the ID training split (group_DRO run_expt.py)")
    lr: float = param(1e-3, "learning rate (group_DRO run_expt.py)")
    weight_decay: float = param(5e-5, "weight decay (group_DRO run_expt.py)")
    batch_size: int = param(32, "examples per step (group_DRO run_expt.py)")
    select: Literal["last", "id_val_accuracy", "id_val_worst_group_accuracy"] = param(
        "id_val_worst_group_accuracy", "which epoch's weights to keep"
    )
    head_only: bool = param(False, "train a linear head on cached pretrained features")
    balanced: bool = param(False, "sample groups equally often (reweight_groups)")


def train_groups(ctx: RecipeContext, *, needed: bool) -> np.ndarray | None:
    """Group ids of the training examples; raise if a method needs groups and there are none."""
    groups = ctx.benchmark.train.groups
    if groups is None and needed:
        raise ConfigError(
            f"recipe '{ctx.name}' needs groups: set data.groups (label_x_domain, "
            "label_x_<attribute>) or a group column"
        )
    return groups


def group_counts(ctx: RecipeContext, groups: np.ndarray) -> np.ndarray:
    """Training examples per group (G,), groups absent from training counted as 0."""
    return np.bincount(groups, minlength=len(ctx.benchmark.group_names or [])).astype(np.int64)


def balanced_weights(groups: np.ndarray) -> np.ndarray:
    """Per-example sampling weights 1 / group size, which make every group equally likely."""
    return 1.0 / np.bincount(groups)[groups]


def weighted_draw(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of ``len(weights)`` indices drawn with replacement in proportion to
    ``weights`` (as torch's WeightedRandomSampler with replacement)."""
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())


def balanced_plan(groups: np.ndarray, epochs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each epoch, N indices drawn with replacement so every group is equally likely
    (WeightedRandomSampler with weights 1 / group size, as ``reweight_groups``)."""
    weights = balanced_weights(groups)
    return [weighted_draw(weights, rng) for _ in range(epochs)]


def group_train(
    ctx: RecipeContext,
    cfg: GroupTrainOptions,
    objective: Objective,
    *,
    plan: list[np.ndarray] | None = None,
    needs_groups: bool = False,
    **train_options: object,
) -> tuple[Classifier, TrainResult]:
    """Train a fresh model (head only, or all of it) from the recipe's start under
    ``objective``; return it as a Classifier with what training did."""
    groups = train_groups(
        ctx,
        needed=needs_groups or cfg.balanced or cfg.select == "id_val_worst_group_accuracy",
    )
    head = initial_head(ctx, "auto").to(ctx.device)
    if cfg.head_only:
        model: nn.Module = head
        inputs = ctx.features(ctx.benchmark.train).numpy()

        def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, head(x)

        def classifier() -> Classifier:
            return ctx.head_only(head)

    else:
        model = full = Classifier(ctx.trainable_copy(), head)
        inputs = None

        def forward(x: object) -> tuple[torch.Tensor, torch.Tensor]:
            features = full.featurizer(x)
            return features, full.head(features)

        def classifier() -> Classifier:
            return full

    group_tensor = torch.as_tensor(groups if groups is not None else np.zeros(1, np.int64))

    def loss_fn(batch: Batch) -> torch.Tensor:
        features, logits = forward(batch.inputs)
        batch_groups = group_tensor[batch.index].to(ctx.device) if groups is not None else None
        return objective(logits, features, batch, batch_groups)

    if plan is None and cfg.balanced:
        plan = balanced_plan(groups, cfg.epochs, np.random.default_rng(ctx.seed))
    result = ctx.train(
        model, loss_fn, cfg, classifier=classifier, inputs=inputs, plan=plan, **train_options
    )
    return classifier(), result


def describe(cfg: GroupTrainOptions) -> dict[str, object]:
    """Record params every group recipe shares."""
    loss = {} if cfg.loss == "ce" else cfg.loss_params()
    return {"head_only": cfg.head_only, "balanced": cfg.balanced, **loss}
