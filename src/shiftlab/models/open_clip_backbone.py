"""Two-tower image-text backbones from open_clip: ``open_clip:<architecture>``.

The featurizer holds both towers: ``forward(images)`` gives L2-normalised image embeddings,
``encode_prompts(texts)`` L2-normalised text embeddings, so zero-shot heads are built from class
prompts exactly as WiSE-FT builds them (the normalised mean of normalised template embeddings,
times the model's logit scale) and FLYP trains both towers against class prompts. Inputs go
through open_clip's own preprocessing (``create_model_and_transforms``: its validation
transform, or with ``augment: true`` its training transform, ``RandomResizedCrop`` at scale 0.9
to 1 as in the FLYP and WiSE-FT references).

``pretrained:`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k``, ...: the weights download
on first use, as open_clip does), a local checkpoint file, or ``false`` for random weights.
``prompts: openai_imagenet`` in a run config uses CLIP's 80 ImageNet templates.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab import hub
from shiftlab._optional import require
from shiftlab.config.sections import BackboneConfig
from shiftlab.data.batches import ImageTransform
from shiftlab.errors import BackboneError
from shiftlab.models.backbone import Backbone
from shiftlab.models.text import SharesTokenizer
from shiftlab.registry import BACKBONES, closest


class CLIPFeaturizer(SharesTokenizer, nn.Module):
    """Both towers of an open_clip model; images in, normalised image embeddings out."""

    def __init__(self, model: nn.Module, tokenizer: Any, transform: ImageTransform, name: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.transform = transform
        self.cache_tag = f"open_clip:{name}:{transform.key}"

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.model.visual.output_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images), dim=-1)

    def encode_prompts(self, texts: list[str]) -> torch.Tensor:
        """Normalised text-tower embeddings (B, D) of ``texts``."""
        device = next(self.model.parameters()).device
        return F.normalize(self.model.encode_text(self.tokenizer(list(texts)).to(device)), dim=-1)


def clip_transform(model: nn.Module, preprocess_val: Any, preprocess_train: Any, augment: bool):
    """open_clip's transforms as an ImageTransform."""
    visual = model.visual
    size = visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size
    mean = getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
    std = getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
    key = f"open_clip:{size}:{tuple(mean)}:{tuple(std)}"
    return ImageTransform(
        size, mean, std, preprocess_val, preprocess_train if augment else None, key
    )


TINY_CLIP = "shiftlab-tiny-clip"


def tiny_clip(workdir: Path, **_: Any) -> dict[str, Any] | None:
    """Options of a 1-layer, 32-wide ViT + text tower (random weights), registered with
    open_clip by name: the conformance check's CLIP (None without open_clip)."""
    if importlib.util.find_spec("open_clip") is None:
        return None
    import open_clip

    vision = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16}
    text = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    config = {"embed_dim": 32, "vision_cfg": vision, "text_cfg": text}
    path = Path(workdir) / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return {"name": f"open_clip:{TINY_CLIP}", "pretrained": False, "input_shape": [3, 32, 32]}


@BACKBONES.register("open_clip", kinds=("image",), fast=tiny_clip)
def open_clip_model(cfg: BackboneConfig, **_: Any) -> Backbone:
    """An open_clip image-text model, ``open_clip:<arch>``: zero-shot heads and FLYP work."""
    open_clip = require("open_clip", "clip")
    _, _, arch = cfg.name.partition(":")
    known = open_clip.list_models()
    if arch not in known:
        hint = closest(arch, known)
        more = f"; did you mean 'open_clip:{hint}'?" if hint else ""
        raise BackboneError(f"open_clip has no architecture '{arch}'{more}")
    pretrained = None if cfg.pretrained is False else cfg.pretrained
    if pretrained is True:
        raise BackboneError(
            f"backbone.pretrained for open_clip:{arch} must name weights: an open_clip tag "
            f"(open_clip.list_pretrained_tags_by_model('{arch}')), a checkpoint file, or false"
        )

    def create() -> tuple[Any, Any, Any]:
        return open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, force_image_size=cfg.image_size
        )

    def unavailable(reason: str) -> str:
        return (
            f"cannot fetch open_clip:{arch} weights '{pretrained}': not in the local cache, and "
            f"the hub cannot be reached ({reason}); set backbone.pretrained to a checkpoint "
            "file, or false for random weights"
        )

    tag = isinstance(pretrained, str) and not Path(pretrained).expanduser().is_file()
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag and pretrained not in tags and ("/" in str(pretrained) or Path(str(pretrained)).suffix):
        raise BackboneError(f"open_clip checkpoint file not found: {pretrained}")
    if tag and pretrained not in tags:
        hint = closest(str(pretrained), tags)
        more = f"; did you mean '{hint}'?" if hint else ""
        raise BackboneError(
            f"open_clip:{arch} has no pretrained weights '{pretrained}' and no such checkpoint "
            f"file exists{more} (tags: {', '.join(tags) or 'none'})"
        )
    try:
        model, train_pre, val_pre = hub.cache_first(create, unavailable) if tag else create()
    except BackboneError:
        raise
    except Exception as exc:  # unknown tag, failed download, unreadable checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"cannot load open_clip:{arch} with pretrained={pretrained}: {first}"
        ) from None
    transform = clip_transform(model, val_pre, train_pre, cfg.augment)
    featurizer = CLIPFeaturizer(model.eval(), open_clip.get_tokenizer(arch), transform, arch)
    scale = cfg.logit_scale or float(model.logit_scale.detach().exp())
    return Backbone(cfg.name, featurizer, "image", scale, True)
