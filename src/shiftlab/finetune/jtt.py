"""Just Train Twice (Liu et al., ICML 2021, arXiv 2107.09044).

Follows ``anniesch/jtt`` (``run_expt.py``): stage one trains by ERM for ``first_epochs`` (T)
epochs; its misclassified training examples form the error set; stage two trains a fresh model,
from the same start, on the training set plus ``up_weight`` (lambda) extra copies of every
error-set example (``ConcatDataset([train, Subset(train, errors * up_weight)])``). Groups are not
used for training (only, by default, to select the stage-two epoch). Defaults are the CelebA
setting (T = 1, lambda = 50).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from shiftlab.config import param
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import GroupTrainConfig, cross_entropy, describe, group_train
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE


@dataclass
class JTTConfig(GroupTrainConfig):
    """Epochs of the identification model and the upweighting of its errors."""

    first_epochs: int = param(1, "T: ERM epochs of stage one")
    up_weight: int = param(50, "lambda: extra copies of each error-set example")


def upsampled_indices(n: int, errors: np.ndarray, up_weight: int) -> np.ndarray:
    """Indices 0..n-1 once each, then ``up_weight`` extra copies of every error index."""
    return np.concatenate([np.arange(n), np.tile(np.asarray(errors, dtype=np.int64), up_weight)])


@FINETUNE.register("jtt", config=JTTConfig)
def jtt(ctx: RecipeContext, cfg: JTTConfig) -> Iterator[Predictor]:
    """Train ERM briefly, then retrain with its training errors upsampled lambda times."""
    train = ctx.benchmark.train
    first = dataclasses.replace(cfg, epochs=cfg.first_epochs, select="last", balanced=False)
    identifier, _ = group_train(ctx, first, cross_entropy, description=f"{ctx.name}: stage 1")
    errors = np.flatnonzero(ctx.logits(identifier, train).argmax(dim=1).numpy() != train.labels)
    rng = np.random.default_rng(ctx.seed)
    upsampled = upsampled_indices(len(train), errors, cfg.up_weight)
    plan = [rng.permutation(upsampled) for _ in range(cfg.epochs)]
    model, result = group_train(
        ctx, cfg, cross_entropy, plan=plan, description=f"{ctx.name}: stage 2"
    )
    params = {
        **describe(cfg),
        "first_epochs": cfg.first_epochs,
        "up_weight": cfg.up_weight,
        "error_set": len(errors),
    }
    yield Predictor(ctx.name, "jtt", model, params=params, info=result.selection)
