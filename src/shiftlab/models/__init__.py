"""Backbones, classifiers and zero-shot heads; backbones register in ``BACKBONES`` on import."""

from shiftlab.models.backbone import Backbone, backbone_kinds, load_backbone
from shiftlab.models.classifier import Classifier, Predictor, linear_head
from shiftlab.models.zero_shot import zero_shot_head

__all__ = [
    "Backbone",
    "Classifier",
    "Predictor",
    "backbone_kinds",
    "linear_head",
    "load_backbone",
    "zero_shot_head",
]
