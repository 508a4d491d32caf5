"""FLYP: fine-tune like you pretrain (Goyal et al., CVPR 2023, arXiv 2212.00638).

Follows ``locuslab/FLYP`` (``src/models/flyp_loss.py``, ``clip/loss.py``): each training example
is paired with its caption where the data has captions (``image_text``: FLYP's own training
files are image-caption CSVs), else with its class prompt (a template drawn at random per
example and step, as one CSV row per template is sampled there), and the symmetric CLIP loss is
minimised::

    logits = exp(t) * normalize(f(x)) @ normalize(g(prompt)).T      (B x B)
    loss   = (CE(logits, arange(B)) + CE(logits.T, arange(B))) / 2

Both sides and the temperature ``t`` (initialised to log of the backbone's logit scale, not
clamped) are updated, in one AdamW group, with no gradient clipping (``flyp_loss.py`` clips
nothing; with logit scales of 20 to 100 a clip at norm 1 would bind and act as a hidden cut of
the learning rate). The reference evaluates every epoch and reports the last checkpoint
(ImageNet); ``select: id_val_accuracy`` keeps the epoch with the best ID val accuracy instead.
Two examples of the same class are negatives of each other's prompts, as in the reference
(``label_aware_negatives: true`` uses soft targets over same-class entries instead). The evaluated
model is the fine-tuned featurizer with a zero-shot head rebuilt from the fine-tuned prompt side,
scaled by the learned ``exp(t)``.

For text backbones, inputs and prompts go through the same encoder (one tower), so both sides
are that encoder's weights. Prompts are encoded once per distinct (class, template) per step;
the gradient is the same as encoding every row, since duplicates are the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.zero_shot import prompt_texts
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class FLYPOptions(TrainOptions):
    """FLYP's ImageNet recipe: AdamW lr 1e-5, weight decay 0.1, warmup 500, cosine, no clip."""

    lr: float = param(1e-5, "peak learning rate (FLYP scripts pass 1e-5)")
    grad_clip: float | None = param(None, "no gradient clipping (flyp_loss.py clips nothing)")
    label_aware_negatives: bool = param(
        False, "treat same-class prompts as positives (soft targets); the reference does not"
    )


def clip_loss(
    inputs: torch.Tensor,
    prompts: torch.Tensor,
    log_scale: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric contrastive loss between paired rows of ``inputs`` and ``prompts``.

    Args:
        inputs: (B, D) input embeddings. prompts: (B, D) embeddings of each row's prompt.
        log_scale: scalar; logits are scaled by ``exp(log_scale)``.
        labels: (B,) classes; when given, targets are uniform over same-class entries.
    """
    a, b = F.normalize(inputs, dim=-1), F.normalize(prompts, dim=-1)
    logits = log_scale.exp() * a @ b.T
    if labels is None:
        target = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    same = (labels[:, None] == labels[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def encode_distinct(encode: Callable[[list[str]], torch.Tensor], texts: list[str]) -> torch.Tensor:
    """Embeddings of ``texts``, each distinct text encoded once (in order of first appearance):
    the same values and gradient as encoding every row."""
    first: dict[str, int] = {}
    rows = [first.setdefault(t, len(first)) for t in texts]
    embedded = encode(list(first))
    return embedded[torch.as_tensor(rows, device=embedded.device)]


class FLYPModel(nn.Module):
    """The trained parts: the featurizer (both towers, for text) and the log temperature."""

    def __init__(self, featurizer: nn.Module, logit_scale: float) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.log_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))


@FINETUNE.register("flyp", options=FLYPOptions, kinds=("text_side",), fast=FAST)
def flyp(ctx: RecipeContext, cfg: FLYPOptions) -> Iterator[Predictor]:
    """Contrastive fine-tuning against class prompts, updating both sides and the temperature."""
    ctx.require_text_side("contrasts inputs with class prompts")
    model = FLYPModel(ctx.trainable_copy(), ctx.backbone.logit_scale)
    encode_text = Backbone.text_side(model.featurizer)
    texts = prompt_texts(ctx.benchmark.class_names, ctx.prompts)  # [class][template]
    num_templates = len(ctx.prompts)
    generator = torch.Generator().manual_seed(ctx.seed)
    captions = ctx.benchmark.train.captions

    def loss_fn(batch: Batch) -> torch.Tensor:
        if captions is not None:  # image-text data: each image against its own caption
            paired = [str(captions[i]) for i in batch.index]
            return clip_loss(
                model.featurizer(batch.inputs),
                encode_distinct(encode_text, paired),
                model.log_scale,
                batch.labels if cfg.label_aware_negatives else None,
            )
        labels = batch.labels.cpu()
        template = torch.randint(num_templates, (len(labels),), generator=generator)
        pair = labels * num_templates + template
        distinct, row = torch.unique(pair, return_inverse=True)
        prompts = [texts[int(p) // num_templates][int(p) % num_templates] for p in distinct]
        prompt_embeddings = encode_text(prompts)[row.to(batch.labels.device)]
        return clip_loss(
            model.featurizer(batch.inputs),
            prompt_embeddings,
            model.log_scale,
            batch.labels if cfg.label_aware_negatives else None,
        )

    def as_classifier() -> Classifier:
        """The fine-tuned featurizer with the zero-shot head of its current prompt side."""
        scale = float(model.log_scale.detach().exp())
        head = ctx.zero_shot_head(model.featurizer, scale=scale)
        return Classifier(model.featurizer, head.to(ctx.device))

    # The contrastive loss couples a batch's rows: never split across processes.
    result = ctx.train(
        model, loss_fn, cfg, classifier=as_classifier, splittable=False, stateful=[generator]
    )
    classifier = as_classifier()
    scale = round(float(model.log_scale.detach().exp()), 4)
    yield Predictor(
        ctx.name, "flyp", classifier, params={"logit_scale": scale}, info=result.selection
    )
