"""Bootstrap confidence intervals of the record metrics, resampling examples.

The percentile bootstrap (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13):
draw N of the N examples with replacement, ``resamples`` times (1,000 by default), compute the
metric on each replicate, and report the 2.5th and 97.5th percentiles.

Every replicate is a vector of counts ``w`` (N,) (how often each example was drawn), and every
record metric is a function of weighted sums ``w @ f`` of per-example columns ``f``: correct or
not, the example's NLL, its ECE bin (one-hot, times confidence, times correctness), its
prediction and label (one-hot, for per-class F1) and its group. So all replicates of all metrics
come from one sparse-times-dense product per chunk of replicates, with no Python loop over
replicates; with ``w`` all ones the functions reproduce
:func:`shiftlab.evaluate.metrics.classification_metrics` exactly.

Seeds: :func:`bootstrap_seed` derives a split's seed from the run seed and the split's name only,
so every model scored on that split is resampled on the same examples: replicates of two models
can be subtracted for a paired bootstrap (Koehn 2004, "Statistical significance tests for machine
translation evaluation"; Berg-Kirkpatrick et al. 2012), and records are reproducible.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from scipy import sparse

from shiftlab.evaluate.metrics import log_probs

RESAMPLES = 1000
LEVEL = 0.95
# Replicates are drawn in chunks of about this many (replicate, example) cells, so memory stays
# bounded on large splits. The chunk size depends on N only: the draws never depend on it.
CHUNK_CELLS = 1 << 21


def bootstrap_seed(run_seed: int, split: str) -> int:
    """The bootstrap seed of a split: a 64-bit hash of the run seed and the split's name.

    Two models scored on the same split of the same run get the same resampled examples.
    """
    digest = hashlib.sha256(f"shiftlab-bootstrap:{int(run_seed)}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def resample_indices(n: int, seed: int, resamples: int = RESAMPLES) -> Iterator[np.ndarray]:
    """The resampled example indices, chunk by chunk.

    Yields:
        int64 arrays (b, N) of indices in [0, N); the chunks stack to (resamples, N), drawn
        from ``numpy.random.default_rng(seed)`` in order.
    """
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        b = min(per_chunk, resamples - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def resample_counts(n: int, seed: int, resamples: int = RESAMPLES) -> Iterator[np.ndarray]:
    """How often each example is drawn in each replicate, chunk by chunk.

    Every model scored on a split asks for the same counts, so they are kept (as small
    integers) in a cache of at most ``CACHE_BYTES``.

    Yields:
        float64 arrays (b, N) of counts (each row sums to N), from :func:`resample_indices`.
    """
    key = (n, seed, resamples)
    chunks = _CACHE.get(key)
    if chunks is None:
        chunks = []
        for index in resample_indices(n, seed, resamples):
            b = index.shape[0]
            flat = (index + (np.arange(b) * n)[:, None]).ravel()
            counts = np.bincount(flat, minlength=b * n).reshape(b, n)
            chunks.append(counts.astype(np.min_scalar_type(counts.max())))
        _remember(key, chunks)
    for counts in chunks:
        yield counts.astype(np.float64)


CACHE_BYTES = 64 << 20
_CACHE: OrderedDict[tuple[int, int, int], list[np.ndarray]] = OrderedDict()


def _remember(key: tuple[int, int, int], chunks: list[np.ndarray]) -> None:
    size = sum(c.nbytes for c in chunks)
    if size > CACHE_BYTES:
        return
    _CACHE[key] = chunks
    while sum(c.nbytes for v in _CACHE.values() for c in v) > CACHE_BYTES:
        _CACHE.popitem(last=False)


def resampled_sums(columns: sparse.spmatrix | np.ndarray, seed: int, resamples: int) -> np.ndarray:
    """Weighted sums ``w @ columns`` for every replicate ``w``.

    Args:
        columns: (N, D) per-example columns (dense or sparse).
        seed: the bootstrap seed.
        resamples: B, the number of replicates.

    Returns:
        (B, D) float64 sums.
    """
    n = columns.shape[0]
    transposed = sparse.csr_matrix(columns.T) if sparse.issparse(columns) else np.asarray(columns).T
    chunks = [np.asarray(transposed @ w.T).T for w in resample_counts(n, seed, resamples)]
    return np.concatenate(chunks) if chunks else np.zeros((0, columns.shape[1]))


def resampled_means(values: np.ndarray, seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """Replicates of the mean of per-example values (e.g. correctness: accuracy).

    Args:
        values: (N,) numbers.

    Returns:
        (B,) means, one per replicate.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return np.full(resamples, np.nan)
    return resampled_sums(values[:, None], seed, resamples)[:, 0] / n


def _one_hot(index: np.ndarray, width: int, weights: np.ndarray | None = None) -> sparse.csr_matrix:
    n = len(index)
    data = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    return sparse.csr_matrix((data, (np.arange(n), index)), shape=(n, width))


def metric_replicates(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    num_bins: int = 15,
) -> dict[str, np.ndarray]:
    """Every record metric on every bootstrap replicate of one split.

    Args:
        logits: (N, K) unnormalised scores.
        labels: (N,) true class indices (the labels metrics are computed against).
        groups: optional (N,) group ids; adds ``worst_group_accuracy`` (over the groups present
            in each replicate).
        seed: the bootstrap seed (see :func:`bootstrap_seed`).
        resamples: B, the number of replicates.
        num_bins: ECE bins, as in the records.

    Returns:
        ``accuracy``, ``macro_f1``, ``ece``, ``nll`` (and ``worst_group_accuracy`` with
        groups), each (B,) float64; empty when N is 0.
    """
    logp = log_probs(logits)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = logp.shape
    if n == 0:
        return {}
    k = max(k, int(labels.max()) + 1)
    predictions = logp.argmax(axis=1)
    correct = (predictions == labels).astype(np.float64)
    confidence = np.exp(logp.max(axis=1))
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    blocks = [
        sparse.csr_matrix(np.stack([correct, -logp[np.arange(n), labels]], axis=1)),
        _one_hot(bins, num_bins, confidence),
        _one_hot(bins, num_bins, correct),
        _one_hot(predictions, k),
        _one_hot(labels, k),
        _one_hot(labels, k, correct),
    ]
    group_index = None
    if groups is not None:
        _, group_index = np.unique(np.asarray(groups), return_inverse=True)
        g = int(group_index.max()) + 1
        blocks += [_one_hot(group_index, g), _one_hot(group_index, g, correct)]
    sums = resampled_sums(sparse.hstack(blocks, format="csr"), seed, resamples)
    parts = np.split(sums, np.cumsum([b.shape[1] for b in blocks])[:-1], axis=1)
    accuracy, nll = parts[0][:, 0] / n, parts[0][:, 1] / n
    ece = np.abs(parts[2] - parts[1]).sum(axis=1) / n
    predicted, actual, true_positive = parts[3], parts[4], parts[5]
    support = predicted + actual  # 2TP + FP + FN
    present = support > 0  # classes in the replicate's labels or predictions, as scikit-learn
    f1 = np.divide(2 * true_positive, support, out=np.zeros_like(support), where=present)
    out = {
        "accuracy": accuracy,
        "macro_f1": f1.sum(axis=1) / present.sum(axis=1),
        "ece": ece,
        "nll": nll,
    }
    if group_index is not None:
        count, hits = parts[6], parts[7]
        group_acc = np.divide(hits, count, out=np.full_like(count, np.inf), where=count > 0)
        out["worst_group_accuracy"] = group_acc.min(axis=1)
    return out


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> list[float]:
    """The percentile interval ``[low, high]`` of replicates (B,) at ``level``."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [tail, 1.0 - tail])
    return [float(low), float(high)]


def mean_interval(values: np.ndarray, seed: Any, resamples: int = RESAMPLES) -> list[float]:
    """95% percentile bootstrap interval of the mean of per-example values (N,)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return [float(values.mean()), float(values.mean())] if len(values) else [np.nan] * 2
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return percentile_interval(means)


def metric_intervals(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    num_bins: int = 15,
) -> dict[str, Any]:
    """A record's ``ci``: metric name -> ``[low, high]`` percentile bootstrap interval.

    Args and metrics as :func:`metric_replicates`; ``level`` is the interval's coverage.
    """
    replicates = metric_replicates(
        logits, labels, groups, seed=seed, resamples=resamples, num_bins=num_bins
    )
    return {name: percentile_interval(values, level) for name, values in replicates.items()}
