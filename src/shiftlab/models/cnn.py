"""A small residual CNN with batch normalisation, trained from scratch on grey images.

Stem (3x3 conv, 32) then three residual blocks (32, 64 with stride 2, 128 with stride 2), each
two 3x3 convolutions with BatchNorm and a shortcut, then global average pooling: 128-d
features, about 0.31M parameters. Its BatchNorm layers are what test-time adaptation adapts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from shiftlab.config.sections import BackboneConfig
from shiftlab.models.backbone import Backbone
from shiftlab.registry import BACKBONES


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus a (projected) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Images (B, C, H, W) -> features (B, 128)."""

    cache_tag = "small_resnet"

    def __init__(self, in_channels: int = 1, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w1, 3, 1, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU()
        )
        self.blocks = nn.Sequential(Block(w1, w1), Block(w1, w2, 2), Block(w2, w3, 2))
        self.dim = w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def hidden_layers(
        self, x: torch.Tensor, layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """The outputs of the stem and of each block, globally average-pooled: one (B, C)
        tensor per chosen layer (0: the stem, -1: the last block, which gives ``forward``'s
        features); default all four."""
        states = [self.stem(x)]
        for block in self.blocks:
            states.append(block(states[-1]))
        chosen = states if layers is None else [states[i] for i in layers]
        return [s.mean(dim=(2, 3)) for s in chosen]


@BACKBONES.register("small_cnn", kinds=("image_arrays",), fast={"input_shape": [1, 16, 16]})
def small_cnn(
    cfg: BackboneConfig, seed: int = 0, input_shape: tuple[int, ...] | None = None, **_: Any
) -> Backbone:
    """Small residual CNN with BatchNorm (0.31M parameters), random init, for small images."""
    torch.manual_seed(seed)
    channels = input_shape[0] if input_shape else 1
    return Backbone("small_cnn", SmallResNet(channels), "image", cfg.logit_scale or 1.0, False)
