"""Bitrate-constrained DRO (Setlur, Dennis, Eysenbach, Raghunathan, Finn, Smith, Levine, ICLR
2023, arXiv 2302.02931).

Follows ``ars22/bitrate_DRO`` (``src/loss.py``, ``compute_bitrate_dro_loss``; a work-in-progress
repository): the adversary is restricted to simple functions: one zero-initialised linear map
per class on the learner's detached features, with an L1 penalty (lambda 0.05). Each batch, the
adversary takes one Adam step (lr 0.05) classifying which examples have a loss above the batch's
95th percentile (class-balanced binary cross-entropy); the learner then minimises
``sum w_i l_i / (sum w_i + 1e-3)`` with ``w_i = sigmoid(10 w_y . phi(x_i))``. Groups are not used
for training. With ``reweight_samples`` (the reference's ``--reweight_samples``), each
example's sampling weight is multiplied by ``exp(0.05 w_i)`` whenever it is trained on
(``data/dro_dataset.py``), and each epoch is drawn with replacement in proportion to the weights
so far.

Defaults are the reference's only active run (``run.sh``, CelebA): SGD momentum 0.9, lr 1e-5,
weight decay 0.1, batch 128, 50 epochs, ``--reweight_samples``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import (
    GroupTrainOptions,
    balanced_weights,
    describe,
    group_train,
    train_groups,
    weighted_draw,
)
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class BRDROOptions(GroupTrainOptions):
    """The simple adversary: per-class linear maps, L1-penalised; the reference's CelebA run."""

    epochs: int = param(50, "passes over the ID training split (run.sh, CelebA)")
    lr: float = param(1e-5, "learning rate (run.sh, CelebA)")
    weight_decay: float = param(0.1, "weight decay (run.sh, CelebA)")
    batch_size: int = param(128, "examples per step (run.sh, CelebA)")
    quantile: float = param(
        0.95, "losses above this batch quantile are the adversary's targets", within="(0, 1)"
    )
    l1: float = param(0.05, "lambda: L1 penalty on the adversary's weights", within="[0, inf)")
    adversary_lr: float = param(0.05, "Adam learning rate of the adversary", within="(0, inf)")
    sharpness: float = param(10.0, "t in w = sigmoid(t * adversary score)", within="(0, inf)")
    reweight_samples: bool = param(
        True, "resample each epoch by the adversary's weights so far (run.sh passes it)"
    )
    sample_step: float = param(
        0.05, "step in sampling weight *= exp(step * w) (DRODataset)", within="[0, inf)"
    )


class SampleReweighting:
    """Per-example sampling weights, multiplied by ``exp(step * w_i)`` each time example ``i`` is
    trained on with adversary weight ``w_i``; epoch ``e + 1`` is drawn from them (with
    replacement) when epoch ``e`` ends. ``plan`` is the trainer's plan, refilled in place."""

    def __init__(
        self, initial: np.ndarray, step: float, epochs: int, rng: np.random.Generator
    ) -> None:
        self.weights = initial / initial.sum()
        self.step, self.rng = step, rng
        first = weighted_draw(self.weights, rng)
        self.plan = [first] + [np.zeros_like(first) for _ in range(epochs - 1)]

    def update(self, index: np.ndarray, adversary_weights: np.ndarray) -> None:
        np.multiply.at(self.weights, index, np.exp(self.step * adversary_weights))

    def on_epoch_end(self, epoch: int) -> None:
        self.weights /= self.weights.sum()
        if epoch + 1 < len(self.plan):
            self.plan[epoch + 1][:] = weighted_draw(self.weights, self.rng)


class Adversary(nn.Module):
    """One bias-free linear score per class on features: ``score(phi, y) = w_y . phi``."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (features * self.weight[labels]).sum(dim=1)


def adversary_loss(
    adversary: Adversary,
    features: torch.Tensor,
    labels: torch.Tensor,
    losses: torch.Tensor,
    quantile: float,
    l1: float,
) -> torch.Tensor:
    """Class-balanced BCE of the adversary predicting which losses exceed the batch quantile,
    plus the L1 penalty of its weights."""
    target = (losses > torch.quantile(losses, quantile)).float()
    n, positives = len(target), target.sum()
    balance = torch.where(target > 0, n / positives.clamp(min=1), n / (n - positives).clamp(min=1))
    bce = F.binary_cross_entropy_with_logits(adversary(features, labels), target, reduction="none")
    return (bce * balance).mean() + l1 * adversary.weight.abs().sum()


@FINETUNE.register("br_dro", options=BRDROOptions, kinds=("encoder",), fast=FAST)
def br_dro(ctx: RecipeContext, cfg: BRDROOptions) -> Iterator[Predictor]:
    """Reweight the learner's losses by a simple (L1-penalised, linear) adversary."""
    adversary = Adversary(ctx.feature_dim(), ctx.benchmark.num_classes).to(ctx.device)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=cfg.adversary_lr)
    sampler = None
    if cfg.reweight_samples:
        groups = train_groups(ctx, needed=cfg.balanced)
        n = len(ctx.benchmark.train.labels)
        initial = balanced_weights(groups) if cfg.balanced else np.ones(n)
        sampler = SampleReweighting(
            initial, cfg.sample_step, cfg.epochs, np.random.default_rng(ctx.seed)
        )

    def objective(logits: Tensor, features: Tensor, batch: Batch, groups: Tensor | None) -> Tensor:
        losses = cfg.per_example(logits, batch.labels)
        phi, detached = features.detach(), losses.detach()
        optimizer.zero_grad()
        adversary_loss(adversary, phi, batch.labels, detached, cfg.quantile, cfg.l1).backward()
        optimizer.step()
        with torch.no_grad():
            weights = torch.sigmoid(cfg.sharpness * adversary(phi, batch.labels))
        if sampler is not None:
            sampler.update(batch.index, weights.cpu().numpy())
        return (weights * losses).sum() / (weights.sum() + 1e-3)

    # The adversary steps on whole batches: never split across processes.
    stateful = [adversary, optimizer]
    if sampler is None:
        model, result = group_train(ctx, cfg, objective, splittable=False, stateful=stateful)
    else:
        model, result = group_train(
            ctx,
            cfg,
            objective,
            plan=sampler.plan,
            on_epoch_end=sampler.on_epoch_end,
            splittable=False,
            stateful=[*stateful, sampler.weights, sampler.rng],
        )
    params = {**describe(cfg), "l1": cfg.l1, "quantile": cfg.quantile}
    params["reweight_samples"] = cfg.reweight_samples
    yield Predictor(ctx.name, "br_dro", model, params=params, info=result.selection)
