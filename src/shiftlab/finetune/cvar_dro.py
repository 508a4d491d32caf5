"""CVaR DRO: minimise the average of the worst alpha fraction of per-example losses (Levy,
Carmon, Duchi, Sidford, NeurIPS 2020, arXiv 2010.05893; the "joint DRO" baseline of JTT).

Follows ``anniesch/jtt`` ``joint_dro.py`` (from ``daniellevy/fast-dro``) with no regulariser: in
each batch of m losses, the top ``floor(alpha m)`` get weight ``1 / (alpha m)`` and the next one
the remainder, so the weights sum to one; the weights are computed without gradient. Groups are
not used for training (only, by default, to select the epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import GroupTrainOptions, describe, group_train
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class CVaRDROOptions(GroupTrainOptions):
    """The share of worst losses that is optimised; JTT's driver's weight decay."""

    weight_decay: float = param(1e-4, "weight decay (anniesch/jtt run_expt.py)")
    alpha: float = param(0.2, "fraction of the batch's highest losses averaged", within="(0, 1]")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"cvar_dro alpha must be in (0, 1], got {self.alpha}")


@torch.no_grad()
def cvar_weights(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """CVaR best response (m,): 1/(alpha m) on the top floor(alpha m) losses, the rest of the
    mass on the next highest, zero elsewhere."""
    m = losses.shape[0]
    cutoff = int(alpha * m)
    weights = torch.zeros_like(losses)
    order = torch.argsort(losses, descending=True)
    weights[order[:cutoff]] = 1.0 / (alpha * m)
    if cutoff < m:
        weights[order[cutoff]] = 1.0 - cutoff / (alpha * m)
    return weights


@FINETUNE.register("cvar_dro", options=CVaRDROOptions, kinds=("encoder",), fast=FAST)
def cvar_dro(ctx: RecipeContext, cfg: CVaRDROOptions) -> Iterator[Predictor]:
    """Minimise the mean of the top alpha fraction of each batch's losses."""

    def objective(logits: Tensor, features: Tensor, batch: Batch, groups: Tensor | None) -> Tensor:
        losses = cfg.per_example(logits, batch.labels)
        return (cvar_weights(losses, cfg.alpha) * losses).sum()

    model, result = group_train(ctx, cfg, objective, splittable=False)  # top share of a batch
    params = {**describe(cfg), "alpha": cfg.alpha}
    yield Predictor(ctx.name, "cvar_dro", model, params=params, info=result.selection)
