"""Just Train Twice (Liu et al., ICML 2021, arXiv 2107.09044).

Follows ``anniesch/jtt``. Stage one trains an identification model by ERM. Its error set is, as
in the reference (``train.py`` logs each training batch's predictions; ``process_training.py``
reads ``output_train_epoch_{final_epoch}.csv``), the examples misclassified during the training
pass of epoch ``final_epoch`` (0-based): each example's prediction comes from the train-mode
forward pass of its own batch, before that batch's update (``error_set: online``).
``error_set: eval`` instead takes eval-mode predictions of the model at the end of that epoch.
Either way stage one trains ``final_epoch + 1`` epochs (the reference trains longer, but with a
constant learning rate the later epochs do not change the error set). Stage two trains a fresh
model, from the same start, on the training set plus ``up_weight`` (lambda) extra copies of
every error-set example (``run_expt.py``:
``ConcatDataset([train, Subset(train, errors * up_weight)])``). Groups are not used for training
(only, by default, to select the stage-two epoch).

Defaults are the reference's CelebA run (README): both stages SGD momentum 0.9, lr 1e-5, weight
decay 0.1, batch 64 (``generate_downstream.py``), 50 epochs; ``final_epoch`` 1, lambda 50. (On
Waterbirds: weight decay 1.0, final epoch 60, lambda 100.) JTT relies on a heavily regularised
identification model: with lr 1e-3 and weight decay 1e-4 the ERM model fits every training
example and the error set is empty (anniesch/jtt issue #6).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import GroupTrainOptions, average_loss, describe, group_train
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class JTTOptions(GroupTrainOptions):
    """JTT's CelebA run: both stages lr 1e-5, weight decay 0.1, batch 64, 50 epochs; T = 1,
    lambda = 50."""

    epochs: int = param(50, "epochs of stage two (README, CelebA: --n_epochs 50)")
    lr: float = param(1e-5, "learning rate of both stages (README, CelebA)")
    weight_decay: float = param(0.1, "weight decay of both stages (README, CelebA)")
    batch_size: int = param(64, "examples per step (generate_downstream.py default)")
    final_epoch: int = param(
        1, "T: the 0-based stage-one epoch whose errors are upweighted", within="[0, inf)"
    )
    up_weight: int = param(
        50, "lambda: extra copies of each error-set example (CelebA: 50)", within="[1, inf)"
    )
    error_set: Literal["online", "eval"] = param(
        "online",
        "online: errors of epoch T's training pass (the reference); eval: eval-mode errors "
        "after that epoch",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.final_epoch < 0 or self.up_weight < 0:
            raise ConfigError("jtt needs final_epoch >= 0 and up_weight >= 0")


class OnlineErrors:
    """Predictions made during one epoch's training pass, as the reference logs them: each
    example's argmax from the forward pass of its batch (the last, if it is visited twice)."""

    def __init__(self, labels: np.ndarray, epoch: int) -> None:
        self.labels, self.epoch = labels, epoch
        self.current = 0  # the epoch the trainer is in
        self.predicted = np.full(len(labels), -1, dtype=np.int64)

    def observe(self, index: np.ndarray, logits: torch.Tensor) -> None:
        """Record a training batch's predictions if it belongs to the identification epoch."""
        if self.current == self.epoch:
            self.predicted[index] = logits.detach().argmax(dim=1).cpu().numpy()

    def on_epoch_end(self, epoch: int) -> None:
        self.current = epoch + 1

    def state_dict(self) -> dict:
        return {"current": self.current, "predicted": torch.from_numpy(self.predicted.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.current, self.predicted = state["current"], state["predicted"].numpy().copy()

    def errors(self) -> np.ndarray:
        """Indices of the examples predicted wrongly in that epoch's pass (sorted)."""
        return np.flatnonzero((self.predicted >= 0) & (self.predicted != self.labels))


def upsampled_indices(n: int, errors: np.ndarray, up_weight: int) -> np.ndarray:
    """Indices 0..n-1 once each, then ``up_weight`` extra copies of every error index."""
    return np.concatenate([np.arange(n), np.tile(np.asarray(errors, dtype=np.int64), up_weight)])


def error_set(ctx: RecipeContext, cfg: JTTOptions) -> np.ndarray:
    """Train the identification model for ``final_epoch + 1`` epochs and return its errors."""
    train = ctx.benchmark.train
    first = dataclasses.replace(cfg, epochs=cfg.final_epoch + 1, select="last", balanced=False)
    description = f"{ctx.name}: stage 1"
    if cfg.error_set == "eval":
        identifier, _ = group_train(ctx, first, average_loss(first), description=description)
        predicted = ctx.logits(identifier, train).argmax(dim=1).numpy()
        return np.flatnonzero(predicted != train.labels)
    online = OnlineErrors(train.labels, cfg.final_epoch)

    def objective(logits: torch.Tensor, features, batch: Batch, groups) -> torch.Tensor:
        online.observe(batch.index, logits)
        return first.mean_loss(logits, batch.labels)

    # Every process must see every prediction: batches are never split across processes.
    group_train(
        ctx,
        first,
        objective,
        description=description,
        on_epoch_end=online.on_epoch_end,
        splittable=False,
        stateful=[online],
    )
    return online.errors()


@FINETUNE.register("jtt", options=JTTOptions, kinds=("encoder",), fast=FAST)
def jtt(ctx: RecipeContext, cfg: JTTOptions) -> Iterator[Predictor]:
    """Train ERM briefly, then retrain with its training errors upsampled lambda times."""
    errors = error_set(ctx, cfg)
    rng = np.random.default_rng(ctx.seed)
    upsampled = upsampled_indices(len(ctx.benchmark.train), errors, cfg.up_weight)
    plan = [rng.permutation(upsampled) for _ in range(cfg.epochs)]
    model, result = group_train(
        ctx, cfg, average_loss(cfg), plan=plan, description=f"{ctx.name}: stage 2"
    )
    params = {
        **describe(cfg),
        "final_epoch": cfg.final_epoch,
        "up_weight": cfg.up_weight,
        "error_set": cfg.error_set,
        "error_set_size": len(errors),
    }
    yield Predictor(ctx.name, "jtt", model, params=params, info=result.selection)
