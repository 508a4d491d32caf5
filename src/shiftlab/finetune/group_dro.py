"""Group DRO (Sagawa, Koh, Hashimoto, Liang, ICLR 2020, arXiv 1911.08731).

Follows ``kohpangwei/group_DRO`` (``loss.py``, ``compute_robust_loss``): per batch, each group's
mean loss ``l_g`` (0 for a group absent from the batch); the adversary's group weights take an
exponentiated-gradient step ``q_g <- q_g exp(eta (l_g + C / sqrt(n_g)))`` and are renormalised;
the model minimises ``sum_g q_g l_g``. ``eta`` (``step_size``) 0.01 and ``C``
(``adjustment``) 0 are the reference defaults; the adjustment is applied only when positive, as
there. Groups are sampled equally often (``reweight_groups``), and the epoch with the best ID val
worst-group accuracy is kept. Optimisation as ``run_expt.py`` (SGD momentum 0.9, lr 1e-3, weight
decay 5e-5, batch 32, 4 epochs); the README's commands raise weight decay for CelebA and
Waterbirds, and the paper stresses strong L2 or early stopping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import (
    GroupTrainOptions,
    describe,
    group_counts,
    group_train,
    train_groups,
)
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class GroupDROOptions(GroupTrainOptions):
    """Exponentiated-gradient group weights; group-balanced sampling."""

    step_size: float = param(0.01, "eta: step size of the group weights", within="[0, inf)")
    adjustment: float = param(0.0, "C: generalization adjustment C / sqrt(n_g)", within="[0, inf)")
    balanced: bool = param(True, "sample groups equally often (reweight_groups)")


def group_mean_losses(
    losses: torch.Tensor, groups: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss (G,) and count (G,) of each group in a batch; 0 loss for absent groups."""
    one_hot = (groups[None, :] == torch.arange(num_groups, device=groups.device)[:, None]).float()
    counts = one_hot.sum(dim=1)
    return one_hot @ losses / (counts + (counts == 0).float()), counts


def group_dro_update(
    q: torch.Tensor,
    group_losses: torch.Tensor,
    train_counts: torch.Tensor,
    step_size: float,
    adjustment: float = 0.0,
) -> torch.Tensor:
    """New group weights: ``q * exp(eta * (l_g + C / sqrt(n_g)))``, normalised to sum to one."""
    adjusted = group_losses.detach()
    if adjustment > 0:
        adjusted = adjusted + adjustment / torch.sqrt(train_counts.clamp(min=1).float())
    q = q * torch.exp(step_size * adjusted)
    return q / q.sum()


@FINETUNE.register(
    "group_dro", options=GroupDROOptions, kinds=("encoder",), needs=("groups",), fast=FAST
)
def group_dro(ctx: RecipeContext, cfg: GroupDROOptions) -> Iterator[Predictor]:
    """Minimise the worst group's loss through adaptive group weights (exponentiated gradient)."""
    counts = torch.as_tensor(group_counts(ctx, train_groups(ctx, needed=True)), device=ctx.device)
    num_groups = len(counts)
    q = torch.full((num_groups,), 1.0 / num_groups, device=ctx.device)  # updated in place

    def objective(logits: Tensor, features: Tensor, batch: Batch, batch_groups: Tensor) -> Tensor:
        losses = cfg.per_example(logits, batch.labels)
        group_losses, _ = group_mean_losses(losses, batch_groups, num_groups)
        q.copy_(group_dro_update(q, group_losses, counts, cfg.step_size, cfg.adjustment))
        return group_losses @ q

    # The group weights step on whole batches: never split across processes.
    model, result = group_train(
        ctx, cfg, objective, needs_groups=True, splittable=False, stateful=[q]
    )
    params = {**describe(cfg), "step_size": cfg.step_size, "adjustment": cfg.adjustment}
    info = {**result.selection, "group_weights": [round(float(w), 4) for w in q]}
    yield Predictor(ctx.name, "group_dro", model, params=params, info=info)
