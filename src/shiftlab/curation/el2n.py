"""EL2N: the L2 norm of each example's error vector, averaged over runs early in training.

Paul, Ganguli and Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early in
Training" (NeurIPS 2021, arXiv 2107.07075). Follows ``mansheej/data_diet``: ``data_diet/scores.py``
``get_lord_error_fn`` (lines 10-17, ``ord=2``): ``||softmax(f(x)) - onehot(y)||_2`` with the model
in test mode (``get_apply_fn_test``, ``train=False``); ``scripts/get_mean_score.py`` averages the
runs' scores. A high score marks a hard (or mislabelled) example. Defaults (10 heads, each
trained 20 epochs with the reference's early schedule) are in :mod:`shiftlab.curation.data_diet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.curation.data_diet import (
    DEFAULT_SEEDS,
    HeadTrainOptions,
    head_logits,
    linear_head_trainer,
)
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE
from shiftlab.typed import param


def el2n(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-example EL2N of fixed logits.

    Args:
        logits: (N, K) logits.
        labels: (N,) class indices.

    Returns:
        (N,) float64 ``||softmax(logits[i]) - onehot(labels[i])||_2``, in [0, sqrt(2)].
    """
    logits = np.asarray(
        logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64
    )
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if logits.ndim != 2 or labels.shape != (len(logits),):
        raise DataError(
            f"EL2N needs logits (N, K) and labels (N,), got {logits.shape}, {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise DataError(f"labels must be class indices in [0, {logits.shape[1]})")
    shifted = logits - logits.max(axis=1, keepdims=True)
    errors = np.exp(shifted)
    errors /= errors.sum(axis=1, keepdims=True)
    errors[np.arange(len(labels)), labels] -= 1.0
    return np.linalg.norm(errors, axis=1)


def el2n_scores(
    train_head: Callable[[int], nn.Module],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    batch_size: int = 4096,
) -> np.ndarray:
    """Mean EL2N over heads trained from different seeds.

    Args:
        train_head: ``train_head(seed)`` returns a head trained a few epochs from ``seed``
            (e.g. :func:`shiftlab.curation.data_diet.linear_head_trainer`).
        features: (N, D) cached features the heads take.
        labels: (N,) class indices.
        seeds: one run per seed (default 10, the reference's recommended minimum).
        batch_size: examples per forward pass.

    Returns:
        (N,) mean EL2N; higher is harder.
    """
    if len(seeds) == 0:
        raise ConfigError("EL2N needs at least one seed")
    if len(features) == 0:
        raise DataError("EL2N needs at least one example")
    total = np.zeros(len(features))
    for seed in seeds:
        total += el2n(head_logits(train_head(seed), features, batch_size=batch_size), labels)
    return total / len(seeds)


@dataclass
class EL2NOptions(HeadTrainOptions):
    """Heads trained early (the reference's schedule), averaged over runs."""

    runs: int = param(10, "heads averaged (data_diet README: at least 10 runs)", within="[1, inf)")


@CURATE.register("el2n", options=EL2NOptions, fast={"runs": 2, "epochs": 3})
def el2n_score(ctx: CurationContext, cfg: EL2NOptions) -> ScoreResult:
    """EL2N of linear heads on cached features, trained a few epochs, averaged over seeds."""
    features, labels = ctx.train_features(), ctx.train.labels
    k = ctx.benchmark.num_classes
    seeds = [ctx.seed + i for i in range(cfg.runs)]
    trainer = linear_head_trainer(features, labels, k, cfg=cfg, device=ctx.device)
    values = el2n_scores(trainer, features, labels, seeds=seeds)
    return ScoreResult(values, "EL2N (high: hard or mislabelled)", summary={"runs": cfg.runs})
