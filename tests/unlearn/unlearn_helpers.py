"""Tiny models and data for the unlearning tests (from :mod:`shiftlab.testing`: an MLP
classifier on random features and a 2-layer random Llama with a character tokenizer)."""

from __future__ import annotations

import torch

from shiftlab.testing import (
    feature_data,
    qa_data,
    same_weights,
    tiny_causal_lm,
    tiny_classifier,
    weights,
)

DEVICE = torch.device("cpu")

__all__ = [
    "DEVICE",
    "feature_data",
    "qa_data",
    "same_weights",
    "tiny_causal_lm",
    "tiny_classifier",
    "weights",
]
