"""DivDis: Diversify and Disambiguate (Lee, Yao, Finn, ICLR 2023, arXiv 2202.03418).

H heads on one trunk fit the labels; on batches of unlabeled data from where the model will be
used they are pushed to disagree: the loss is the heads' mean cross-entropy, plus
``diversity_weight`` times the mean mutual information between the predictions of every pair of
heads on the unlabeled batch (the joint of two heads' predicted classes against the product of
their marginals), plus ``reg_weight`` times the mean over heads of KL(a head's mean prediction
on the unlabeled batch || the mean prediction of all heads on the labelled batch, detached).
Heads that must disagree on the pool while fitting the labels pick up different features: with
a shortcut that explains the labels, one head takes the shortcut and another the real signal.
Disambiguation picks one head: by the labels of the ``queries`` pool examples on which the heads
disagree most (the mean absolute difference of their probabilities; an active query, counted in
the records), or by ID validation accuracy (where every head fits the labels, a weak signal).

Follows ``yoonholee/DivDis``: ``divdis.py`` (``DivDisLoss``, mode ``mi``, reduction ``mean``;
``get_disagreement_scores``, mode ``l1``) and ``subpopulation/train.py``
(``run_epoch_divdis_train``: heads' CE averaged, ``reg_mode kl_backward``, ``bn_mode train``:
labelled and unlabeled batches in separate forward passes). Defaults: 2 heads (every logged run;
argparse: 4), diversity and regulariser weights 10 (argparse), SGD momentum 0.9 without a
schedule, lr 1e-3, weight decay 1e-4, batch 16 (the Waterbirds run; 100 epochs there, 10 here),
an unlabeled batch as large as the labelled one. Differences: the reference drops pairs whose
mutual information is exactly 0 before averaging (``nonzero()``), which makes the loss NaN when
every pair is independent; here the mean runs over every pair. The reference disambiguates with
the most-disagreed examples of a labelled split; here they are pool examples whose labels are
asked for (``queries``, 16 by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.unlabeled import (
    MembersOptions,
    fit,
    head_slices,
    selected,
    trainee,
)
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class DivDisOptions(MembersOptions):
    """DivDis' weights and its Waterbirds optimisation (epochs cut from 100 to 10)."""

    heads: int = param(2, "H, heads on the shared trunk (every logged run: 2)", within="[2, inf)")
    diversity_weight: float = param(
        10.0, "weight of the heads' mutual information on the pool", within="[0, inf)"
    )
    reg_weight: float = param(
        10.0, "weight of KL(pool mean prediction || labelled mean prediction)", within="[0, inf)"
    )
    batch_size: int = param(16, "labelled examples per step (Waterbirds run)")


def head_probabilities(logits: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, H, K) class probabilities of each head from (B, H x K) logits."""
    return torch.stack(torch.chunk(logits, heads, dim=-1), dim=1).softmax(-1)


def pairwise_mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """(H, H) mutual information between the predicted classes of every two heads over a batch:
    ``sum_{c,d} P(c,d) log(P(c,d) / (P(c) P(d)))`` with ``P(c,d)`` the batch mean of
    ``p_h(c|x) p_g(d|x)`` and ``P(c), P(d)`` the heads' batch-mean predictions.

    Args:
        probs: (B, H, K) each head's class probabilities.
    """
    marginal = probs.mean(dim=0)  # H, K
    product = torch.einsum("hc,gd->hgcd", marginal, marginal)
    joint = torch.einsum("bhc,bgd->hgcd", probs, probs) / probs.shape[0]
    return (torch.xlogy(joint, joint) - torch.xlogy(joint, product)).sum(dim=(-1, -2))


def repulsion(probs: torch.Tensor) -> torch.Tensor:
    """The mean mutual information over the pairs of heads (h < g): what DivDis minimises."""
    h = probs.shape[1]
    rows, cols = torch.triu_indices(h, h, offset=1)
    return pairwise_mutual_information(probs)[rows, cols].mean()


def kl_regulariser(pool_probs: torch.Tensor, labelled_probs: torch.Tensor) -> torch.Tensor:
    """Mean over heads of KL(head's mean pool prediction || all heads' mean labelled
    prediction, detached): keeps each head's class balance on the pool that of the labels."""
    target = pool_probs.mean(dim=0)  # H, K
    source = labelled_probs.mean(dim=(0, 1)).detach()  # K
    return (torch.xlogy(target, target) - torch.xlogy(target, source)).sum(-1).mean()


def divdis_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pool_logits: torch.Tensor,
    cfg: DivDisOptions,
) -> torch.Tensor:
    """The heads' mean cross-entropy plus the weighted repulsion and regulariser."""
    k = logits.shape[1] // cfg.heads
    chunks = logits.view(len(logits), cfg.heads, k)
    ce = torch.stack([F.cross_entropy(chunks[:, h], labels) for h in range(cfg.heads)]).mean()
    pool = head_probabilities(pool_logits, cfg.heads)
    labelled = chunks.softmax(-1)
    return (
        ce
        + cfg.diversity_weight * repulsion(pool)
        + cfg.reg_weight * kl_regulariser(pool, labelled)
    )


@FINETUNE.register(
    "divdis", options=DivDisOptions, kinds=("encoder",), needs=("unlabeled",), fast=FAST
)
def divdis(ctx: RecipeContext, cfg: DivDisOptions) -> Iterator[Predictor]:
    """Heads that fit the labels and disagree on the unlabeled pool; one chosen by queries."""
    k = ctx.benchmark.num_classes
    model = trainee(ctx, cfg.heads * k, cfg.head_only, ctx.seed)

    def objective(logits: torch.Tensor, batch: Batch, index: np.ndarray) -> torch.Tensor:
        return divdis_loss(logits, batch.labels, model.forward(model.pool_inputs(index)), cfg)

    result = fit(ctx, model, cfg, objective, seed=ctx.seed, description=ctx.name)
    heads = [model.classifier(h) for h in head_slices(model.head, cfg.heads)]
    params = {"heads": cfg.heads, "head_only": cfg.head_only}
    info = dict(result.selection)
    for h, classifier in enumerate(heads):
        yield Predictor(
            f"{ctx.name}[head={h}]", "divdis", classifier, {**params, "head": h}, info=info
        )
    yield selected(ctx, "divdis", heads, cfg, "head", params, [info] * len(heads))
