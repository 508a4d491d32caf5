"""ENP, Explicit Non-spurious feature Prediction (Ghosal, Setlur, Brown, Dragan, Raghunathan,
"Contextual Reliability: When Different Features Matter in Different Contexts", ICML 2023, arXiv
2307.10026).

Stage 1 learns, from per-example annotations naming the features reliable for that example (on
some of the training examples), to predict which features are reliable for any example. Stage 2
trains the model to rely only on the features predicted reliable: the others are replaced by
their training mean before the model sees the input, in training and at prediction, so the
model's output cannot depend on a feature predicted unreliable for that input.

No code was released: the two stages are the paper's (its Figure 1), the rest is this module's
choice. Features are named regions of an image input (``Benchmark.regions``, e.g. the channels
of ``contextual_reliability``); annotations are the ``reliable`` attribute (``"core;patch"``).
Stage 1 is one L2-regularised logistic regression per region (scikit-learn, ``C`` 1, on the
flattened input) over the annotated examples, thresholded at 0.5; a region every annotation
calls reliable is always kept, one none calls reliable always replaced. Replacing (rather than
the paper's "invariance to" the features, which could also be a penalty or a counterfactual
augmentation) makes the invariance exact. ``mask: always`` is the baseline that drops, for every
example, each region some annotation calls unreliable ("drop the feature everywhere"). Stage 2
trains the whole model (a copy of the featurizer and a fresh head) with the group recipes'
optimisation (:mod:`shiftlab.finetune.groups`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.groups import GroupTrainOptions
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class ENPOptions(GroupTrainOptions):
    """Which features are masked, and the group recipes' optimisation for stage 2."""

    mask: Literal["predicted", "always"] = param(
        "predicted", "predicted: per example, by stage 1; always: every region ever unreliable"
    )
    c: float = param(1.0, "stage 1: inverse L2 strength of each region's logistic regression",
                     within="(0, inf)")  # fmt: skip
    select: Literal["last", "id_val_accuracy", "id_val_worst_group_accuracy"] = param(
        "last", "which epoch's weights to keep"
    )


class RegionMasker(nn.Module):
    """Replaces each region predicted unreliable for an input by its training mean.

    Per region: a boolean mask (C, H, W), a fill (C, H, W), and either a constant decision or a
    linear rule on the flattened input (keep where ``w . x + b >= 0``, i.e. probability 0.5).
    """

    def __init__(self, regions: dict[str, np.ndarray], fill: np.ndarray) -> None:
        super().__init__()
        self.names = list(regions)
        self.register_buffer("masks", torch.as_tensor(np.stack(list(regions.values()))))
        self.register_buffer("fill", torch.as_tensor(fill, dtype=torch.float32))
        d = int(np.prod(fill.shape))
        self.register_buffer("weight", torch.zeros(len(regions), d))
        self.register_buffer("bias", torch.zeros(len(regions)))

    def keep(self, x: torch.Tensor) -> torch.Tensor:
        """(B, R) whether each region is kept for each input."""
        return x.flatten(1) @ self.weight.T + self.bias >= 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped = (~self.keep(x)).float()  # B, R
        replace = torch.einsum("br,rchw->bchw", dropped, self.masks.float()).clamp(max=1.0)
        return x * (1 - replace) + self.fill * replace


class MaskedFeaturizer(nn.Module):
    """A featurizer that sees its input after a :class:`RegionMasker`."""

    def __init__(self, masker: RegionMasker, featurizer: nn.Module) -> None:
        super().__init__()
        self.masker, self.inner = masker, featurizer
        self.dim = getattr(featurizer, "dim", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.masker(x))


def annotated_reliability(ctx: RecipeContext) -> tuple[np.ndarray, np.ndarray]:
    """The annotated training examples' indices and their (N_a, R) reliability of each region.

    Raises:
        ConfigError: no regions, no annotations, or inputs that are not image arrays.
    """
    bench, train = ctx.benchmark, ctx.benchmark.train
    if bench.regions is None or train.annotations is None or not (train.annotations != "").any():
        raise ConfigError(
            f"recipe '{ctx.name}' (enp) needs annotations of the reliable features of some "
            "training examples (a 'reliable' attribute naming regions) and the data's regions, "
            "e.g. data: {kind: contextual_reliability}"
        )
    if not isinstance(train.inputs, np.ndarray):
        raise ConfigError(f"recipe '{ctx.name}' (enp) masks regions of image arrays")
    index = np.flatnonzero(train.annotations != "")
    names = list(bench.regions)
    said = [set(str(a).split(";")) for a in train.annotations[index]]
    unknown = sorted(set().union(*said) - set(names))
    if unknown:
        raise ConfigError(f"annotations name region '{unknown[0]}'; regions: {', '.join(names)}")
    return index, np.array([[name in s for name in names] for s in said], dtype=bool)


def stage_one(ctx: RecipeContext, cfg: ENPOptions) -> RegionMasker:
    """The masker: per region, a logistic regression on the annotated examples, a constant
    where every annotation agrees, or (``mask: always``) dropped wherever one says so."""
    from sklearn.linear_model import LogisticRegression

    train = ctx.benchmark.train
    index, reliable = annotated_reliability(ctx)
    inputs = np.asarray(train.inputs, dtype=np.float32)
    masker = RegionMasker(ctx.benchmark.regions, inputs.mean(axis=0))
    x = inputs[index].reshape(len(index), -1)
    for r in range(reliable.shape[1]):
        column = reliable[:, r]
        if cfg.mask == "always" or column.all() or not column.any():
            masker.bias[r] = 1.0 if column.all() else -1.0  # weight 0: a constant decision
            continue
        model = LogisticRegression(C=cfg.c, max_iter=1000).fit(x, column)
        masker.weight[r] = torch.as_tensor(model.coef_[0], dtype=torch.float32)
        masker.bias[r] = float(model.intercept_[0])
    return masker.to(ctx.device)


@FINETUNE.register("enp", options=ENPOptions, kinds=("encoder",), needs=("annotations",), fast=FAST)
def enp(ctx: RecipeContext, cfg: ENPOptions) -> Iterator[Predictor]:
    """Predict each example's reliable features; train on those features only."""
    if cfg.head_only:
        raise ConfigError(f"recipe '{ctx.name}' (enp) masks raw inputs: head_only must be false")
    masker = stage_one(ctx, cfg)
    torch.manual_seed(ctx.seed)
    featurizer = MaskedFeaturizer(masker, ctx.trainable_copy())
    head = nn.Linear(ctx.feature_dim(), ctx.benchmark.num_classes)
    model = Classifier(featurizer, head).to(ctx.device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        return cfg.mean_loss(model(batch.inputs), batch.labels)

    result = ctx.train(model, loss_fn, cfg, classifier=lambda: model)
    train = ctx.benchmark.train
    index, reliable = annotated_reliability(ctx)
    with torch.no_grad():
        kept = masker.keep(torch.as_tensor(train.inputs[index]).to(ctx.device)).cpu().numpy()
    info: dict[str, Any] = {
        **result.selection,
        "annotated": len(index),
        "stage1_train_agreement": float((kept == reliable).mean()),
    }
    loss = {} if cfg.loss == "ce" else cfg.loss_params()
    yield Predictor(ctx.name, "enp", model, {"mask": cfg.mask, **loss}, info=info)
