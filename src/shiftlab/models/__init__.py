"""Backbones, classifiers and zero-shot heads; backbones register in ``BACKBONES`` on import."""

from shiftlab.models import (
    causal_lm,
    cnn,
    efficientnet_lite0,
    open_clip_backbone,
    timm_backbone,
)
from shiftlab.models.backbone import Backbone, load_backbone
from shiftlab.models.classifier import Classifier, Predictor, linear_head
from shiftlab.models.zero_shot import zero_shot_head

__all__ = [
    "Backbone",
    "Classifier",
    "Predictor",
    "causal_lm",
    "cnn",
    "efficientnet_lite0",
    "linear_head",
    "load_backbone",
    "open_clip_backbone",
    "timm_backbone",
    "zero_shot_head",
]
