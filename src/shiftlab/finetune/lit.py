"""LiT on the run's own image-text pairs (Zhai et al., arXiv 2111.07991).

Tunes fresh projections of a ``lit`` backbone's locked towers (or, on any other backbone with
a text side, of its input side and its text side, both locked) on the training split's pairs
(each image with its caption, or a class prompt where the data has none), with CLIP's symmetric
contrastive loss, and predicts zero-shot from the run's class prompts. It is what "a LiT model
trained on this set" means for a curated set: T-MARS or CLIP-score filtering keep pairs, and the
curated stage retrains this recipe on each kept set (``examples/tmars.yaml``). The projections
start again from a seeded initialisation, so nothing the backbone's own tuning learnt carries
over; the towers are the backbone's, untouched (with ``train_text``, the text tower is a copy
that trains). A backbone whose own tuning trained its text tower (``backbone.lit.train_text``)
hands that tuned text tower on: then the projections start afresh but the text tower has seen
every pair the backbone was tuned on; tune the backbone with both towers locked (the default)
to compare sets on equal terms. Options and defaults: :class:`LiTOptions`
(:mod:`shiftlab.models.lit`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.lit import LiTFeaturizer, LiTOptions, embed, fit_projections, pair_captions
from shiftlab.registry import FINETUNE


class PromptSide(nn.Module):
    """A backbone's text side as a module of its own (the tower LiT puts a projection on)."""

    def __init__(self, featurizer: nn.Module) -> None:
        super().__init__()
        self.featurizer = featurizer

    def forward(self, texts: list[str]) -> torch.Tensor:
        return Backbone.text_side(self.featurizer)(texts)


@dataclass
class LiTTuneOptions(LiTOptions):
    """How the projections are tuned on the training pairs (``backbone.lit``'s defaults)."""


@FINETUNE.register("lit", options=LiTTuneOptions, kinds=("text_side",), fast={"epochs": 2})
def lit(ctx: RecipeContext, cfg: LiTTuneOptions) -> Iterator[Predictor]:
    """Fresh projections of the lit backbone's towers tuned on the training pairs; zero-shot."""
    ctx.require_text_side("contrasts inputs with captions")
    backbone = ctx.backbone.featurizer
    if not isinstance(backbone, LiTFeaturizer):  # any two-tower (or one-tower text) backbone
        backbone = LiTFeaturizer(backbone, PromptSide(backbone), 1, 1, 1, cfg.logit_scale)
    train = ctx.benchmark.train
    captions = pair_captions(train, ctx.benchmark.class_names, ctx.seed)
    image_features = ctx.features(train, backbone.image)
    # the captions' features, or, when the text tower trains, the captions (and a copy of the
    # tower: the backbone's stays as it was)
    texts = captions if cfg.train_text else embed(backbone.text, captions)
    text = copy.deepcopy(backbone.text) if cfg.train_text else backbone.text
    text_dim = (embed(text, captions[:1]) if cfg.train_text else texts).shape[1]
    torch.manual_seed(ctx.seed)
    model = LiTFeaturizer(
        backbone.image, text, image_features.shape[1], text_dim, cfg.dim, cfg.logit_scale
    ).to(ctx.device)
    losses = fit_projections(model, image_features, texts, cfg, ctx.seed)
    model.eval()
    scale = float(model.log_scale.detach().exp())
    head = ctx.zero_shot_head(model, scale=scale).to(ctx.device)
    info = {"pairs": len(train), "final_loss": round(losses[-1], 4)}
    yield Predictor(
        ctx.name, "lit", Classifier(model, head), params={"logit_scale": round(scale, 4)}, info=info
    )
