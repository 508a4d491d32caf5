"""CLIPood: generalizing CLIP to out-of-distributions (Shu et al., ICML 2023, arXiv 2302.00864).

Follows ``thuml/CLIPood`` (``engine.py``: ``train``, ``GeneralMovingAverage``; ``main.py``;
``scripts.sh``). Only the input side is trained; the class-prompt embeddings ``t_k`` (the
normalised mean of the normalised embeddings of ``prompts`` filled with the class name, as
zero-shot heads are built) are computed once from the pretrained prompt side and frozen. Each
training example's logits carry a class-dependent margin (the *margin metric softmax*)::

    f = normalize(input_side(x))
    z = T * (f - lam * t[y]) @ t.T  =  T cos(f, t_k) - T lam cos(t_y, t_k)
    loss = CE(z, y)

so a class k must be beaten by an extra ``T lam (1 - cos(t_y, t_k))``: more for classes whose
prompts are far from the true one's. ``T`` is the backbone's logit scale (CLIP's
``logit_scale.exp()``) unless ``temperature`` is set. The network stays in eval mode while it
trains (``eval_mode``, the reference's ``model.eval()`` "Freeze all Norm Layers": frozen
normalisation statistics, no dropout).

Along the way the weights are averaged with the *Beta moving average* (BMA,
:class:`shiftlab.training.averaging.BetaMovingAverage`): step t of T optimiser steps (t = 0 the
pretrained weights) weighs ``Beta(beta, beta).pdf((t + 0.5) / (T + 1))``; with beta 0.5 both the
zero-shot start and the end of training weigh most. The running average is updated after every
optimiser step (the trainer's ``on_step``) and is part of the training checkpoints, so a resumed
run ends with the same average. Two predictors: ``NAME[bma]``, the averaged weights, and
``NAME[last]``, the weights after the last step (``NAME[val_selected]`` under ``select:
id_val_accuracy`` or ``id_val_worst_group_accuracy``, the reference's best-val checkpoint).
Each is evaluated by plain cosine similarity with the frozen class embeddings (no margin),
scaled by ``T``: a zero-shot-style head ``T t_k`` on its featurizer.

**Text backbones** (one tower, e.g. MiniLM): inputs and prompts go through the same encoder, so
the prompt side is the frozen pretrained encoder and the input side a trained copy of it; the two
stop being the same network after the first step. On a two-tower model (``open_clip:``) the
trained copy holds both towers, but only the image tower receives gradients: the text tower of
the copy is never stepped (AdamW skips parameters without a gradient, decay included), and the
prompts are encoded by the pretrained model anyway.

Differences from the reference:

- **Prompts.** The run's ``prompts`` (every template, averaged per class as WiSE-FT's zero-shot
  heads) instead of the single ``"a photo of a {}."``.
- **Epochs and steps.** An epoch is one pass over the ID training split; the reference counts
  epochs of 500 iterations drawn from a forever-iterator (``--iters-per-epoch 500``), so its T is
  ``epochs x 500`` and ours is ``epochs x ceil(N / batch_size)`` (a last batch of one folded into
  the previous, as the trainer does).
- **Batches.** One batch of ``batch_size`` shuffled ID examples; the domain-shift runs draw 12 per
  source domain (36 for the three source domains of PACS, VLCS, OfficeHome, TerraIncognita).
- **Precision.** fp32 weights with the run's autocast; the reference keeps CLIP's fp16 weights and
  casts them to fp32 only around the optimiser step.
- **Averaged entries.** Every finite floating-point state-dict entry (buffers too); the reference
  averages ``parameters()`` and keeps the initial buffers. The same while in eval mode, where
  buffers do not change.
- **Model selection.** The reference reports both its best-ID-val checkpoint and the BMA model;
  here ``select`` (default ``last``) decides the non-averaged predictor, and the BMA averages
  the whole trajectory whatever ``select`` says.
- The released ``engine.py`` does not run as is (``get_text_features`` returns nothing,
  ``args.lambda`` / ``args.alpha``, ``args.tasks``, an uninitialised batch list); this follows
  its evident intent and the paper's equations.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor, linear_head
from shiftlab.models.zero_shot import class_embeddings
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions
from shiftlab.training.averaging import BetaMovingAverage
from shiftlab.training.options import FAST
from shiftlab.training.trainer import batches_per_epoch
from shiftlab.typed import param


@dataclass
class CLIPoodOptions(TrainOptions):
    """CLIPood's DomainBed recipe (PACS / VLCS / TerraIncognita): AdamW lr 5e-6, weight decay 0.1,
    cosine to 0 without warmup, 10 epochs, lambda 0.3, beta 0.5."""

    epochs: int = param(
        10, "passes over the ID split (scripts.sh, DomainBed: --epochs 10)", within="[1, inf)"
    )
    lr: float = param(
        5e-6, "peak learning rate (scripts.sh, PACS/VLCS/TerraInc: --lr 5e-6)", within="(0, inf)"
    )
    weight_decay: float = param(0.1, "AdamW weight decay (main.py --wd 0.1)", within="[0, inf)")
    batch_size: int = param(
        36, "examples per step (main.py -b 36; DomainBed: 12 x 3 source domains)", within="[1, inf)"
    )
    warmup_steps: int = param(
        0, "no warmup (main.py: CosineAnnealingLR from the first step)", within="[0, inf)"
    )
    grad_clip: float | None = param(
        None, "no gradient clipping (engine.py clips nothing)", within="(0, inf)"
    )
    optimizer: Literal["adamw", "adam", "sgd"] = param("adamw", "optimiser (main.py: AdamW)")
    lam: float = param(
        0.3, "margin weight lambda (main.py --lambda 0.3; scripts.sh, DomainBed)", within="[0, inf)"
    )
    beta: float = param(
        0.5,
        "BMA: Beta(beta, beta) weights over the steps (main.py --beta 0.5; scripts.sh, DomainBed)",
        within="(0, inf)",
    )
    temperature: float | None = param(
        None,
        "logit scale T of the margin loss and the evaluation head; null: the backbone's logit "
        "scale (main.py --temperature default: CLIP's logit_scale.exp())",
        within="(0, inf)",
    )
    eval_mode: bool = param(
        True,
        "train in eval mode: frozen normalisation statistics, no dropout (engine.py: "
        'model.eval(), "Freeze all Norm Layers")',
    )


def margin_logits(
    features: torch.Tensor,
    text_features: torch.Tensor,
    labels: torch.Tensor,
    lam: float,
    scale: float,
) -> torch.Tensor:
    """CLIPood's margin metric softmax logits ``scale * (normalize(f) - lam * t[y]) @ t.T``.

    Args:
        features: (B, D) input-side embeddings (normalised here).
        text_features: (K, D) normalised class-prompt embeddings.
        labels: (B,) true classes.
        lam: margin weight lambda. scale: the temperature T.
    """
    shifted = F.normalize(features, dim=-1) - lam * text_features[labels]
    return scale * shifted @ text_features.T


def frozen_class_embeddings(ctx: RecipeContext) -> torch.Tensor:
    """(K, D) normalised class-prompt embeddings from the pretrained prompt side."""
    featurizer = ctx.backbone.featurizer  # kept in eval mode by the Backbone
    with torch.no_grad():
        text = class_embeddings(
            Backbone.text_side(featurizer), ctx.benchmark.class_names, ctx.prompts
        )
    return text.detach().float().to(ctx.device)


@FINETUNE.register(
    "clipood", options=CLIPoodOptions, kinds=("text_side",), fast={**FAST, "warmup_steps": 0}
)
def clipood(ctx: RecipeContext, cfg: CLIPoodOptions) -> Iterator[Predictor]:
    """Train the input side with margins from frozen class prompts; average the weights (BMA)."""
    ctx.require_text_side("computes margins between class prompts")
    text = frozen_class_embeddings(ctx)
    scale = float(cfg.temperature or ctx.backbone.logit_scale)
    featurizer = ctx.trainable_copy()
    steps = cfg.epochs * batches_per_epoch(len(ctx.benchmark.train), cfg.batch_size)
    bma = BetaMovingAverage(featurizer, cfg.beta, steps)

    def loss_fn(batch: Batch) -> torch.Tensor:
        logits = margin_logits(featurizer(batch.inputs), text, batch.labels, cfg.lam, scale)
        return F.cross_entropy(logits, batch.labels)

    def head() -> nn.Linear:
        return linear_head(text.cpu() * scale).to(ctx.device)

    def as_classifier() -> Classifier:
        return Classifier(featurizer, head())

    result = ctx.train(
        featurizer,
        loss_fn,
        cfg,
        classifier=as_classifier,
        eval_mode=cfg.eval_mode,
        on_step=lambda _: bma.update(),
        stateful=[bma],
    )
    assert bma.steps == steps, (bma.steps, steps)
    common = {"lam": cfg.lam, "temperature": round(scale, 4)}
    averaged = bma.averaged_into(copy.deepcopy(featurizer)).eval()
    yield Predictor(
        f"{ctx.name}[bma]",
        "clipood",
        Classifier(averaged, head()),
        params={"average": "bma", "beta": cfg.beta, "steps": steps, **common},
    )
    label = "last" if cfg.select == "last" else "val_selected"
    yield Predictor(
        f"{ctx.name}[{label}]",
        "clipood",
        Classifier(featurizer.eval(), head()),
        params={"average": label, **common},
        info=result.selection,
    )
