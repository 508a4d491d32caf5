"""Zero-shot heads from class prompts, built as WiSE-FT builds them (arXiv 2109.01903).

For each class, every template is filled with the class name and encoded; the embeddings are
L2-normalised, averaged, normalised again, and scaled by the logit scale. The bias is zero, and
features reaching the head are L2-normalised by the featurizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.models.classifier import linear_head


def prompt_texts(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """For each class, its prompts: every template filled with the class name."""
    return [[t.format(class_name=name) for t in templates] for name in class_names]


def class_embeddings(
    encode: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
) -> torch.Tensor:
    """Normalised mean of normalised prompt embeddings, shape (K, D). Differentiable."""
    texts = prompt_texts(class_names, templates)
    flat = encode([t for per_class in texts for t in per_class])
    per_class = F.normalize(flat, dim=-1).view(len(class_names), len(templates), -1)
    return F.normalize(per_class.mean(dim=1), dim=-1)


@torch.no_grad()
def zero_shot_head(
    encode: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    logit_scale: float,
) -> nn.Linear:
    """A linear head whose class weights are ``logit_scale`` times the class embeddings."""
    weights = class_embeddings(encode, class_names, templates).float().cpu()
    return linear_head(weights * logit_scale)
