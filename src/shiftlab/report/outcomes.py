"""Per-example outcomes behind the records, and the bootstrap replicates of each model's
headline numbers, read from the predictions each record names
(:func:`shiftlab.predictions.split_predictions`) and resampled as the records' intervals were
(:mod:`shiftlab.evaluate.intervals`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftlab.evaluate.intervals import (
    RESAMPLES,
    bootstrap_seed,
    metric_replicates,
    resampled_means,
)
from shiftlab.evaluate.metrics import log_probs
from shiftlab.predictions import read_table, split_predictions
from shiftlab.report.summary import ood_splits


@dataclass
class Outcome:
    """One record's per-example outcomes, in its split's common example order.

    Attributes:
        logits: (N, K) float32.
        labels: (N,) the labels metrics use (clean where known).
        correct: (N,) bool, the argmax is the label.
        groups: (N,) group ids, or None where the split has no groups.
    """

    logits: np.ndarray
    labels: np.ndarray
    correct: np.ndarray
    groups: np.ndarray | None


def _read_groups(path: Path, model: str, adapter: str | None, split: str) -> np.ndarray | None:
    """The group column of one (model, adapter, split) of a predictions file."""
    import pyarrow.compute as pc

    table = read_table(path, columns=["model", "adapter", "split", "group"])
    adapters = table["adapter"].cast("string")
    mask = pc.and_(
        pc.and_(
            pc.equal(table["model"].cast("string"), model),
            pc.equal(table["split"].cast("string"), split),
        ),
        pc.is_null(adapters) if adapter is None else pc.equal(adapters, adapter),
    )
    column = table.filter(mask)["group"]
    return None if column.null_count == len(column) else np.asarray(column)


class Outcomes:
    """Per-example outcomes of records, read from the predictions they name, each once.

    Args:
        run_dir: where records without a ``run_dir`` key keep their predictions.
        seed: the run seed every split's bootstrap seed is derived from (a report across runs
            uses the first run's, so models of different runs share resamples).
        resamples: B.
        orders: split -> example ids (N,), the order outcomes are aligned to (a report across
            runs: the first run's); by default, that of the first record read on the split.
    """

    def __init__(
        self,
        run_dir: Path | None,
        seed: int,
        resamples: int = RESAMPLES,
        orders: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.seed = int(seed)
        self.resamples = resamples
        self._order: dict[str, np.ndarray] = dict(orders or {})  # split -> example ids
        self._outcomes: dict[tuple[Any, ...], Outcome | None] = {}
        self._replicates: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    def split_seed(self, split: str) -> int:
        """The bootstrap seed of ``split``."""
        return bootstrap_seed(self.seed, split)

    @staticmethod
    def _key(record: dict[str, Any]) -> tuple[Any, ...]:
        return (record.get("run_dir"), record["model"], record.get("adapter"), record["split"])

    def get(self, record: dict[str, Any]) -> Outcome | None:
        """The record's outcomes; None without stored predictions, or when its examples are not
        those of the split's first record."""
        key = self._key(record)
        if key not in self._outcomes:
            self._outcomes[key] = self._load(record)
        return self._outcomes[key]

    def _load(self, record: dict[str, Any]) -> Outcome | None:
        run_dir = Path(record["run_dir"]) if record.get("run_dir") else self.run_dir
        if run_dir is None or not record.get("predictions"):
            return None
        if not (run_dir / record["predictions"]).is_file():
            return None
        local = {**record, "model": record.get("run_model", record["model"])}
        ids, labels, true_labels, logits = split_predictions(run_dir, local)
        if len(ids) == 0 or logits.ndim != 2 or logits.shape[1] == 0:
            return None  # nothing stored, or a generation task (no logits)
        ids = np.asarray(ids).astype(str)
        order = self._order.setdefault(record["split"], ids)
        if np.array_equal(ids, order):
            index = None
        else:
            position = {e: i for i, e in enumerate(ids)}
            if len(ids) != len(order) or any(e not in position for e in order):
                return None  # other examples: nothing to pair with
            index = np.array([position[e] for e in order])
        groups = None
        if record.get("group_accuracy") is not None:
            path = run_dir / record["predictions"]
            groups = _read_groups(path, local["model"], record.get("adapter"), record["split"])
        labels = labels if true_labels is None else true_labels
        if index is not None:
            logits, labels = logits[index], labels[index]
            groups = None if groups is None else groups[index]
        correct = log_probs(logits).argmax(axis=1) == labels
        return Outcome(logits, np.asarray(labels, dtype=np.int64), correct, groups)

    def accuracy_replicates(self, record: dict[str, Any]) -> np.ndarray | None:
        """(B,) accuracy of the record's model on each replicate of its split, or None."""
        key = self._key(record)
        cached = self._replicates.get(key)
        if cached is not None and "accuracy" in cached:
            return cached["accuracy"]
        outcome = self.get(record)
        if outcome is None:
            return None
        values = resampled_means(outcome.correct, self.split_seed(record["split"]), self.resamples)
        self._replicates.setdefault(key, {})["accuracy"] = values
        return values

    def metric_replicates(self, record: dict[str, Any], metric: str) -> np.ndarray | None:
        """(B,) ``metric`` (a record metric) on each replicate of the record's split, or None."""
        if metric == "accuracy":
            return self.accuracy_replicates(record)
        key = self._key(record)
        cached = self._replicates.get(key, {})
        if metric not in cached:
            outcome = self.get(record)
            if outcome is None:
                return None
            every = metric_replicates(
                outcome.logits,
                outcome.labels,
                outcome.groups,
                seed=self.split_seed(record["split"]),
                resamples=self.resamples,
            )
            cached = self._replicates.setdefault(key, {})
            cached.update(every)
        return cached.get(metric)


class Evidence:
    """The records behind each model's row, and the replicates of its headline numbers.

    Args:
        records: the report's records (trend points already left out).
        outcomes: where per-example outcomes come from.
    """

    def __init__(self, records: list[dict[str, Any]], outcomes: Outcomes) -> None:
        self.outcomes = outcomes
        self.by_model: dict[str, dict[str, dict[str, Any]]] = {}
        for record in records:
            # as the rows: unadapted classification records of the run's own task
            if (
                record.get("adapter") is None
                and "accuracy" in record
                and not record.get("conjugate")
                and not record.get("capability")
            ):
                self.by_model.setdefault(record["model"], {})[record["split"]] = record
        self.natural = ood_splits(records)

    def record(self, model: str, split: str) -> dict[str, Any] | None:
        """The unadapted record of ``model`` on ``split``."""
        return self.by_model.get(model, {}).get(split)

    def id_test(self, model: str) -> dict[str, Any] | None:
        """The model's ID test record."""
        return next(
            (r for r in self.by_model.get(model, {}).values() if r["role"] == "id_test"), None
        )

    def ood(self, model: str) -> list[dict[str, Any]]:
        """The records the OOD mean averages: natural OOD splits, else corrupted ones."""
        records = [
            r
            for r in self.by_model.get(model, {}).values()
            if r["role"] == "ood" and "attack" not in r
        ]
        natural = [r for r in records if "corruption" not in r]
        return natural or records

    def ood_mean_replicates(self, model: str) -> np.ndarray | None:
        """(B,) the OOD mean accuracy per replicate: each split resampled with its own seed,
        averaged across splits; None when a split lacks predictions."""
        records = self.ood(model)
        replicates = [self.outcomes.accuracy_replicates(r) for r in records]
        if not replicates or any(r is None for r in replicates):
            return None
        return np.mean(replicates, axis=0)

    def replicates(self, model: str, criterion: str) -> np.ndarray | None:
        """(B,) replicates of a headline number: ``id_test`` accuracy, ``ood_mean`` accuracy,
        or an ID test metric (``ece``, ``worst_group_accuracy``)."""
        if criterion == "ood_mean":
            return self.ood_mean_replicates(model)
        record = self.id_test(model)
        if record is None:
            return None
        metric = "accuracy" if criterion == "id_test" else criterion
        return self.outcomes.metric_replicates(record, metric)
