"""Score a predictor on every evaluation split and emit records (see docs/design.md, Records)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab import faults
from shiftlab.data.benchmark import Split
from shiftlab.evaluate.generation import exact_match, rouge_l
from shiftlab.evaluate.intervals import bootstrap_seed, mean_interval, metric_intervals
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
    if getattr(model, "direct_logits", False):  # its outputs are logits (a language model)
        return cache.get(model, split, fingerprint)
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
    """One record: who predicted, on what, every metric, and ``ci``: each metric's 95%
    percentile bootstrap interval over the split's examples (1,000 resamples seeded by the run
    seed and the split name, so every model on a split shares its resampled examples)."""
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
    record["ci"] = metric_intervals(
        logits, split.eval_labels, split.groups, seed=bootstrap_seed(seed, split.name)
    )
    if "attack_class" in split.info:  # a triggered split: the backdoor's success rate
        hits = logits.argmax(1).cpu().numpy() == split.info["attack_class"]
        record["asr"] = float(hits.mean())
        record["ci"]["asr"] = mean_interval(hits.astype(float), bootstrap_seed(seed, split.name))
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
    fingerprint = None
    if isinstance(model, Classifier):
        fingerprint = weights_fingerprint(model.featurizer)
    elif getattr(model, "direct_logits", False):
        fingerprint = weights_fingerprint(model)
    scored = []
    for split in splits:
        faults.point("evaluate")
        if split.info.get("generation"):  # answered by greedy decoding, not scored by logits
            scored.append(generation_scored(predictor, split, seed=seed))
            continue
        logits = predictor_logits(predictor, split, cache, fingerprint)
        record = make_record(predictor, split, logits, seed=seed, group_names=group_names)
        scored.append(Scored(record, logits, split))
    return scored


def generation_scored(predictor: Predictor, split: Split, *, seed: int) -> Scored:
    """The record of a generation split: greedy answers scored by exact match and ROUGE-L F1
    against the reference answers (no logits)."""
    outputs = predictor.model.generate(split.inputs, max_new_tokens=split.info["max_new_tokens"])
    answers = [item.answer for item in split.inputs]
    record: dict[str, Any] = {
        "model": predictor.name,
        "recipe": predictor.recipe,
        "params": dict(predictor.params),
        "adapter": None,
        "split": split.name,
        "role": split.role,
        "n": len(split),
        "exact_match": float(
            np.mean([exact_match(o, a) for o, a in zip(outputs, answers, strict=True)])
        ),
        "rouge_l": float(np.mean([rouge_l(o, a) for o, a in zip(outputs, answers, strict=True)])),
        "seed": seed,
    }
    record.update(split.info)
    record.update(predictor.info)
    return Scored(record, torch.zeros(len(split), 0), split, outputs)
