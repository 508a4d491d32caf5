"""Planted label noise, to measure how well label-issue detectors find it.

The exact-count protocol of Toneva et al. (ICLR 2019, arXiv 1812.05159), ``mtoneva/
example_forgetting`` ``run_cifar.py`` (``--noise_percent_labels``): a fixed number of examples,
drawn uniformly without replacement, each relabelled uniformly among the other classes
("symmetric"). "pair" flips class k to (k + 1) mod K, the pair-flip noise of Co-teaching (Han et
al., NeurIPS 2018, arXiv 1804.06872; ``bhanML/Co-teaching`` ``data/utils.py``
``noisify_pairflip``), here on exactly ``round(rate * N)`` examples rather than each example
independently with probability ``rate``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from shiftlab.errors import ConfigError, DataError


def inject_label_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    rate: float,
    kind: Literal["symmetric", "pair"] = "symmetric",
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate * N)`` labels (Python's ``round``: halves to even).

    Args:
        labels: (N,) true class indices in [0, num_classes).
        num_classes: K >= 2.
        rate: fraction of examples flipped, in [0, 1].
        kind: "symmetric" (new label uniform over the K - 1 other classes) or "pair"
            (k -> (k + 1) mod K).
        seed: seeds which examples flip and to what.

    Returns:
        ``(noisy, flipped)``: (N,) int64 noisy labels and (N,) bool mask of the flipped
        examples; ``noisy[flipped] != labels[flipped]`` and ``noisy[~flipped] == labels[~flipped]``.
    """
    labels = np.asarray(labels)
    if num_classes < 2:
        raise ConfigError(f"label noise needs at least 2 classes, got {num_classes}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"label noise rate must be in [0, 1], got {rate}")
    if kind not in ("symmetric", "pair"):
        raise ConfigError(f"label noise kind must be 'symmetric' or 'pair', got {kind!r}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must be class indices in [0, {num_classes})")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    shift = rng.integers(1, num_classes, size=len(chosen)) if kind == "symmetric" else 1
    noisy = labels.astype(np.int64)
    noisy[chosen] = (noisy[chosen] + shift) % num_classes
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[chosen] = True
    return noisy, flipped
