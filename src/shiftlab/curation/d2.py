"""D2 Pruning: message passing on a kNN graph balances difficulty and diversity.

Maharana, Yadav and Bansal, "D2 Pruning: Message Passing for Balancing Diversity & Difficulty in
Data Pruning" (ICLR 2024, arXiv 2310.07931). Follows ``adymaharana/d2pruning`` as its README runs
it (``--coreset-mode class --sampling-mode graph --graph-mode sum --graph-sampling-mode weighted
--n-neighbor 5 --gamma 0.1 --mis-ratio 0.4 --label-balanced``):

- ``selection_mp.py`` (``select_coreset``, class mode): the ``int(mis_ratio * N)`` hardest
  examples are dropped first (``CoresetSelection.mislabel_mask``: for el2n and forgetting, the
  highest scores); the budget ``coreset_ratio * N`` counts the whole set;
- ``core/data/Coreset.py`` (``density_sampling``, bins = labels, ``bin_allocate`` uniform): each
  class gets an equal share of the budget, at most its size, the rest spread over the larger
  classes; a graph per class;
- ``core/data/sampling.py`` (``GraphDensitySampler.compute_graph_density``, ``sum``): the kNN
  graph (``kneighbors_graph``, Euclidean, self excluded) is made symmetric (an edge where either
  end is among the other's k nearest), and forward message passing gives
  ``density_i = s_i + sum_{j in N(i)} exp(-d_ij) * max(s_j, 1e-7)``: gamma does not enter here;
- ``select_batch_`` (``weighted``): reverse message passing picks ``i = argmax density`` (ties:
  the first), lowers every graph neighbour ``j`` of ``i`` (the symmetric ``N(i)``, the same
  graph) by ``exp(-gamma * d_ij) * density_i``, and never picks ``i`` again, until the budget.

Where this differs: the budget is ``round(fraction * N)``, at least one, as ``prune`` keeps (the
reference takes ``int``); the hardest are dropped only so far as the budget still fits (the
reference returns fewer examples than asked when ``keep > 1 - mis_ratio``); the score that drops
the hardest is the node score itself (the reference's ``--mis-key`` defaults to AUM); ties among
equal scores (forgetting counts) go to the lower index, where the reference's unstable torch
sort is arbitrary; a class of at most ``neighbors`` examples runs on a graph of ``n_c - 1``
neighbours, where the reference keeps a random subset of it. With per-class budgets, the hardest
``mis_ratio`` are dropped within each class rather than over the whole set: a global cut can
remove every example of a class whose scores run high (it did, on digits with EL2N), which a
label-balanced selection is meant to prevent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.neighbors import NearestNeighbors

from shiftlab.curation.actions import Scores, Variant, kept
from shiftlab.curation.selection import FEATURES, KeepOptions, as_points, kept_count
from shiftlab.data.benchmark import Split
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE_ACTIONS
from shiftlab.typed import param

EPSILON = 1e-7  # the reference's floor of a neighbour's score in forward passing

Graph = tuple[np.ndarray, np.ndarray, np.ndarray]  # row starts (N + 1,), neighbours, distances


def knn_graph(features: np.ndarray, neighbors: int) -> Graph:
    """The symmetric kNN graph: ``j`` in ``N(i)`` when either is among the other's nearest.

    Returns:
        ``(starts, ends, distances)``: node ``i``'s neighbours are ``ends[starts[i]:starts[i+1]]``
        (ascending), at Euclidean ``distances`` of the same slice. ``min(neighbors, N - 1)``
        nearest per node.
    """
    points = as_points(features)
    n = len(points)
    k = min(neighbors, n - 1)
    if k < 1:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0)
    distance, index = NearestNeighbors(n_neighbors=k).fit(points).kneighbors()
    rows = np.repeat(np.arange(n), k)
    tails = np.concatenate([rows, index.ravel()])
    heads = np.concatenate([index.ravel(), rows])
    lengths = np.concatenate([distance.ravel(), distance.ravel()])
    _, first = np.unique(tails * n + heads, return_index=True)  # each edge once, sorted
    tails, heads, lengths = tails[first], heads[first], lengths[first]
    return np.searchsorted(tails, np.arange(n + 1)), heads, lengths


def forward_density(graph: Graph, scores: np.ndarray) -> np.ndarray:
    """Forward message passing (``sum``): each node's score plus its neighbours', weighted
    ``exp(-d)``."""
    starts, heads, lengths = graph
    tails = np.repeat(np.arange(len(scores)), np.diff(starts))
    messages = np.exp(-lengths) * np.maximum(scores[heads], EPSILON)
    return scores + np.bincount(tails, weights=messages, minlength=len(scores))


def graph_density(features: np.ndarray, scores: np.ndarray, neighbors: int = 5) -> np.ndarray:
    """(N,) density of every node after forward message passing on the kNN graph."""
    return forward_density(knn_graph(features, neighbors), _scores(scores, len(features)))


def reverse_passing(graph: Graph, density: np.ndarray, budget: int, gamma: float) -> np.ndarray:
    """Pick ``budget`` nodes, each the densest left, lowering its neighbours' density by
    ``exp(-gamma * d) * density`` of the pick; returns them in the order picked."""
    starts, heads, lengths = graph
    density = np.array(density, dtype=np.float64)
    picked = np.zeros(budget, dtype=np.int64)
    for step in range(budget):
        node = int(np.argmax(density))
        lo, hi = starts[node], starts[node + 1]
        density[heads[lo:hi]] -= np.exp(-gamma * lengths[lo:hi]) * density[node]
        density[node] = -np.inf  # picked: never again (picked neighbours stay at -inf)
        picked[step] = node
    return picked


def balanced_budgets(sizes: np.ndarray, total: int) -> np.ndarray:
    """An equal share of ``total`` per group, at most its size; what a small group cannot take
    goes to the larger ones (the reference's ``bin_allocate``, uniform)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    budgets = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    rest = min(int(total), int(sizes.sum()))
    for place, group in enumerate(order):
        budgets[group] = min(sizes[group], rest // (len(order) - place))
        rest -= budgets[group]
    while rest > 0:  # floors left over: one more each to the largest groups with room
        for group in order[::-1]:
            if rest > 0 and budgets[group] < sizes[group]:
                budgets[group] += 1
                rest -= 1
    return budgets


def _scores(scores: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (n,) or not np.isfinite(values).all():
        raise DataError(f"D2 needs one finite score per example ({n}), got shape {values.shape}")
    return values


def d2_select(
    features: np.ndarray,
    scores: np.ndarray,
    budget: int,
    *,
    neighbors: int = 5,
    gamma: float = 0.1,
    mis_ratio: float = 0.4,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """D2 pruning: drop the hardest, then message passing on the kNN graph picks ``budget``.

    Args:
        features: (N, D) embeddings, Euclidean distance.
        scores: (N,) difficulty (high: hard), the node scores.
        budget: examples kept, counted on the whole set.
        neighbors: k of the kNN graph.
        gamma: how far a pick lowers its neighbours in reverse message passing.
        mis_ratio: fraction dropped first, the hardest by ``scores``, of the whole set (or of
            each class, with ``labels``); fewer when the budget would no longer fit.
        labels: (N,) class labels for per-class graphs with equal shares of the budget; None:
            one graph.

    Returns:
        (budget,) int64 indices into the whole set, in the order picked (class by class).
    """
    points = as_points(features)
    n = len(points)
    values = _scores(scores, n)
    if not 0 <= budget <= n:
        raise DataError(f"D2 budget must be in [0, {n}], got {budget}")
    if neighbors < 1 or gamma < 0 or not 0 <= mis_ratio < 1:
        raise ConfigError("D2 needs neighbors >= 1, gamma >= 0 and mis_ratio in [0, 1)")
    if labels is None:
        groups, budgets = [np.arange(n)], [budget]
    else:  # equal shares of the budget (bin_allocate); the hardest dropped within each class
        labels = np.asarray(labels)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        budgets = list(balanced_budgets(np.array([len(g) for g in groups]), budget))
    picked = [np.zeros(0, dtype=np.int64)]
    for group, count in zip(groups, budgets, strict=True):
        dropped = min(int(mis_ratio * len(group)), len(group) - int(count))
        group = np.sort(group[np.argsort(-values[group], kind="stable")[dropped:]])
        graph = knn_graph(points[group], neighbors)
        density = forward_density(graph, values[group])
        picked.append(group[reverse_passing(graph, density, int(count), gamma)])
    return np.concatenate(picked)


@dataclass
class D2Options(KeepOptions):
    """The node score, the graph, how much to keep; defaults: the reference's CIFAR command."""

    score: Literal["el2n", "forgetting", "grand"] = param(
        "el2n", "the difficulty score of each node (high: hard); the reference uses forgetting"
    )
    neighbors: int = param(5, "k of the kNN graph on the pretrained features", within="[1, inf)")
    gamma: float = param(
        0.1,
        "reverse message passing lowers a pick's neighbours by exp(-gamma d)",
        within="[0, inf)",
    )
    mis_ratio: float = param(
        0.4, "fraction of the training set dropped first, the hardest by score", within="[0, 1)"
    )
    per_class: bool = param(
        True, "a graph per class, each an equal share of the budget (label-balanced)"
    )

    def needs(self) -> list[str]:
        return [FEATURES, self.score]


@CURATE_ACTIONS.register("d2", options=D2Options)
def d2(scores: Scores, train: Split, cfg: D2Options, seed: int) -> Iterator[Variant]:
    """Keep a fraction of the training set balancing difficulty and diversity (D2 pruning)."""
    features, values = scores[FEATURES].features, scores[cfg.score].values
    labels = train.labels if cfg.per_class else None
    for fraction in cfg.keep:
        chosen = d2_select(
            features,
            values,
            kept_count(fraction, len(train)),
            neighbors=cfg.neighbors,
            gamma=cfg.gamma,
            mis_ratio=cfg.mis_ratio,
            labels=labels,
        )
        mask = np.zeros(len(train), dtype=bool)
        mask[chosen] = True
        params = {
            "keep": fraction,
            "score": cfg.score,
            "neighbors": cfg.neighbors,
            "gamma": cfg.gamma,
            "mis_ratio": cfg.mis_ratio,
            "per_class": cfg.per_class,
        }
        yield kept(train, mask, f"d2_{fraction:g}", "d2", params)
