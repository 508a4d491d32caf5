"""Curation actions: each turns scores of the ID training split into curated training sets.

``drop_label_issues`` removes what confident learning flags (Northcutt et al., JAIR 2021,
arXiv 1911.00068, "prune by noise rate"); ``relabel`` gives those examples cleanlab's suggested
label instead; ``prune`` keeps a fraction of the training set by EL2N, GraNd or forgetting
events, dropping the easiest examples (Paul et al., arXiv 2107.07075: ``keep_max_scores`` in
``mansheej/data_diet``) or the hardest, or a random subset as the control, or by an
image-caption similarity (``tmars``, ``clip_score``: :mod:`shiftlab.curation.tmars`), dropping
the least similar pairs; the easiest end of a score is its low end. It keeps exactly
``max(1, round(keep * N))`` examples (Python's ``round``: halves to even), the highest scores
first, ties in split order (a stable sort); ``dedupe`` removes
every later copy of near-duplicate training examples (SemDeDup, arXiv 2303.09540). Each curated
set keeps the split's order; recipes retrain on it with the run's seed and options.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from shiftlab.curation.context import ScoreResult
from shiftlab.data.benchmark import Split
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE_ACTIONS
from shiftlab.typed import param

Scores = dict[str, ScoreResult]


@dataclass
class Variant:
    """A curated training set: a label for names (``prune_el2n_0.8``), the action and its
    parameters, and the training split itself."""

    label: str
    action: str
    params: dict[str, Any]
    train: Split
    n_removed: int
    n_relabeled: int = 0

    def info(self) -> dict[str, Any]:
        """The records' ``curation`` key."""
        info = {"action": self.action, "params": self.params, "n_train": len(self.train)}
        info["n_removed"] = self.n_removed
        if self.n_relabeled:
            info["n_relabeled"] = self.n_relabeled
        return info


def kept(train: Split, keep: np.ndarray, label: str, action: str, params: dict) -> Variant:
    """The variant keeping the examples where ``keep`` (N,) is True."""
    index = np.flatnonzero(keep)
    return Variant(label, action, params, train.subset(index), int(len(train) - len(index)))


@dataclass
class LabelIssueOptions:
    """Acts on the examples confident learning flags."""

    def needs(self) -> list[str]:
        return ["label_issues"]


@CURATE_ACTIONS.register("drop_label_issues", options=LabelIssueOptions)
def drop_label_issues(scores: Scores, train: Split, cfg: Any, seed: int) -> Iterator[Variant]:
    """Remove the examples confident learning flags as likely mislabelled."""
    flagged = scores["label_issues"].flagged
    yield kept(train, ~flagged, "drop_label_issues", "drop_label_issues", {})


@CURATE_ACTIONS.register("relabel", options=LabelIssueOptions)
def relabel(scores: Scores, train: Split, cfg: Any, seed: int) -> Iterator[Variant]:
    """Give the flagged examples their suggested label (the out-of-sample argmax)."""
    issues = scores["label_issues"]
    labels = np.where(issues.flagged, issues.suggested, train.labels)
    changed = int((labels != train.labels).sum())
    yield Variant("relabel", "relabel", {}, train.relabeled(labels), 0, changed)


@dataclass
class PruneOptions:
    """What to rank by, how much to keep, which end to drop."""

    by: Literal["el2n", "grand", "forgetting", "tmars", "clip_score", "random"] = param(
        "el2n", "the score ranking the examples, or random (the control)"
    )
    keep: list[float] = param(
        [0.8], "fractions of the training set kept; one set each", within="(0, 1]"
    )
    drop: Literal["easiest", "hardest"] = param(
        "easiest",
        "the end removed: easiest, the lowest scores (the data-diet default; for tmars and "
        "clip_score the least similar pairs, as T-MARS drops), or hardest, the highest",
    )

    def __post_init__(self) -> None:
        if not self.keep or any(not 0 < f <= 1 for f in self.keep):
            raise ConfigError(f"prune keep fractions must be in (0, 1], got {self.keep}")

    def needs(self) -> list[str]:
        return [] if self.by == "random" else [self.by]


@CURATE_ACTIONS.register("prune", options=PruneOptions)
def prune(scores: Scores, train: Split, cfg: PruneOptions, seed: int) -> Iterator[Variant]:
    """Keep a fraction of the training set, ranked by a score (or at random)."""
    n = len(train)
    for fraction in cfg.keep:
        count = max(1, round(fraction * n))
        if cfg.by == "random":
            rng = np.random.default_rng([seed, zlib.crc32(f"prune:{fraction}".encode())])
            chosen = rng.choice(n, size=count, replace=False)
        else:
            values = scores[cfg.by].values
            order = np.argsort(-values if cfg.drop == "easiest" else values, kind="stable")
            chosen = order[:count]  # the hardest kept when the easiest are dropped
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
        params = {"by": cfg.by, "keep": fraction}
        suffix = "" if cfg.by == "random" or cfg.drop == "easiest" else "_drop_hardest"
        yield kept(
            train,
            mask,
            f"prune_{cfg.by}_{fraction:g}{suffix}",
            "prune",
            {**params, **({} if cfg.by == "random" else {"drop": cfg.drop})},
        )


@dataclass
class DedupeOptions:
    """Acts on near-duplicate pairs (their threshold is the score's option)."""

    def needs(self) -> list[str]:
        return ["near_duplicates"]


@CURATE_ACTIONS.register("dedupe", options=DedupeOptions)
def dedupe(scores: Scores, train: Split, cfg: Any, seed: int) -> Iterator[Variant]:
    """Remove every later copy of near-duplicate training examples (the first is kept)."""
    yield kept(train, ~scores["near_duplicates"].flagged, "dedupe", "dedupe", {})


def check_classes(variant: Variant, class_names: list[str], before: np.ndarray) -> None:
    """Refuse a curated set that lost every training example of a class it had.

    Raises:
        DataError: a class is gone.
    """
    present = set(np.unique(variant.train.labels).tolist())
    lost = [class_names[k] for k in np.unique(before) if k not in present]
    if lost:
        raise DataError(
            f"curation '{variant.label}' removes every training example of class "
            f"'{lost[0]}'; keep more (prune keep) or curate less"
        )
