"""Image backbones from timm: ``timm:<model name>``, any of timm's architectures.

The featurizer is the timm model without its classifier (``num_classes=0``: pooled features).
Inputs go through timm's own preprocessing, resolved from the model's pretrained config
(``resolve_data_config`` / ``create_transform``), at ``backbone.image_size`` when set; with
``backbone.augment: true`` training uses timm's training transform (random resized crop, flip,
colour jitter). ``pretrained: true`` downloads timm's weights on first use (from the Hugging
Face hub, as timm does), ``false`` starts from random weights, and a path loads a local weights
file (a state dict, ``.pth`` or ``.safetensors``; a classifier in it is ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from shiftlab import hub
from shiftlab._optional import require
from shiftlab.config.sections import BackboneConfig
from shiftlab.data.batches import ImageTransform
from shiftlab.errors import BackboneError
from shiftlab.models.backbone import Backbone
from shiftlab.registry import BACKBONES, closest


class TimmFeaturizer(nn.Module):
    """Images (B, 3, S, S), normalised by ``transform`` -> pooled features (B, D)."""

    def __init__(
        self, model: nn.Module, transform: ImageTransform, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.transform = transform
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.cache_tag = f"timm:{type(model).__name__}:{transform.key}"

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self.model.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def image_transform(model: nn.Module, size: int | None, augment: bool) -> ImageTransform:
    """timm's evaluation (and, with ``augment``, training) transform for ``model``."""
    timm_data = require("timm.data", "vision")
    overrides = {"input_size": (3, size, size)} if size else {}
    cfg = timm_data.resolve_data_config(overrides, model=model)
    eval_pil = timm_data.create_transform(**cfg, is_training=False)
    train_pil = timm_data.create_transform(**cfg, is_training=True) if augment else None
    key = f"timm:{cfg['input_size']}:{cfg['interpolation']}:{cfg['crop_pct']}:{cfg['mean']}"
    return ImageTransform(cfg["input_size"][-1], cfg["mean"], cfg["std"], eval_pil, train_pil, key)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a (weights-only) torch file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackboneError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneError(f"{path} does not hold a state dict")
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` strictly, ignoring classifier weights the model lacks."""
    own = model.state_dict()
    kept = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(kept))
    if missing:
        raise BackboneError(
            f"{where} lacks {len(missing)} of the model's weights (e.g. {missing[0]}); "
            "is it a checkpoint of this architecture?"
        )
    try:
        model.load_state_dict(kept, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise BackboneError(f"{where} does not fit the model: {first}") from None


def create_timm(name: str, pretrained: bool | str, num_classes: int = 0) -> nn.Module:
    """A timm model by name, with timm's weights (``True``), random ones or a weights file.

    Raises:
        BackboneError: unknown name (with the closest of timm's), unreadable weights, or a
            download that failed.
    """
    timm = require("timm", "vision")
    if not timm.is_model(name):
        hint = closest(name, timm.list_models())
        more = f"; did you mean 'timm:{hint}'?" if hint else ""
        raise BackboneError(f"timm has no model '{name}'{more} (shiftlab list backbones)")

    def create() -> nn.Module:
        return timm.create_model(name, pretrained=pretrained is True, num_classes=num_classes)

    def unavailable(reason: str) -> str:
        return (
            f"cannot fetch timm's pretrained weights for '{name}': not in the Hugging Face "
            f"cache, and the hub cannot be reached ({reason}); set backbone.pretrained to a "
            "local weights file, or false for random weights"
        )

    try:
        model = hub.cache_first(create, unavailable) if pretrained is True else create()
    except BackboneError:
        raise
    except Exception as exc:  # downloads fail in many ways (no network, no hub access)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"cannot fetch timm's pretrained weights for '{name}' ({first}); set "
            "backbone.pretrained to a local weights file, or false for random weights"
        ) from None
    if isinstance(pretrained, str):
        load_weights(model, read_state_dict(pretrained), f"weights file {pretrained}")
    return model.eval()


def timm_backbone(name: str, model: nn.Module, cfg: BackboneConfig) -> Backbone:
    """Wrap a timm model (its classifier removed) as a Backbone with timm's transforms."""
    model.reset_classifier(0)
    transform = image_transform(model, cfg.image_size, cfg.augment)
    featurizer = TimmFeaturizer(model, transform, cfg.channels_last)
    return Backbone(name, featurizer, "image", cfg.logit_scale or 1.0, False)


@BACKBONES.register(
    "timm",
    kinds=("image",),
    fast={"name": "timm:test_efficientnet", "pretrained": False, "image_size": 32},
)
def timm_model(cfg: BackboneConfig, **_: Any) -> Backbone:
    """Any timm image model, ``timm:<name>``; pretrained weights, random, or a local file."""
    _, _, name = cfg.name.partition(":")
    if not name:
        raise BackboneError("backbone 'timm' needs a model name: timm:<name>, e.g. timm:resnet18")
    return timm_backbone(cfg.name, create_timm(name, cfg.pretrained), cfg)
