"""CleanCLIP: contrastive fine-tuning with in-modal self-supervision (Bansal et al., ICCV 2023,
arXiv 2303.03323).

Follows ``nishadsinghi/CleanCLIP`` (``src/train.py`` ``get_loss`` with ``--inmodal``, the README's
fine-tuning command): each training example x is paired with a text t, and both get an
augmented view, x~ and t~. With I, T, I~, T~ their L2-normalised embeddings and
tau = exp(log_scale)::

    L_CLIP = [CE(tau I T^T, diag) + CE(tau T I^T, diag)] / 2
    L_SS   = [CE(tau I I~^T, diag) + CE(tau T T~^T, diag)] / 2   (one direction per modality)
    loss   = clip_weight * L_CLIP + inmodal_weight * L_SS

``inmodal_weight: 0`` is plain contrastive fine-tuning on the (clean) data: the paper's key
ablation. The text of an example is its caption when the training split has captions
(``Split.captions``; an empty caption counts as none), else its class prompt with a template
drawn per example and step, as :mod:`shiftlab.finetune.flyp` pairs them. Views:

- texts (the paired texts, and the inputs of text backbones): one EDA operation
  (:mod:`shiftlab.finetune.eda`; synonym replacement is left out, WordNet being absent);
- images from files: torchvision's ``AutoAugment`` (ImageNet policy, as the reference's
  ``utils/augment_image.py``), applied to the decoded batch (un-normalised to 8-bit pixels
  and normalised again);
- image arrays (digits): a random shift of up to ``shift`` of the side and random brightness
  and contrast (:mod:`shiftlab.finetune.fixmatch`'s helpers).

Both towers (for text backbones, the one encoder) and the log temperature train, the latter
clamped after every step to ``[0, log(max_logit_scale)]`` as the reference clamps
``logit_scale`` to ``[0, 4.6052]``. AdamW (lr 1e-5, betas (0.9, 0.999), eps 1e-8) with weight
decay 0.1 on parameters of two or more dimensions and none on the rest (normalisation weights,
biases, the temperature), cosine after 50 warmup steps, no gradient clipping. The evaluated model
is the fine-tuned featurizer with the zero-shot head rebuilt from its prompt side and scaled by
the learned temperature, as ``flyp``'s. Inputs and their views are encoded in one call, and so
are texts and theirs (the reference concatenates them likewise); distinct texts are encoded
once per step.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab._optional import require
from shiftlab.data.batches import ImageTransform, input_transform
from shiftlab.data.images import ImageFiles
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.eda import eda
from shiftlab.finetune.fixmatch import shifted, strong_images
from shiftlab.finetune.flyp import FLYPModel, encode_distinct
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.zero_shot import prompt_texts
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions
from shiftlab.training.options import FAST
from shiftlab.typed import param, ref


@dataclass
class CleanCLIPOptions(TrainOptions):
    """The README's CleanCLIP fine-tuning command and ``src/parser.py``'s defaults."""

    epochs: int = param(10, "passes over the training split (README: --epochs 10)")
    lr: float = param(1e-5, "peak learning rate (README: --lr 1e-5)")
    weight_decay: float = param(
        0.1, "AdamW weight decay of weights with 2+ dimensions; none on norms, biases and the "
        "temperature (parser.py: 0.1)",
    )  # fmt: skip
    batch_size: int = param(64, "examples per step (README: --batch_size 64)")
    warmup_steps: int = param(50, "linear warmup steps (README: --num_warmup_steps 50)")
    grad_clip: float | None = param(None, "no gradient clipping (src/train.py clips nothing)")
    clip_weight: float = param(
        1.0, "weight of the cross-modal CLIP loss (--clip_weight)", within="[0, inf)"
    )
    inmodal_weight: float = param(
        1.0, "weight of the in-modal self-supervised loss (--inmodal_weight); 0: plain "
        "contrastive fine-tuning", within="[0, inf)",
    )  # fmt: skip
    eda_alpha: float = param(
        0.1, "EDA strength of text views: share of words changed (EDA's alpha)", within="[0, 1]"
    )
    shift: float = param(
        0.125, "image arrays: largest shift of the augmented view, a share of the side",
        within="[0, 0.5]",
    )  # fmt: skip
    init: str | None = ref(
        None,
        "start from this earlier entry's fine-tuned model (e.g. a poisoned flyp) instead "
        "of the pretrained backbone: the reference fine-tunes a poisoned CLIP",
    )
    data: Literal["train", "clean"] = param(
        "train", "clean: the training split less its poisoned examples (data.poison), a "
        "stand-in for the reference's separate clean set of the same distribution",
    )  # fmt: skip
    max_logit_scale: float | None = param(
        100.0, "the learned scale is clamped to [1, this] after every step (the reference: "
        "100); null: unclamped", within="[1, inf)",
    )  # fmt: skip


def cleanclip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    aug_image: torch.Tensor,
    aug_text: torch.Tensor,
    log_scale: torch.Tensor,
    clip_weight: float = 1.0,
    inmodal_weight: float = 1.0,
) -> torch.Tensor:
    """CleanCLIP's loss on paired rows: the symmetric cross-modal CLIP loss times
    ``clip_weight`` plus the in-modal loss (each input against the views of the batch's inputs,
    each text against the views of its texts; one direction each) times ``inmodal_weight``.

    Args:
        image, text, aug_image, aug_text: (B, D) embeddings (normalised here).
        log_scale: scalar; logits are scaled by ``exp(log_scale)``.
    """
    i, t = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    scale = log_scale.exp()
    target = torch.arange(len(i), device=i.device)
    logits = scale * i @ t.T
    loss = clip_weight * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    if inmodal_weight == 0:
        return loss
    i_view, t_view = F.normalize(aug_image, dim=-1), F.normalize(aug_text, dim=-1)
    images = F.cross_entropy(scale * i @ i_view.T, target)
    texts = F.cross_entropy(scale * t @ t_view.T, target)
    return loss + inmodal_weight * (images + texts) / 2


def text_views(texts: Sequence[str], alpha: float, rng: np.random.Generator) -> list[str]:
    """One EDA view of each text."""
    return [eda(str(t), rng, alpha) for t in texts]


def autoaugmented(
    images: torch.Tensor, transform: ImageTransform, rng: np.random.Generator
) -> torch.Tensor:
    """torchvision's AutoAugment (ImageNet policy) of each model-ready image: un-normalised to
    8-bit pixels, augmented, normalised again. Its draws come from a torch generator seeded
    from ``rng``, so the run's own random state is untouched."""
    transforms = require("torchvision.transforms", "vision")
    augment = transforms.AutoAugment()
    mean = torch.tensor(transform.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(transform.std, device=images.device).view(1, -1, 1, 1)
    pixels = ((images.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only (torch.manual_seed would reseed CUDA's too, which fork_rng
        # with devices=[] does not restore); AutoAugment draws on the CPU
        torch.random.default_generator.manual_seed(int(rng.integers(2**63)))
        out = torch.stack([augment(p) for p in pixels])
    return ((out.float() / 255 - mean) / std).to(images.dtype)


def input_views(
    inputs: Any, kind: str, transform: ImageTransform | None, cfg: CleanCLIPOptions, rng
) -> Any:
    """The augmented view of a batch's model-ready inputs: EDA of texts (``kind`` "text"),
    AutoAugment of decoded image files ("files"), or shift and recolouring of image arrays."""
    if kind == "text":
        return text_views(inputs, cfg.eda_alpha, rng)
    if kind == "files" and transform is not None:
        return autoaugmented(inputs, transform, rng)
    return strong_images(shifted(inputs, cfg.shift, False, rng), rng, cutout=False)


def paired_texts(
    index: np.ndarray,
    labels: np.ndarray,
    captions: np.ndarray | None,
    prompts: list[list[str]],
    generator: torch.Generator,
) -> list[str]:
    """Each example's text: its caption, or (none, or an empty one) its class prompt with a
    template drawn per example (``prompts[class][template]``)."""
    templates = torch.randint(len(prompts[0]), (len(index),), generator=generator).tolist()
    texts = [prompts[int(y)][k] for y, k in zip(labels, templates, strict=True)]
    if captions is None:
        return texts
    return [str(captions[i]) or p for i, p in zip(index, texts, strict=True)]


def input_kind(inputs: Any) -> str:
    """How a training split's inputs are augmented: "files", "arrays" or "text"."""
    if isinstance(inputs, ImageFiles):
        return "files"
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        return "arrays"
    return "text"


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on parameters of two or more dimensions, none on the rest
    (normalisation weights, biases, the temperature)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def clean_context(ctx: RecipeContext) -> RecipeContext:
    """``ctx`` whose training split leaves out the examples ``data.poison`` poisoned (its
    ``poisoned`` mask, which every subset of the split keeps in step)."""
    train = ctx.benchmark.train
    if train.poisoned is None:
        raise ConfigError(f"recipe '{ctx.name}': data: clean needs poisoned data (data.poison)")
    kept = np.flatnonzero(~train.poisoned)
    benchmark = dataclasses.replace(ctx.benchmark, train=train.subset(kept))
    return dataclasses.replace(ctx, benchmark=benchmark)


@FINETUNE.register("cleanclip", options=CleanCLIPOptions, kinds=("text_side",), fast=FAST)
def cleanclip(ctx: RecipeContext, cfg: CleanCLIPOptions) -> Iterator[Predictor]:
    """Contrastive fine-tuning on paired texts plus in-modal self-supervision on augmented views."""
    ctx.require_text_side("contrasts inputs with their captions or class prompts")
    ctx = clean_context(ctx) if cfg.data == "clean" else ctx
    start, scale = ctx.trainable_copy(), ctx.backbone.logit_scale
    if cfg.init is not None:  # continue from an earlier entry's model (featurizer and scale)
        earlier = ctx.predictor(cfg.init)
        if not isinstance(earlier.model, Classifier):
            raise ConfigError(f"cleanclip.init '{cfg.init}' is not a fine-tuned classifier")
        start = copy.deepcopy(earlier.model.featurizer).to(ctx.device)
        scale = float(earlier.params.get("logit_scale", scale))
    model = FLYPModel(start, scale)
    encode_text = Backbone.text_side(model.featurizer)
    prompts = prompt_texts(ctx.benchmark.class_names, ctx.prompts)  # [class][template]
    train = ctx.benchmark.train
    kind, transform = input_kind(train.inputs), input_transform(model.featurizer)
    generator = torch.Generator().manual_seed(ctx.seed)
    rng = np.random.default_rng([ctx.seed, 2303_03323])
    bound = math.log(cfg.max_logit_scale) if cfg.max_logit_scale is not None else None

    def clamp_scale() -> None:
        if bound is not None:
            with torch.no_grad():
                model.log_scale.clamp_(0.0, bound)

    def loss_fn(batch: Batch) -> torch.Tensor:
        clamp_scale()  # after the previous step's update, as the reference after each step
        n = len(batch.index)
        texts = paired_texts(
            batch.index, batch.labels.cpu().numpy(), train.captions, prompts, generator
        )
        inputs = batch.inputs
        if cfg.inmodal_weight == 0:
            image, text = model.featurizer(inputs), encode_distinct(encode_text, texts)
            return cleanclip_loss(image, text, image, text, model.log_scale, cfg.clip_weight, 0)
        views = input_views(inputs, kind, transform, cfg, rng)
        both = list(inputs) + views if kind == "text" else torch.cat([inputs, views])
        images = model.featurizer(both)
        embedded = encode_distinct(encode_text, texts + text_views(texts, cfg.eda_alpha, rng))
        return cleanclip_loss(
            images[:n],
            embedded[:n],
            images[n:],
            embedded[n:],
            model.log_scale,
            cfg.clip_weight,
            cfg.inmodal_weight,
        )

    def as_classifier() -> Classifier:
        """The fine-tuned featurizer with the zero-shot head of its current prompt side."""
        scale = float(model.log_scale.detach().exp())
        head = ctx.zero_shot_head(model.featurizer, scale=scale)
        return Classifier(model.featurizer, head.to(ctx.device))

    # The contrastive losses couple a batch's rows: never split across processes.
    result = ctx.train(
        model,
        loss_fn,
        cfg,
        classifier=as_classifier,
        splittable=False,
        stateful=[generator, rng],
        params=decay_groups(model, cfg.weight_decay),
    )
    clamp_scale()
    classifier = as_classifier()
    params = {
        "logit_scale": round(float(model.log_scale.detach().exp()), 4),
        "clip_weight": cfg.clip_weight,
        "inmodal_weight": cfg.inmodal_weight,
    }
    yield Predictor(ctx.name, "cleanclip", classifier, params=params, info=result.selection)
