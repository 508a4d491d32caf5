"""Score a predictor on every evaluation split and emit records (see DESIGN.md, Records)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from shiftlab.data.benchmark import Split
from shiftlab.evaluate.metrics import classification_metrics
from shiftlab.features import FeatureCache
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.combination import Combination
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.predictions import Scored


def model_logits(
    model: torch.nn.Module, split: Split, cache: FeatureCache, fingerprint: str | None = None
) -> torch.Tensor:
    """Logits (N, K) of ``model`` on ``split`` from cached features, never re-encoding.

    A Classifier is its cached features through its head; a Combination combines its members'
    logits, each computed the same way.
    """
    if isinstance(model, Combination):
        return model.combine([model_logits(m, split, cache) for m in model.members])
    if not isinstance(model, Classifier):
        raise TypeError(f"cannot score a {type(model).__name__}: not a Classifier or Combination")
    features = cache.get(model.featurizer, split, fingerprint)
    head = model.head
    return F.linear(features, head.weight.detach().float().cpu(), head.bias.detach().float().cpu())


def predictor_logits(
    predictor: Predictor, split: Split, cache: FeatureCache, fingerprint: str | None = None
) -> torch.Tensor:
    """Logits (N, K) of ``predictor`` on ``split``."""
    return model_logits(predictor.model, split, cache, fingerprint)


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
        classification_metrics(logits, split.eval_labels, split.groups, group_names=group_names)
    )
    if split.true_labels is not None:
        record["clean_labels"] = True  # scored against the true labels, not the given noisy ones
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
) -> list[Scored]:
    """The record of ``predictor`` on each split, in order, with the logits behind it."""
    model = predictor.model
    fingerprint = weights_fingerprint(model.featurizer) if isinstance(model, Classifier) else None
    scored = []
    for split in splits:
        logits = predictor_logits(predictor, split, cache, fingerprint)
        record = make_record(predictor, split, logits, seed=seed, group_names=group_names)
        scored.append(Scored(record, logits, split))
    return scored
