"""Near-duplicate examples, and train/test leakage, by cosine similarity of embeddings.

SemDeDup (Abbas, Tirumala, Simig, Ganguli and Morcos, arXiv 2303.09540). Follows
``facebookresearch/SemDeDup`` ``semdedup.py``: two examples are duplicates when the cosine
similarity of their embeddings is strictly above a threshold (``M > 1 - eps``), and an example is
removed when it is a duplicate of any example before it (``M`` = column maxima of the upper
triangle of the similarity matrix), so the first of every group is kept. Where the reference
first splits the data by k-means and compares pairs only within a cluster (which can miss pairs
split across clusters), this searches exactly: scikit-learn's
``NearestNeighbors(metric="cosine", algorithm="brute").radius_neighbors`` (chunked pairwise
distances, bounded memory), not a Python loop over pairs. Similarities are recomputed in
float64 from the unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE
from shiftlab.typed import param


def _unit_rows(embeddings: np.ndarray, name: str) -> np.ndarray:
    rows = np.asarray(embeddings, dtype=np.float64)
    if rows.ndim != 2:
        raise DataError(f"{name} must be (N, D), got shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise DataError(f"{name} hold NaN or infinite values")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if (norms == 0).any():
        zero = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise DataError(f"{name} row {zero} is all zeros; its cosine similarity is undefined")
    return rows / norms


def near_duplicates(
    embeddings: np.ndarray, *, threshold: float = 0.95, others: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """Pairs of examples with cosine similarity above ``threshold``.

    Args:
        embeddings: (N, D) embeddings of the set.
        threshold: cosine similarity in (-1, 1); pairs strictly above it are returned.
        others: (M, D) embeddings of another set (e.g. test); when given, only pairs across
            the two sets are returned (leakage), else pairs within the set.

    Returns:
        ``(i, j, similarity)`` sorted by (i, j): within the set ``i < j`` both index
        ``embeddings``; across sets ``i`` indexes ``embeddings`` and ``j`` indexes ``others``.
    """
    if not -1.0 < threshold < 1.0:
        raise ConfigError(f"near-duplicate threshold must be in (-1, 1), got {threshold}")
    queries = _unit_rows(embeddings, "embeddings")
    index = queries if others is None else _unit_rows(others, "others")
    if index.shape[1] != queries.shape[1]:
        raise DataError(f"others have {index.shape[1]} dims, embeddings {queries.shape[1]}")
    if len(queries) == 0 or len(index) == 0:
        return []
    search = NearestNeighbors(metric="cosine", algorithm="brute").fit(index)
    radius = min(2.0, 1.0 - threshold + 1e-6)  # a little wide; the exact test follows
    found = search.radius_neighbors(queries, radius=radius, return_distance=False)
    pairs = []
    for i, neighbours in enumerate(found):
        js = np.sort(neighbours[neighbours > i] if others is None else neighbours)
        sims = np.clip(index[js] @ queries[i], -1.0, 1.0)
        keep = sims > threshold
        pairs.extend((i, int(j), float(s)) for j, s in zip(js[keep], sims[keep], strict=True))
    return pairs


def dedupe_drop(pairs: list[tuple[int, int, float]], n: int) -> np.ndarray:
    """Indices to drop so that no pair of ``pairs`` (within one set of ``n``) remains.

    As SemDeDup, an example is dropped when it pairs with any example of lower index, so the
    first example of every group of duplicates is kept, and a kept example pairs with no other
    kept one. A chain ``a ~ b ~ c`` (``a`` and ``c`` not paired) keeps ``a`` only.

    Args:
        pairs: ``(i, j, similarity)`` within the set, as :func:`near_duplicates` returns.
        n: size of the set.

    Returns:
        Sorted int64 indices to drop.
    """
    later = set()
    for i, j, _ in pairs:
        a, b = sorted((int(i), int(j)))
        if a == b or a < 0 or b >= n:
            raise DataError(f"pair ({i}, {j}) is not two distinct indices in [0, {n})")
        later.add(b)
    return np.array(sorted(later), dtype=np.int64)


@dataclass
class NearDuplicatesOptions:
    """The similarity above which two examples are duplicates."""

    threshold: float = param(
        0.95,
        "cosine similarity of pretrained embeddings above which two examples are near duplicates",
        within="[-1, 1]",
    )
    leakage: bool = param(True, "also pair training examples with ID val, ID test and OOD ones")

    def __post_init__(self) -> None:
        if not -1 <= self.threshold < 1:
            raise ConfigError(f"near_duplicates threshold must be in [-1, 1), got {self.threshold}")


@CURATE.register("near_duplicates", options=NearDuplicatesOptions)
def near_duplicates_score(ctx: CurationContext, cfg: NearDuplicatesOptions) -> ScoreResult:
    """Training examples nearly equal to another one (or to an evaluation example: leakage)."""
    train = ctx.train_features()
    n = len(train)
    best = np.zeros(n)
    flagged = np.zeros(n, dtype=bool)
    pairs: list[tuple[str, int, int, float]] = []
    within = near_duplicates(train, threshold=cfg.threshold)
    for i, j, similarity in within:
        pairs.append(("train", i, j, similarity))
    flagged[dedupe_drop(within, n)] = True  # those dedupe drops: every later copy
    leaks = 0
    if cfg.leakage:
        for split in ctx.benchmark.eval_splits():
            if "corruption" in split.info:
                continue
            found = near_duplicates(
                train, threshold=cfg.threshold, others=ctx.features(split).numpy()
            )
            pairs += [(split.name, i, j, s) for i, j, s in found]
            leaks += len(found)
    for name, i, j, similarity in pairs:
        best[i] = max(best[i], similarity)
        if name == "train":  # both ends are training examples
            best[j] = max(best[j], similarity)
    return ScoreResult(
        best,
        "highest cosine similarity to another example (high: duplicated)",
        flagged=flagged,
        pairs=pairs,
        summary={"duplicate_pairs": len(within), "leaks": leaks, "threshold": cfg.threshold},
    )
