"""Diversity-aware data selection: k-center greedy on pretrained features.

Sener and Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach"
(ICLR 2018, arXiv 1708.00489). Follows ``PatrickZH/DeepCore`` ``deepcore/methods/
kcentergreedy.py`` (``k_center_greedy``, ``kCenterGreedy.select``): the first centre is drawn at
random from a seeded generator (``np.random.randint`` there), then each next centre is the point
farthest (Euclidean) from its nearest centre, until ``round(fraction * N)`` are chosen
(DeepCore's ``coreset_size``); ``balance=True`` (here ``per_class``, default off as there) picks
``round(fraction * n_c)`` in each class apart, here at least one. Where DeepCore fills a
(budget x N) distance matrix, this keeps each point's squared distance to its nearest centre,
O(N) memory, as ``adymaharana/d2pruning`` ``core/data/sampling.py`` (``kCenterGreedy``) does.
The greedy choice covers the set within twice the smallest covering radius of any ``budget``
centres (Gonzalez 1985). The greedy order does not depend on the budget, so the sets of smaller
fractions are nested in those of larger ones (one greedy run per action serves every fraction).

The ``nearest_neighbor`` score gives each training example its distance to the nearest other one
and carries the cached features to the actions that select by geometry (this one and ``d2``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.neighbors import NearestNeighbors

from shiftlab.curation.actions import Scores, Variant, kept
from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.data.benchmark import Split
from shiftlab.errors import DataError
from shiftlab.registry import CURATE, CURATE_ACTIONS
from shiftlab.typed import NoOptions, param

FEATURES = "nearest_neighbor"  # the score that carries the features


def as_points(features: np.ndarray, name: str = "features") -> np.ndarray:
    """``features`` as finite float64 (N, D).

    Raises:
        DataError: not two-dimensional, or not finite.
    """
    points = np.asarray(features, dtype=np.float64)
    if points.ndim != 2:
        raise DataError(f"{name} must be (N, D), got shape {points.shape}")
    if not np.isfinite(points).all():
        raise DataError(f"{name} hold NaN or infinite values")
    return points


def kept_count(fraction: float, n: int) -> int:
    """How many of ``n`` a fraction keeps: ``round(fraction * n)``, at least one (as prune)."""
    return max(1, round(fraction * n))


def kcenter_greedy(
    features: np.ndarray,
    budget: int,
    rng: int | np.random.Generator | Sequence[int],
    already: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Greedy k-center: each new centre is the point farthest from its nearest centre.

    Args:
        features: (N, D) points, Euclidean distance.
        budget: how many new centres to choose, at most N minus the centres already chosen.
        rng: a seed or generator; it draws the first centre when ``already`` is empty.
        already: indices of centres chosen before (DeepCore's ``already_selected``); they are
            not chosen again nor returned.

    Returns:
        (budget,) int64 indices of the new centres, in the order chosen.
    """
    points = as_points(features)
    n = len(points)
    before = np.unique(np.asarray([] if already is None else already, dtype=np.int64))
    if before.size and (before.min() < 0 or before.max() >= n):
        raise DataError(f"already-chosen centres must be indices in [0, {n})")
    if not 0 <= budget <= n - before.size:
        raise DataError(f"k-center budget must be in [0, {n - before.size}], got {budget}")
    chosen: list[int] = []
    if budget == 0:
        return np.array(chosen, dtype=np.int64)
    squares = np.einsum("ij,ij->i", points, points)
    nearest = np.full(n, np.inf)  # squared distance to the nearest centre

    def add(centre: int) -> None:
        gap = squares - 2.0 * (points @ points[centre]) + squares[centre]
        np.minimum(nearest, np.maximum(gap, 0.0), out=nearest)

    if before.size:
        _, dist = pairwise_distances_argmin_min(points, points[before])
        nearest = dist**2
        nearest[before] = -np.inf
    else:
        first = int(np.random.default_rng(rng).integers(n))
        add(first)
        nearest[first] = -np.inf
        chosen.append(first)
    while len(chosen) < budget:
        centre = int(np.argmax(nearest))
        add(centre)
        nearest[centre] = -np.inf  # never chosen twice, even among duplicates
        chosen.append(centre)
    return np.array(chosen, dtype=np.int64)


def covering_radius(features: np.ndarray, selected: Sequence[int] | np.ndarray) -> float:
    """The largest distance of any point to its nearest selected point."""
    points = as_points(features)
    index = np.asarray(selected, dtype=np.int64)
    if index.size == 0:
        raise DataError("a covering radius needs at least one selected point")
    return float(pairwise_distances_argmin_min(points, points[index])[1].max())


def class_groups(labels: np.ndarray, per_class: bool) -> list[np.ndarray]:
    """Indices selected from apart: one group per class present, or every example."""
    labels = np.asarray(labels)
    if not per_class:
        return [np.arange(len(labels))]
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


@CURATE.register("nearest_neighbor", options=NoOptions)
def nearest_neighbor(ctx: CurationContext, cfg: NoOptions) -> ScoreResult:
    """Distance of each training example to its nearest other one in pretrained features."""
    features = ctx.train_features()
    if len(features) < 2:
        raise DataError("a nearest-neighbour distance needs at least two training examples")
    search = NearestNeighbors(n_neighbors=1).fit(features.astype(np.float64))
    distance = search.kneighbors(return_distance=True)[0][:, 0]
    return ScoreResult(
        distance,
        "Euclidean distance to the nearest other training example (high: isolated; 0: a copy)",
        summary={"median": round(float(np.median(distance)), 6), "dims": features.shape[1]},
        features=features,
    )


@dataclass
class KeepOptions:
    """How much of the training set a selection keeps (one curated set per fraction)."""

    keep: list[float] = param(
        [0.8],
        "fractions of the training set kept; one set each",
        within="(0, 1]",
        nonempty=True,
        unique=True,
    )


@dataclass
class KCenterOptions(KeepOptions):
    """How much to keep, and whether each class is covered apart."""

    per_class: bool = param(
        False, "cover each class apart, round(keep * class size) each (DeepCore balance)"
    )

    def needs(self) -> list[str]:
        return [FEATURES]


@CURATE_ACTIONS.register("kcenter", options=KCenterOptions)
def kcenter(scores: Scores, train: Split, cfg: KCenterOptions, seed: int) -> Iterator[Variant]:
    """Keep the fraction of the training set that covers it best: k-center greedy on features."""
    features = scores[FEATURES].features
    groups = class_groups(train.labels, cfg.per_class)
    orders = []
    for g, index in enumerate(groups):
        largest = max(kept_count(f, len(index)) for f in cfg.keep)
        rng = np.random.default_rng([seed, zlib.crc32(b"kcenter"), g])
        orders.append(index[kcenter_greedy(features[index], largest, rng)])
    for fraction in cfg.keep:
        mask = np.zeros(len(train), dtype=bool)
        for index, order in zip(groups, orders, strict=True):
            mask[order[: kept_count(fraction, len(index))]] = True
        params = {"keep": fraction, "per_class": cfg.per_class}
        yield kept(train, mask, f"kcenter_{fraction:g}", "kcenter", params)
