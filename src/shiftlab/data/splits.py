"""Seeded, stratified subsampling and partitioning of index sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder)."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    remainder = total - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def stratified_subsample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` examples whose class proportions match ``labels``'s, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    keep = _allocate(size, counts.astype(float))
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, keep, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def stratified_partition(
    labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Partition indices into parts of the given fractions, each stratified by label.

    Within each class, examples are shuffled and cut at the fraction boundaries, so every
    part keeps the class proportions (up to rounding). Fractions may sum to less than one.
    """
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(np.cumsum([0.0, *fractions]) * len(members)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(members[bounds[i] : bounds[i + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]
