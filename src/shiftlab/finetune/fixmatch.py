"""FixMatch with unlabeled data from the target domains (Sohn et al., NeurIPS 2020, arXiv
2001.07685; as WILDS runs it, Sagawa et al., ICLR 2022, arXiv 2112.05090).

Each step, the model labels a weakly augmented view of a pool batch (no gradient); the pool
examples it predicts with confidence at least ``threshold`` are trained on that class from a
strongly augmented view of the same examples, the loss summed over them and divided by the
whole pool batch, weighted by ``unlabeled_weight``, beside the labelled batch's cross-entropy.

Follows ``p-lambda/wilds`` ``algorithms/fixmatch.py`` (``FixMatch``: pseudo-labels from
``x_weak`` under ``torch.no_grad``, the loss on ``x_strong`` of the kept examples times the kept
fraction; ``self_training_threshold`` 0.7, ``self_training_lambda`` 1) and
``google-research/fixmatch`` (threshold 0.95 there; weak: flip and shift; strong: RandAugment
then Cutout). Views are this module's:

- texts: weak is the text itself; strong drops each word with probability ``word_dropout``
  (EDA's random deletion, Wei and Zou 2019, arXiv 1901.11196, alpha 0.1; a text keeps at least
  one word);
- images (model-ready tensors, after the backbone's own transform): weak shifts by up to
  ``shift`` of the side (zero padding) and, if ``flip``, mirrors half of them (off by default:
  digits are not mirror-symmetric); strong adds random brightness and contrast (factors in
  [0.5, 1.5]) and Cutout of a square half the side (FixMatch's Cutout). RandAugment's other
  operations are left out.

The model must see raw inputs, so ``head_only`` is refused. The optimiser is the one shared by
shiftlab's pool recipes (SGD, momentum 0.9), not FixMatch's cosine-decayed Nesterov SGD over
2^20 steps; the pool batch defaults to the labelled one's size (WILDS' per-dataset sizes; the
paper's mu = 7).

The model starts as ``full_ft``'s does (the zero-shot head where the backbone has a text
side), as WILDS starts its self-training models as its ERM ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.eda import drop_words
from shiftlab.finetune.unlabeled import SelfTrainingOptions, fit, pseudo_label_loss, trainee
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class FixMatchOptions(SelfTrainingOptions):
    """WILDS' FixMatch settings (the paper's threshold: 0.95) and this module's views."""

    word_dropout: float = param(
        0.1, "texts: each word dropped from the strong view with this probability (EDA)",
        within="[0, 1)",
    )  # fmt: skip
    shift: float = param(0.125, "images: largest shift, a share of the side", within="[0, 0.5]")
    flip: bool = param(False, "images: mirror half of the weak views")


def shifted(
    images: torch.Tensor, shift: float, flip: bool, rng: np.random.Generator
) -> torch.Tensor:
    """Each image moved by up to ``shift`` of its side (zero padding), mirrored half the time
    if ``flip``: FixMatch's weak view."""
    out = torch.zeros_like(images)
    _, _, h, w = images.shape
    for i, image in enumerate(images):
        if flip and rng.random() < 0.5:
            image = image.flip(-1)
        dy, dx = (int(rng.integers(-round(shift * s), round(shift * s) + 1)) for s in (h, w))
        src = image[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        out[
            i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]
        ] = src
    return out


def strong_images(
    images: torch.Tensor, rng: np.random.Generator, cutout: bool = True
) -> torch.Tensor:
    """Random brightness and contrast (factors in [0.5, 1.5]) and, if ``cutout``, Cutout of a
    square half the side, per image."""
    out = images.clone()
    _, _, h, w = images.shape
    for i in range(len(out)):
        mean = out[i].mean()
        out[i] = (out[i] - mean) * rng.uniform(0.5, 1.5) + mean * rng.uniform(0.5, 1.5)
        if not cutout:
            continue
        size = max(1, h // 2)
        y, x = int(rng.integers(h)), int(rng.integers(w))
        y0, x0 = max(0, y - size // 2), max(0, x - size // 2)
        out[i, :, y0 : y0 + size, x0 : x0 + size] = 0.0
    return out


def views(inputs: Any, cfg: FixMatchOptions, rng: np.random.Generator) -> tuple[Any, Any]:
    """The weak and the strong view of model-ready pool inputs (texts or an image tensor)."""
    if isinstance(inputs, torch.Tensor):
        weak = shifted(inputs, cfg.shift, cfg.flip, rng)
        return weak, strong_images(weak, rng)
    texts = [str(t) for t in inputs]
    return texts, [drop_words(t, cfg.word_dropout, rng) for t in texts]


@FINETUNE.register(
    "fixmatch", options=FixMatchOptions, kinds=("encoder",), needs=("unlabeled",),
    fast={**FAST, "head_only": False},
)  # fmt: skip
def fixmatch(ctx: RecipeContext, cfg: FixMatchOptions) -> Iterator[Predictor]:
    """Train on the labels and on confident weak-view predictions from strong views."""
    if cfg.head_only:
        raise ConfigError(
            f"recipe '{ctx.name}': fixmatch augments raw inputs, so it cannot train on cached "
            "features; set head_only: false (or use pseudo_label)"
        )
    model = trainee(ctx, ctx.benchmark.num_classes, False, ctx.seed, start="auto")
    rng = np.random.default_rng([ctx.seed, 20200121])

    def objective(logits: torch.Tensor, batch: Batch, index: np.ndarray) -> torch.Tensor:
        weak, strong = views(model.pool_inputs(index), cfg, rng)
        with torch.no_grad():
            teacher = model.forward(weak)
        pool = pseudo_label_loss(model.forward(strong), teacher, cfg.threshold)
        return F.cross_entropy(logits, batch.labels) + cfg.unlabeled_weight * pool

    result = fit(ctx, model, cfg, objective, seed=ctx.seed, description=ctx.name, stateful=[rng])
    params = {"threshold": cfg.threshold, "unlabeled_weight": cfg.unlabeled_weight}
    yield Predictor(
        ctx.name, "fixmatch", model.classifier(model.head), params, info=result.selection
    )
