"""Synthetic label noise with known truth, on any dataset: ``data.label_noise``.

Exactly ``round(rate * N)`` examples of each ID domain (after its size cap) get a wrong label,
chosen uniformly with a seeded generator: ``symmetric`` noise draws the new label uniformly from
the other classes, ``pair`` noise maps class k to k + 1 (mod K), the two standard models of
the noisy-label literature (e.g. Han et al., NeurIPS 2018, arXiv 1804.06872). The clean labels
are kept as the examples' true labels, so models are scored against them and curation is judged
against the exact flips.
"""

from __future__ import annotations

import numpy as np

from shiftlab.errors import ConfigError


def inject_label_noise(
    labels: np.ndarray, num_classes: int, *, rate: float, kind: str, seed: int | tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) with exactly ``round(rate * N)`` of them made wrong, and the flipped mask."""
    if num_classes < 2:
        raise ConfigError("label noise needs at least two classes")
    rng = np.random.default_rng(seed)
    n = len(labels)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(rate * n), replace=False)] = True
    noisy = labels.copy()
    if kind == "pair":
        noisy[flipped] = (labels[flipped] + 1) % num_classes
    else:  # a uniform draw among the K - 1 other classes
        shift = rng.integers(1, num_classes, size=int(flipped.sum()))
        noisy[flipped] = (labels[flipped] + shift) % num_classes
    return noisy, flipped
