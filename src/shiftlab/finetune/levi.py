"""LEVI, Layer-wise Ensemble of different VIews (Roh, Liu, Gui, Yuan, Tang, Whang, Liu, Bi,
Hong, Chi, Zhao, "LEVI: Generalizable Fine-tuning via Layer-wise Ensemble of Different Views",
ICML 2024, arXiv 2402.04644).

The pretrained model stays frozen and is never copied: it only supplies its intermediate
representations h_l(x) at a few chosen layers. A small model trained from scratch on the task
supplies a second view s(x). One adapting layer per chosen layer, A_l, reads
``concat(h_l(x), s(x))`` and predicts the classes; the small model and the adapting layers are
trained jointly on one shared loss over all adapting layers, and the prediction is the ensemble
of the adapting layers. Those are the paper's.

No code was released; every other choice is this module's:

- **Layers** (``layers``): indices into what the backbone exposes. Text encoders: the Hugging
  Face ``hidden_states`` (0 the embeddings, 1 the first layer, -1 the last), each mean-pooled
  over the attention mask and L2-normalised as the encoder treats its last layer
  (:meth:`TextEncoder.hidden_layers`). ``small_cnn``: the stem and its three blocks. timm and
  open_clip image models: the stages (timm's ``forward_intermediates``; open_clip's ViT blocks,
  class token left out). Image maps are globally average-pooled. Default (null): the last three
  the backbone has (all of them when it has fewer).
- **Small model**: for text, a hashed bag of word n-grams (lower-cased ``\\w+`` words, n up to
  ``ngrams``, CRC32 into ``buckets``), their embeddings summed and divided by the square root
  of their count (an ``EmbeddingBag``, TensorFlow's ``sqrtn`` combiner: a plain mean dilutes a
  word's gradient by the text's length), then a bias and a ReLU: the hidden layer of a
  one-hidden-layer MLP whose output layers are the adapting layers. For images, ``small_cnn``'s
  residual CNN, its widths ``hidden_dim`` / 4, / 2 and ``hidden_dim`` (128: ``small_cnn``
  itself), reading the images the backbone reads (its evaluation transform; ``backbone.augment``
  is not applied, since the pretrained views are cached unaugmented).
- **Adapting layers**: one ``Linear(d_l + hidden_dim, K)`` each, no hidden layer; each
  pretrained view is first standardised by one scalar mean and standard deviation of its
  training features (as ``linear_probe`` normalises), so one lr suits layers of any scale (an
  L2-normalised 384-d view barely moved at lr 1e-3 without it).
- **Loss**: the mean over adapting layers of each one's cross-entropy (the paper's shared loss,
  averaged rather than summed so the lr does not scale with the number of layers).
- **Prediction**: the mean of the adapting layers' logits. Being linear in the two views, it is
  kept as two linear read-outs (:class:`LEVI`): the pretrained layers' features through one
  head, the small model's through another, summed. So the evaluator scores it from cached
  features, and the pretrained layers are encoded once per split for training and evaluation
  alike.
- **Optimisation**: AdamW, lr 1e-3, weight decay 0.01, batch 64, 20 epochs, 10 warmup steps
  then cosine, gradients clipped to norm 1 (a from-scratch model and linear heads; no paper
  values are known). On sentiment sentences (ID amazon_cells, minilm) lr 3e-3 and 1e-2 fitted
  ID as well but lost OOD accuracy to the ID vocabulary of the bag of words.
- The backbone runs in eval mode under no gradient: its views are encoded once per split
  (feature cache) and never enter the optimiser. The predictor is not saved (a later job that
  needs it trains it again: the recipe is deterministic).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.data.batches import ImageTransform, channels_last, input_transform, iterate
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.cnn import SmallResNet
from shiftlab.models.combination import Combination
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions
from shiftlab.training.options import FAST
from shiftlab.typed import param

DEFAULT_LAYERS = 3  # with layers: null, the last this many layers the backbone has


@dataclass
class LEVIOptions(TrainOptions):
    """Which layers are read, the small model, and the optimisation of the trained parts (ours:
    the paper's values are not known)."""

    layers: list[int] | None = param(
        None,
        "backbone layers read (negative: from the last; text: hidden_states, 0 = embeddings); "
        f"null: the last {DEFAULT_LAYERS} (all when fewer)",
        within="(-inf, inf)",
        nonempty=True,
        unique=True,
    )
    hidden_dim: int = param(
        128,
        "width of the small model's view: the text MLP's hidden layer, the small CNN's last "
        "block (128: small_cnn)",
        within="[4, inf)",
    )
    buckets: int = param(
        32768, "text: hash buckets of the small model's bag of n-grams", within="[1, inf)"
    )
    ngrams: int = param(2, "text: word n-grams up to this n", within="[1, 5]")
    epochs: int = param(20, "passes over the ID training split (ours)", within="[1, inf)")
    lr: float = param(1e-3, "peak learning rate (ours: from-scratch parts)", within="(0, inf)")
    weight_decay: float = param(0.01, "AdamW weight decay (ours)", within="[0, inf)")
    batch_size: int = param(64, "examples per step (ours)", within="[1, inf)")
    warmup_steps: int = param(10, "linear warmup steps (ours)", within="[0, inf)")


# The small task-specific models ------------------------------------------------------------


WORD = re.compile(r"\w+")


class HashedBagOfWords(nn.Module):
    """Texts -> ReLU(sum of the hashed word n-grams' embeddings / sqrt(their count) + bias):
    (B, dim).

    The hidden layer of a one-hidden-layer MLP on a hashed bag of n-grams (CRC32, so the same in
    every process); an empty text gives ReLU(bias).
    """

    def __init__(self, buckets: int, dim: int, ngrams: int) -> None:
        super().__init__()
        self.buckets, self.ngrams, self.dim = int(buckets), int(ngrams), int(dim)
        self.cache_tag = f"levi:hashed_bag:ngrams={self.ngrams}"
        self.bag = nn.EmbeddingBag(self.buckets, self.dim, mode="sum")
        nn.init.normal_(self.bag.weight, std=0.1)
        self.bias = nn.Parameter(torch.zeros(self.dim))

    def hashes(self, text: str) -> list[int]:
        """The bucket of every word n-gram of ``text``."""
        words = WORD.findall(text.lower())
        grams = [
            " ".join(words[i : i + n])
            for n in range(1, self.ngrams + 1)
            for i in range(len(words) - n + 1)
        ]
        return [zlib.crc32(g.encode("utf-8")) % self.buckets for g in grams]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = self.bag.weight.device
        ids = [self.hashes(t) for t in texts]
        offsets = torch.tensor(np.cumsum([0] + [len(i) for i in ids[:-1]]), device=device)
        flat = torch.tensor([h for i in ids for h in i], dtype=torch.long, device=device)
        weights = torch.tensor(
            [len(i) ** -0.5 for i in ids for _ in i], dtype=self.bag.weight.dtype, device=device
        )
        return torch.relu(self.bag(flat, offsets, per_sample_weights=weights) + self.bias)


class SmallImageModel(nn.Module):
    """``small_cnn``'s residual CNN on the images the backbone reads (its transform)."""

    cache_tag = "levi:small_cnn"

    def __init__(self, channels: int, dim: int, transform: ImageTransform | None) -> None:
        super().__init__()
        self.net = SmallResNet(channels, (max(1, dim // 4), max(1, dim // 2), dim))
        self.dim = dim
        self.transform = transform

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


# The frozen backbone's views -------------------------------------------------------------


def pooled_layers(
    featurizer: nn.Module, inputs: Any, layers: Sequence[int] | None = None
) -> list[torch.Tensor]:
    """The backbone's chosen intermediate representations of a model-ready batch, pooled:
    one (B, d_l) tensor per layer, in the order asked (default every layer it exposes).

    Raises:
        ConfigError: the featurizer exposes no intermediate layers.
    """
    if callable(getattr(featurizer, "hidden_layers", None)):  # TextEncoder, small_cnn
        return featurizer.hidden_layers(inputs, layers)
    if isinstance(getattr(featurizer, "image", None), nn.Module):  # a LiT's locked image tower
        return pooled_layers(featurizer.image, inputs, layers)
    model = getattr(featurizer, "model", None)
    tower = getattr(model, "visual", model)  # open_clip's image tower, or the timm model
    if callable(getattr(tower, "forward_intermediates", None)):
        asked = None if layers is None else sorted(set(layers))
        out = tower.forward_intermediates(inputs, indices=asked, intermediates_only=True)
        if isinstance(out, dict):  # open_clip
            out = out["image_intermediates"]
        pooled = [o.float().mean(dim=(2, 3)) for o in out]  # NCHW maps
        if layers is None:
            return pooled
        return [pooled[asked.index(i)] for i in layers]
    raise ConfigError(
        f"recipe levi reads intermediate layers, which a {type(featurizer).__name__} backbone "
        "does not expose (text encoders, small_cnn, timm, open_clip and lit image models do)"
    )


class LayerViews(nn.Module):
    """The frozen backbone (shared, never copied or trained) -> its chosen layers, pooled and
    concatenated: (B, sum of ``dims``)."""

    def __init__(self, featurizer: nn.Module, layers: Sequence[int], dims: Sequence[int]) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.layers, self.dims = tuple(int(i) for i in layers), tuple(int(d) for d in dims)
        self.dim = sum(self.dims)
        self.transform = input_transform(featurizer)
        self.channels_last = channels_last(featurizer)
        inner = getattr(featurizer, "cache_tag", type(featurizer).__name__)
        self.cache_tag = f"levi:layers={list(self.layers)}:{inner}"
        self.train(False)

    def train(self, mode: bool = True) -> LayerViews:
        """Set this module's mode; the frozen backbone stays in eval mode whatever it is."""
        self.training = mode
        self.featurizer.eval()
        return self

    def order(self, inputs: Any) -> np.ndarray:
        """The backbone's encoding order (texts of similar length together)."""
        if hasattr(self.featurizer, "order"):
            return self.featurizer.order(inputs)
        return np.arange(len(inputs))

    def forward(self, inputs: Any) -> torch.Tensor:
        return torch.cat(pooled_layers(self.featurizer, inputs, self.layers), dim=1)


# The ensemble ------------------------------------------------------------------------------


class Adapter(nn.Module):
    """An adapting layer: ``Linear(d_l + d_s, K)`` on ``concat(h_l, s)``, the pretrained view
    standardised first by one scalar mean and standard deviation of its training features
    (as :mod:`shiftlab.finetune.linear_probe` normalises), so one lr suits every layer."""

    def __init__(self, dim: int, small_dim: int, classes: int, mean: float, std: float) -> None:
        super().__init__()
        self.dim = int(dim)
        self.linear = nn.Linear(self.dim + small_dim, classes)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, s = x[:, : self.dim], x[:, self.dim :]
        return self.linear(torch.cat([(h - self.mean) / self.std, s], dim=1))


def layer_logits(
    adapters: nn.ModuleList, views: Sequence[torch.Tensor], small: torch.Tensor
) -> torch.Tensor:
    """Each adapting layer's logits on ``concat(h_l, s)``: (L, B, K)."""
    return torch.stack(
        [a(torch.cat([h, small], dim=1)) for a, h in zip(adapters, views, strict=True)]
    )


def merged_heads(adapters: nn.ModuleList) -> tuple[nn.Linear, nn.Linear]:
    """The mean of the adapting layers' logits as two linear heads, on the raw concatenated
    pretrained views and on the small model's view (their logits sum to it)."""
    count = len(adapters)
    weights = [a.linear.weight.detach() for a in adapters]
    pretrained = (
        torch.cat([w[:, : a.dim] / a.std for w, a in zip(weights, adapters, strict=True)], 1)
        / count
    )
    small = torch.stack([w[:, a.dim :] for w, a in zip(weights, adapters, strict=True)]).mean(0)
    bias = torch.stack(
        [
            a.linear.bias.detach() - w[:, : a.dim].sum(1) * a.mean / a.std
            for w, a in zip(weights, adapters, strict=True)
        ]
    ).mean(0)
    heads = nn.Linear(pretrained.shape[1], len(bias)), nn.Linear(small.shape[1], len(bias))
    with torch.no_grad():
        heads[0].weight.copy_(pretrained)
        heads[0].bias.copy_(bias)
        heads[1].weight.copy_(small)
        heads[1].bias.zero_()
    for head in heads:
        head.requires_grad_(False).to(weights[0].device)
    return heads


class LEVI(Combination):
    """Logits = mean over the chosen layers l of ``adapters[l](concat(h_l(x), small(x)))``.

    Held as two members, the pretrained views and the small model each through the linear head
    that part of the mean amounts to (:func:`merged_heads`), so the evaluator scores it from
    cached features; ``adapters`` keeps the adapting layers as trained.
    """

    def __init__(self, views: LayerViews, small: nn.Module, adapters: nn.ModuleList) -> None:
        pretrained_head, small_head = merged_heads(adapters)
        super().__init__([Classifier(views, pretrained_head), Classifier(small, small_head)])
        self.adapters = adapters
        self.transform = views.transform

    @property
    def views(self) -> LayerViews:
        """The frozen backbone's chosen layers."""
        return self.members[0].featurizer

    @property
    def small(self) -> nn.Module:
        """The small model trained from scratch."""
        return self.members[1].featurizer

    def combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        return logits[0] + logits[1]

    def layer_logits(self, inputs: Any) -> torch.Tensor:
        """Each adapting layer's logits (L, B, K) on a model-ready batch."""
        views = torch.split(self.views(inputs), self.views.dims, dim=1)
        return layer_logits(self.adapters, views, self.small(inputs))


class Trained(nn.Module):
    """What trains: the small model and the adapting layers (the backbone is not in it)."""

    def __init__(self, small: nn.Module, adapters: nn.ModuleList) -> None:
        super().__init__()
        self.small, self.adapters = small, adapters


# The recipe --------------------------------------------------------------------------------


def model_ready(ctx: RecipeContext, featurizer: nn.Module) -> Any:
    """One training input as the backbone reads it (a list of one text, or a (1, C, H, W)
    image tensor)."""
    train = ctx.benchmark.train
    return next(
        iter(
            iterate(
                train.inputs,
                [np.arange(1)],
                transform=input_transform(featurizer),
                device=ctx.device,
                last=channels_last(featurizer),
            )
        )
    )


def chosen_layers(ctx: RecipeContext, layers: list[int] | None, sample: Any) -> LayerViews:
    """The backbone's layers to read, resolved against what it exposes, and their widths.

    Raises:
        ConfigError: a layer the backbone does not have, or one named twice.
    """
    featurizer = ctx.backbone.featurizer
    was_training = featurizer.training
    featurizer.eval()
    try:
        with torch.inference_mode():
            every = pooled_layers(featurizer, sample)
    finally:
        featurizer.train(was_training)
    count = len(every)
    asked = layers if layers is not None else list(range(-min(DEFAULT_LAYERS, count), 0))
    bad = [i for i in asked if not -count <= i < count]
    if bad:
        raise ConfigError(
            f"recipe '{ctx.name}' (levi): backbone '{ctx.backbone.name}' has layers 0 to "
            f"{count - 1} (or -{count} to -1), not {bad[0]}"
        )
    resolved = [i % count for i in asked]
    if len(set(resolved)) != len(resolved):
        raise ConfigError(
            f"recipe '{ctx.name}' (levi): layers {asked} name a layer twice (of {count})"
        )
    return LayerViews(featurizer, resolved, [every[i].shape[1] for i in resolved])


def small_model(ctx: RecipeContext, cfg: LEVIOptions, sample: Any) -> nn.Module:
    """The task-specific model, freshly initialised: a hashed bag-of-n-grams MLP for texts,
    a small residual CNN for images."""
    if isinstance(sample, list):
        return HashedBagOfWords(cfg.buckets, cfg.hidden_dim, cfg.ngrams)
    transform = input_transform(ctx.backbone.featurizer)
    if transform is not None:  # the evaluation transform only: the views are unaugmented
        transform = ImageTransform(
            transform.size, transform.mean, transform.std, transform.eval_pil, None, transform.key
        )
    return SmallImageModel(int(sample.shape[1]), cfg.hidden_dim, transform)


@FINETUNE.register(
    "levi",
    options=LEVIOptions,
    kinds=("encoder",),
    fast={**FAST, "hidden_dim": 8, "buckets": 256},
)
def levi(ctx: RecipeContext, cfg: LEVIOptions) -> Iterator[Predictor]:
    """Ensemble of adapting layers on frozen intermediate layers plus a small from-scratch model."""
    sample = model_ready(ctx, ctx.backbone.featurizer)
    views = chosen_layers(ctx, cfg.layers, sample)
    torch.manual_seed(ctx.seed)
    small = small_model(ctx, cfg, sample)
    k = ctx.benchmark.num_classes
    features = ctx.features(ctx.benchmark.train, views).to(ctx.device)
    train_views = torch.split(features, views.dims, dim=1)
    adapters = nn.ModuleList(
        Adapter(d, cfg.hidden_dim, k, float(v.mean()), float(v.std()) or 1.0)
        for d, v in zip(views.dims, train_views, strict=True)
    )
    trained = Trained(small, adapters).to(ctx.device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        index = torch.as_tensor(batch.index, device=features.device)
        logits = layer_logits(adapters, [v[index] for v in train_views], small(batch.inputs))
        return F.cross_entropy(logits.flatten(0, 1), batch.labels.repeat(len(adapters)))

    result = ctx.train(
        trained,
        loss_fn,
        cfg,
        classifier=lambda: LEVI(views, small, adapters),
        transform=getattr(small, "transform", None),
    )
    model = LEVI(views, small, adapters).eval()
    params = {"layers": list(views.layers)}
    yield Predictor(ctx.name, "levi", model, params=params, save=False, info=result.selection)
