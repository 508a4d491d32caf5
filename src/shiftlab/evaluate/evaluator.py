"""Score a predictor on every evaluation split and emit records (see DESIGN.md, Records)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from shiftlab.data.benchmark import Split
from shiftlab.evaluate.metrics import classification_metrics
from shiftlab.features import FeatureCache
from shiftlab.models.classifier import Predictor
from shiftlab.models.fingerprint import weights_fingerprint


def predictor_logits(
    predictor: Predictor, split: Split, cache: FeatureCache, fingerprint: str | None = None
) -> torch.Tensor:
    """Logits (N, K) of ``predictor`` on ``split``: cached features through its head."""
    features = cache.get(predictor.model.featurizer, split, fingerprint)
    head = predictor.model.head
    return F.linear(features, head.weight.detach().float().cpu(), head.bias.detach().float().cpu())


def make_record(
    predictor: Predictor,
    split: Split,
    logits: torch.Tensor,
    *,
    seed: int,
    adapter: str | None = None,
    group_names: list[str] | None = None,
) -> dict[str, Any]:
    """One record: who predicted, on what, and every metric."""
    record: dict[str, Any] = {
        "model": predictor.name,
        "recipe": predictor.recipe,
        "params": dict(predictor.params),
        "adapter": adapter,
        "split": split.name,
        "role": split.role,
        "n": len(split),
    }
    record.update(
        classification_metrics(logits, split.labels, split.groups, group_names=group_names)
    )
    record["seed"] = seed
    record.update(split.info)
    record.update(predictor.info)
    return record


def evaluate_predictor(
    predictor: Predictor,
    splits: list[Split],
    cache: FeatureCache,
    *,
    seed: int,
    group_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``predictor`` on each split, in order."""
    fingerprint = weights_fingerprint(predictor.model.featurizer)
    return [
        make_record(
            predictor,
            split,
            predictor_logits(predictor, split, cache, fingerprint),
            seed=seed,
            group_names=group_names,
        )
        for split in splits
    ]
