"""Forgetting events: how often an example goes from correctly to wrongly classified in training.

Toneva, Sordoni, Combes, Trischler, Bengio and Gordon, "An Empirical Study of Example Forgetting
during Deep Neural Network Learning" (ICLR 2019, arXiv 1812.05159). Follows
``mtoneva/example_forgetting``: ``run_cifar.py`` records, for every example of every training
minibatch, whether the train-mode forward pass of that step (before the update) classified it
correctly; ``order_examples_by_forgetting.py`` counts the transitions from correct to wrong
between consecutive presentations (``compute_forgetting_statistics``, lines 29-37), and gives an
example never classified correctly the number of presentations as its count
(``sort_examples_by_forgetting``, line 93: ``example_stats[-1] += npresentations``). That value,
T for T presentations, exceeds every learned example's count (at most T // 2). ``data_diet``'s
port (``data_diet/forgetting.py``, line 22) uses ``np.inf`` instead: pass ``never_learned=np.inf``.

With the shared trainer, observe inside the loss function:
``tracker.observe(batch.index, logits.argmax(1) == batch.labels)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.curation.data_diet import HeadTrainOptions, initial_linear_head
from shiftlab.errors import DataError
from shiftlab.registry import CURATE
from shiftlab.training import Batch, train


def _numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def forgetting_counts(
    correct: np.ndarray | torch.Tensor, *, never_learned: float | None = None
) -> np.ndarray:
    """Forgetting events per example from a correctness history.

    Args:
        correct: (T, N) bool, whether example n was correct at its t-th presentation.
        never_learned: the count of an example never correct; default T, as the reference.

    Returns:
        (N,) float64: the number of t >= 1 with ``correct[t-1]`` and not ``correct[t]``, or
        ``never_learned`` for an example never correct.
    """
    history = _numpy(correct)
    if history.ndim != 2 or history.shape[0] == 0:
        raise DataError(f"correctness history must be (T, N) with T >= 1, got {history.shape}")
    history = history.astype(bool)
    counts = (history[:-1] & ~history[1:]).sum(axis=0).astype(np.float64)
    counts[~history.any(axis=0)] = len(history) if never_learned is None else never_learned
    return counts


class ForgettingTracker:
    """Counts forgetting events online, one minibatch presentation at a time.

    Memory is O(N): the last correctness, the events so far, whether ever correct, and the
    number of presentations of each example.
    """

    def __init__(self, n: int) -> None:
        if n < 0:
            raise DataError(f"a forgetting tracker needs n >= 0 examples, got {n}")
        self.n = n
        self._last = np.zeros(n, dtype=bool)
        self._events = np.zeros(n, dtype=np.int64)
        self._learned = np.zeros(n, dtype=bool)
        self.presentations = np.zeros(n, dtype=np.int64)

    def observe(self, index: np.ndarray | torch.Tensor, correct: np.ndarray | torch.Tensor) -> None:
        """Record one presentation of each example in a minibatch.

        Args:
            index: (B,) example indices in [0, n); a repeated index counts as successive
                presentations, in batch order.
            correct: (B,) bool, whether each was classified correctly.
        """
        index = _numpy(index).astype(np.int64).ravel()
        correct = _numpy(correct).astype(bool).ravel()
        if index.shape != correct.shape:
            raise DataError(f"index {index.shape} and correct {correct.shape} differ in length")
        if index.size and (index.min() < 0 or index.max() >= self.n):
            raise DataError(f"example indices must be in [0, {self.n})")
        # The k-th occurrence of an index in this batch is its k-th presentation here.
        order = np.argsort(index, kind="stable")
        ranked = index[order]
        first = np.r_[True, ranked[1:] != ranked[:-1]] if ranked.size else ranked.astype(bool)
        starts = np.maximum.accumulate(np.where(first, np.arange(ranked.size), 0))
        occurrence = np.empty(index.size, dtype=np.int64)
        occurrence[order] = np.arange(ranked.size) - starts
        for k in range(int(occurrence.max()) + 1 if index.size else 0):
            take = occurrence == k
            self._present(index[take], correct[take])

    def _present(self, index: np.ndarray, correct: np.ndarray) -> None:
        """One presentation of distinct examples."""
        self._events[index[self._last[index] & ~correct]] += 1  # _last is False before any
        self._last[index] = correct
        self._learned[index] |= correct
        self.presentations[index] += 1

    def counts(self, *, never_learned: float | None = None) -> np.ndarray:
        """(N,) float64 forgetting events; an example never correct (or never seen) gets
        ``never_learned``, by default the largest number of presentations of any example (T
        when every example is seen once per epoch for T epochs, as in the reference)."""
        counts = self._events.astype(np.float64)
        fill = int(self.presentations.max(initial=0)) if never_learned is None else never_learned
        counts[~self._learned] = fill
        return counts


@dataclass
class ForgettingOptions(HeadTrainOptions):
    """A linear head trained on cached features, every presentation watched."""


@CURATE.register("forgetting", options=ForgettingOptions, fast={"epochs": 3})
def forgetting_score(ctx: CurationContext, cfg: ForgettingOptions) -> ScoreResult:
    """Forgetting events of each example over a linear head's training run (Toneva et al.)."""
    features, labels = ctx.train_features(), ctx.train.labels
    head = initial_linear_head(features.shape[1], ctx.benchmark.num_classes, ctx.seed)
    head = head.to(ctx.device)
    tracker = ForgettingTracker(len(labels))

    def loss_fn(batch: Batch) -> torch.Tensor:
        logits = head(batch.inputs)
        tracker.observe(batch.index, (logits.argmax(dim=1) == batch.labels).cpu())
        return F.cross_entropy(logits, batch.labels)

    train(
        head,
        loss_fn,
        features,
        labels,
        cfg,
        seed=ctx.seed,
        device=ctx.device,
        description="forgetting events",
        splittable=False,  # every presentation is watched by every process
        stateful=[tracker._last, tracker._events, tracker._learned, tracker.presentations],
    )
    values = tracker.counts()
    never = int((tracker.counts(never_learned=-1) < 0).sum())
    return ScoreResult(
        values,
        "forgetting events (high: forgotten often or never learned)",
        summary={"never_learned": never, "epochs": cfg.epochs},
    )
