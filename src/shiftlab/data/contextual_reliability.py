"""Contextual reliability: a synthetic image benchmark where a feature is reliable in one context
and spurious in another (after Ghosal, Setlur, Brown, Dragan, Raghunathan, "Contextual
Reliability: When Different Features Matter in Different Contexts", ICML 2023, arXiv 2307.10026;
the construction is this module's).

Each image is (3, size, size), one feature per channel, plus pixel noise:

- ``core`` (channel 0): a vertical bar for class ``vertical``, a horizontal bar for
  ``horizontal``, drawn the other way round with probability ``core_noise``: it predicts the
  label everywhere, imperfectly;
- ``patch`` (channel 1): a bright square in the corner, on for ``vertical`` when the patch
  agrees with the label;
- ``context`` (channel 2): a frame around the image, present in half of the images.

In the framed context the patch always agrees with the label: it is a reliable feature there.
Without the frame it agrees with probability ``agreement`` in the ``train`` domain and
``1 - agreement`` in ``flipped``: a spurious feature that reverses under shift. A model that
reads the patch everywhere fails the unframed half of ``flipped``; one that never reads it
loses what it says in the framed half; a model that reads it only in the frame does best.

Annotations: a share ``annotated`` of ``train`` (none elsewhere) carries the attribute
``reliable``, naming the regions reliable for that image: ``core;patch`` with a frame,
``core`` without; the rest carry ``""``. The regions are the channels (``LoadedData.regions``).
Groups are the label x (framed; unframed with the patch agreeing; unframed with it disagreeing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.registry import DATASETS
from shiftlab.typed import param

CLASS_NAMES = ["horizontal", "vertical"]
REGIONS = ("core", "patch", "context")


@dataclass
class ContextualReliabilityOptions:
    """Sizes, noise and how strongly the patch follows the label without the frame."""

    train: int = param(2000, "images in the train domain", within="[20, inf)")
    flipped: int = param(1000, "images in the flipped (OOD) domain", within="[10, inf)")
    size: int = param(12, "image side", within="[8, inf)")
    core_noise: float = param(
        0.2, "probability that the bar is drawn the other way", within="[0, 0.5)"
    )
    agreement: float = param(
        0.9, "P(patch agrees with the label | no frame) in train; 1 minus it in flipped",
        within="[0, 1]",
    )  # fmt: skip
    annotated: float = param(
        0.1, "share of train images annotated with their reliable regions", within="[0, 1]"
    )
    pixel_noise: float = param(0.1, "std of Gaussian pixel noise", within="[0, inf)")
    seed: int = param(0, "seed of every draw", within="[0, 4294967295]")


def region_masks(size: int) -> dict[str, np.ndarray]:
    """(3, size, size) boolean masks of the three features: one channel each."""
    masks = {}
    for channel, name in enumerate(REGIONS):
        mask = np.zeros((3, size, size), dtype=bool)
        mask[channel] = True
        masks[name] = mask
    return masks


def draw(
    n: int, agreement: float, annotated: float, cfg: ContextualReliabilityOptions, rng
) -> Domain:
    """``n`` images with the patch agreeing with the label w.p. ``agreement`` without the
    frame (always with it), a share ``annotated`` of them annotated."""
    s, mid = cfg.size, cfg.size // 2
    labels = rng.integers(0, 2, n)
    framed = rng.random(n) < 0.5
    bar = np.where(rng.random(n) < cfg.core_noise, 1 - labels, labels)
    agrees = np.where(framed, True, rng.random(n) < agreement)
    patch = np.where(agrees, labels, 1 - labels)
    images = rng.normal(0.0, cfg.pixel_noise, (n, 3, s, s)).astype(np.float32)
    for i in range(n):
        if bar[i]:  # vertical
            images[i, 0, 2 : s - 2, mid - 1 : mid + 1] += 1.0
        else:
            images[i, 0, mid - 1 : mid + 1, 2 : s - 2] += 1.0
        if patch[i]:
            images[i, 1, 1:4, 1:4] += 1.0
        if framed[i]:
            images[i, 2, [0, -1], :] += 1.0
            images[i, 2, :, [0, -1]] += 1.0
    notes = np.where(framed, "core;patch", "core").astype(object)
    notes[rng.random(n) >= annotated] = ""
    groups = labels * 3 + np.where(framed, 0, np.where(agrees, 1, 2))
    return Domain(
        images,
        labels.astype(np.int64),
        groups=groups.astype(np.int64),
        attributes={"reliable": notes, "context": np.where(framed, "frame", "none")},
    )


@DATASETS.register(
    "contextual_reliability",
    options=ContextualReliabilityOptions,
    fast={"train": 120, "flipped": 40, "size": 8},
)
def contextual_reliability(
    cfg: ContextualReliabilityOptions, class_names: list[str] | None
) -> LoadedData:
    """A feature reliable in one context, spurious (and flipped under shift) in the other."""
    rng = np.random.default_rng(cfg.seed)
    domains = {
        "train": draw(cfg.train, cfg.agreement, cfg.annotated, cfg, rng),
        "flipped": draw(cfg.flipped, 1 - cfg.agreement, 0.0, cfg, rng),
    }
    names = list(class_names or CLASS_NAMES)
    kinds = ("frame", "no frame, patch agrees", "no frame, patch disagrees")
    group_names = [f"{c}/{kind}" for c in names for kind in kinds]
    return LoadedData(
        domains,
        names,
        "image",
        group_names,
        attributes=["reliable", "context"],
        regions=region_masks(cfg.size),
    )
