"""What the recipes that learn from the unlabeled pool share (``data.unlabeled``; divdis, dbat,
pseudo_label, fixmatch): the pool itself, seeded pool batches drawn beside each labelled batch,
and a model that is a head of any width on cached features (``head_only: true``) or a copy of
the featurizer with that head.

A pool batch of ``unlabeled_batch_size`` examples is drawn without replacement for every
training step, from a generator seeded by the run and saved in training checkpoints, so a
resumed run draws the same batches. (The references cycle a shuffled loader of the pool: the
same examples in the long run, in another order.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.data.benchmark import Split
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.full_ft import initial_head
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.training import Batch, ReferenceSGD, TrainResult
from shiftlab.typed import param

Disambiguate = Literal["query", "id_val"]


@dataclass
class PoolTrainOptions(ReferenceSGD):
    """SGD with momentum 0.9 at a constant rate (DivDis' and D-BAT's optimiser), and what is
    trained."""

    epochs: int = param(10, "passes over the ID training split")
    lr: float = param(1e-3, "learning rate")
    weight_decay: float = param(1e-4, "weight decay")
    batch_size: int = param(32, "labelled examples per step")
    unlabeled_batch_size: int | None = param(
        None, "pool examples per step; null: batch_size", within="[1, inf)"
    )
    head_only: bool = param(False, "train heads on cached pretrained features (fast)")


@dataclass
class MembersOptions(PoolTrainOptions):
    """Recipes that make several members (heads, models) and pick one (divdis, dbat)."""

    disambiguate: Disambiguate = param(
        "query", "query: labels of the most-disagreed pool examples; id_val: ID val accuracy"
    )
    queries: int = param(16, "pool labels asked for (disambiguate: query)", within="[1, inf)")
    select: Literal["last", "id_val_accuracy", "id_val_worst_group_accuracy"] = param(
        "last", "which epoch's weights to keep (the pool, not ID val, tells members apart)"
    )


@dataclass
class SelfTrainingOptions(PoolTrainOptions):
    """WILDS' self-training settings (pseudo_label, fixmatch)."""

    threshold: float = param(
        0.7, "confidence a pool prediction needs to be trained on (WILDS)", within="[0, 1]"
    )
    unlabeled_weight: float = param(
        1.0, "weight of the pool term (WILDS self_training_lambda)", within="[0, inf)"
    )


def require_pool(ctx: RecipeContext) -> Split:
    """The run's unlabeled pool.

    Raises:
        ConfigError: the run has none (the config check refuses this before a run starts).
    """
    pool = ctx.benchmark.unlabeled
    if pool is None:
        raise ConfigError(
            f"recipe '{ctx.name}' learns from unlabeled data: add data.unlabeled: "
            "{domains: [DOMAIN], fraction: 0.5}"
        )
    return pool


class PoolDraws:
    """Seeded pool batches, one per training step (indices into the pool)."""

    def __init__(self, n: int, size: int, seed: int) -> None:
        self.n, self.size = n, min(size, n)
        self.rng = np.random.default_rng([seed, 20220203])

    def next(self) -> np.ndarray:
        return np.sort(self.rng.choice(self.n, size=self.size, replace=False))


@dataclass
class Trainee:
    """A model being trained with the pool: what the trainer optimises (``model``), logits
    (B, width) of model-ready inputs (``forward``), the pool's inputs at some indices ready for
    it (``pool_inputs``: features, or raw inputs decoded as training decodes them), and the
    classifier of a head (``classifier(head)``)."""

    model: nn.Module
    head: nn.Linear
    forward: Callable[[Any], torch.Tensor]
    pool_inputs: Callable[[np.ndarray], Any]
    classifier: Callable[[nn.Linear], Classifier]
    train_inputs: Any
    head_only: bool


def trainee(
    ctx: RecipeContext, width: int, head_only: bool, seed: int, start: str = "random"
) -> Trainee:
    """A fresh model for the recipe: a linear head of ``width`` outputs, on cached features or
    on a trainable copy of the featurizer. ``start``: ``random`` (seeded; the references' new
    heads, and what makes DivDis' heads and D-BAT's models differ), or ``auto``: full_ft's start,
    the zero-shot head where the backbone has a text side (a K-output head only)."""
    pool = require_pool(ctx)
    torch.manual_seed(seed)
    if start == "auto" and width == ctx.benchmark.num_classes:
        head = initial_head(ctx, "auto").to(ctx.device)
    else:
        head = nn.Linear(ctx.feature_dim(), width).to(ctx.device)
    if head_only:
        features = ctx.features(pool).to(ctx.device)
        return Trainee(
            model=head,
            head=head,
            forward=head,
            pool_inputs=lambda index: features[torch.as_tensor(index)],
            classifier=lambda h: ctx.head_only(h),
            train_inputs=ctx.features(ctx.benchmark.train).numpy(),
            head_only=True,
        )
    full = Classifier(ctx.trainable_copy(), head)
    transform, last = input_transform(full), channels_last(full)

    def pool_inputs(index: np.ndarray) -> Any:
        batches = iterate(
            pool.inputs, [index], transform=transform, device=ctx.device, train=True, last=last
        )
        return next(iter(batches))

    return Trainee(
        model=full,
        head=head,
        forward=full,
        pool_inputs=pool_inputs,
        classifier=lambda h: Classifier(full.featurizer, h),
        train_inputs=None,
        head_only=False,
    )


def fit(
    ctx: RecipeContext,
    model: Trainee,
    cfg: PoolTrainOptions,
    objective: Callable[[torch.Tensor, Batch, np.ndarray], torch.Tensor],
    *,
    seed: int,
    description: str,
    stateful: list[Any] | tuple[Any, ...] = (),
) -> TrainResult:
    """Train ``model`` on the ID training split: each step calls ``objective(logits of the
    labelled batch, the batch, indices of a fresh pool batch)``."""
    pool = require_pool(ctx)
    draws = PoolDraws(len(pool), cfg.unlabeled_batch_size or cfg.batch_size, seed)

    def loss_fn(batch: Batch) -> torch.Tensor:
        return objective(model.forward(batch.inputs), batch, draws.next())

    return ctx.train(
        model.model,
        loss_fn,
        cfg,
        classifier=lambda: model.classifier(model.head),
        inputs=model.train_inputs,
        seed=seed,
        description=description,
        splittable=False,
        stateful=[draws.rng, *stateful],
    )


def head_slices(head: nn.Linear, heads: int) -> list[nn.Linear]:
    """The ``heads`` heads of a (heads x K)-output linear layer, each a K-output layer."""
    k = head.out_features // heads
    parts = []
    for h in range(heads):
        part = nn.Linear(head.in_features, k).to(head.weight.device)
        with torch.no_grad():
            part.weight.copy_(head.weight[h * k : (h + 1) * k])
            part.bias.copy_(head.bias[h * k : (h + 1) * k])
        parts.append(part)
    return parts


def query_labels(ctx: RecipeContext, index: np.ndarray) -> np.ndarray:
    """The data's labels of pool examples at ``index``: an active query, the only way a recipe
    reads a pool label (each record says how many it asked for)."""
    oracle = ctx.benchmark.pool_oracle
    if oracle is None:
        raise ConfigError(f"recipe '{ctx.name}': the unlabeled pool has no labels to query")
    return np.asarray(oracle(np.asarray(index, dtype=np.int64)))


def member_disagreement(probs: torch.Tensor) -> torch.Tensor:
    """(U,) mean absolute difference between every two members' probabilities per example
    (DivDis' ``get_disagreement_scores``, mode ``l1``).

    Args:
        probs: (M, U, K) each member's (head's or model's) class probabilities.
    """
    return (probs.unsqueeze(0) - probs.unsqueeze(1)).abs().mean(dim=(0, 1, 3))


def selected(
    ctx: RecipeContext,
    recipe: str,
    members: list[Classifier],
    cfg: MembersOptions,
    what: str,
    params: dict[str, Any],
    infos: list[dict[str, Any]],
) -> Predictor:
    """``NAME[selected]``: the member :func:`choose_member` picks (saved as that member; its
    record keys ``infos[chosen]`` and how it was chosen)."""
    chosen, how = choose_member(ctx, members, cfg.disambiguate, cfg.queries, what)
    return Predictor(
        f"{ctx.name}[selected]",
        recipe,
        members[chosen],
        {**params, "disambiguate": cfg.disambiguate},
        save=False,
        info={**infos[chosen], **how},
    )


def choose_member(
    ctx: RecipeContext, members: list[Classifier], how: Disambiguate, queries: int, what: str
) -> tuple[int, dict[str, Any]]:
    """The member (a head or a model) ``how`` picks, and the record keys that say how:
    ``query``, by the labels of the ``queries`` pool examples the members disagree on most;
    ``id_val``, by ID val accuracy."""
    if how == "query":
        pool = require_pool(ctx)
        probs = torch.stack([ctx.logits(c, pool).softmax(-1) for c in members])
        chosen, scores = best_by_query(ctx, probs, member_disagreement(probs), queries)
        return chosen, {
            f"selected_{what}": chosen,
            "queried_labels": min(queries, len(pool)),
            "query_accuracy": scores,
        }
    scores = [ctx.accuracy(c, ctx.benchmark.val) for c in members]
    chosen = int(np.argmax(scores))
    return chosen, {f"selected_{what}": chosen, f"id_val_accuracy_of_{what}s": scores}


def best_by_query(
    ctx: RecipeContext,
    probabilities: torch.Tensor,
    disagreement: torch.Tensor,
    queries: int,
) -> tuple[int, list[float]]:
    """The member (head or model) whose predictions best match the labels of the ``queries``
    pool examples on which the members disagree most, and each member's accuracy on them.

    Args:
        probabilities: (M, U, K) each member's class probabilities on the whole pool.
        disagreement: (U,) how much the members disagree on each pool example.
    """
    chosen = torch.argsort(disagreement, descending=True, stable=True)[:queries].numpy()
    labels = torch.as_tensor(query_labels(ctx, chosen))
    accuracy = (probabilities[:, chosen].argmax(-1) == labels).float().mean(-1)
    return int(accuracy.argmax()), accuracy.tolist()


def pseudo_label_loss(
    logits: torch.Tensor, teacher_logits: torch.Tensor, threshold: float
) -> torch.Tensor:
    """WILDS' consistency loss: cross-entropy of ``logits`` against the argmax of
    ``teacher_logits`` (detached) on the examples whose teacher confidence reaches
    ``threshold``, times the fraction kept, i.e. summed over the kept examples and divided by
    all of them; 0 when none is kept (``process_pseudolabels_function`` and ``objective`` of
    ``wilds/algorithms/pseudolabel.py`` and ``fixmatch.py``)."""
    confidence, pseudo = teacher_logits.detach().softmax(-1).max(dim=-1)
    kept = confidence >= threshold
    if not kept.any():
        return logits.sum() * 0.0
    loss = torch.nn.functional.cross_entropy(logits[kept], pseudo[kept])
    return loss * kept.float().mean()


def steps_of(ctx: RecipeContext, cfg: PoolTrainOptions) -> int:
    """Optimiser steps of training ``cfg`` on the ID training split."""
    from shiftlab.training.trainer import epoch_batches

    return cfg.epochs * len(epoch_batches(np.arange(len(ctx.benchmark.train)), cfg.batch_size))
