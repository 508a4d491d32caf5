"""What to deploy: intervals, paired comparisons and a plain summary, from stored predictions.

Everything here reads the per-example predictions each record names
(:func:`shiftlab.predictions.split_predictions`) and resamples them as the records' intervals
were resampled (:mod:`shiftlab.evaluate.intervals`: a split's bootstrap seed comes from the run
seed and the split's name, so every model on a split is resampled on the same examples):

- the OOD mean's interval: each OOD split resampled with its own seeded indices, the accuracies
  averaged across splits per replicate, then the percentile interval;
- paired comparisons against a reference model: the paired bootstrap of the accuracy difference
  and exact McNemar tests (:mod:`shiftlab.evaluate.significance`);
- the "What to deploy" summary: the ID-vs-OOD Pareto front (a model is on it when no other is at
  least as accurate on both ID test and OOD mean and more accurate on one; the ID-vs-OOD plane of
  Taori et al. 2020 and Wortsman et al. 2022, WiSE-FT), the best model by each criterion, and the
  models statistically indistinguishable from it (the 95% paired bootstrap interval of the
  difference includes 0).

A report across runs (``shiftlab compare``) aligns each split's examples by id to the first run's
order and resamples with the first run's seed, so models of different runs are paired too.
Records without stored predictions (runs of older versions) still get their records' intervals;
they are left out of what needs per-example outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftlab.evaluate.intervals import (
    RESAMPLES,
    bootstrap_seed,
    metric_replicates,
    percentile_interval,
    resampled_means,
)
from shiftlab.evaluate.metrics import log_probs
from shiftlab.evaluate.significance import PairedDifference, difference_interval, mcnemar
from shiftlab.predictions import split_predictions
from shiftlab.report.summary import ModelRow, ood_splits
from shiftlab.report.tables import Table, fmt

DEFAULT_REFERENCE = "full_ft"


def fmt_interval(value: float | None, ci: Sequence[float] | None) -> str:
    """``0.737 [0.714, 0.760]``; the value alone without an interval."""
    if value is None or ci is None:
        return fmt(value)
    return f"{fmt(float(value))} [{fmt(float(ci[0]))}, {fmt(float(ci[1]))}]"


def _signed(value: float) -> str:
    return f"{round(value, 3) + 0.0:+.3f}"  # + 0.0 turns -0.0 into 0.0


def fmt_difference(diff: PairedDifference | None, mark: bool = True) -> str:
    """``+0.031 [+0.012, +0.050] *``: the difference, its interval, and ``*`` where the interval
    excludes zero."""
    if diff is None:
        return "—"
    text = f"{_signed(diff.difference)} [{_signed(diff.low)}, {_signed(diff.high)}]"
    return text + (" *" if mark and diff.excludes_zero else "")


def fmt_pvalue(p: float) -> str:
    """A p-value to three decimals, ``<0.001`` below that."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (both coordinates higher is better).

    A point is dominated when another is at least as high on both coordinates and higher on
    one; equal points dominate neither, so both stay on the front.

    Args:
        points: (x, y) pairs, e.g. (ID test accuracy, OOD mean accuracy).
    """
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (u >= x and v >= y) and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


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
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["model", "adapter", "split", "group"])
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
        records = [r for r in self.by_model.get(model, {}).values() if r["role"] == "ood"]
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


def add_intervals(rows: list[ModelRow], evidence: Evidence) -> None:
    """Fill each row's ``id_test_ci`` (the record's, else from its predictions) and
    ``ood_mean_ci`` (recomputed from predictions; the record's own with a single OOD split)."""
    for row in rows:
        if row.id_test_ci is None and row.id_test is not None:
            replicates = evidence.replicates(row.model, "id_test")
            if replicates is not None:
                row.id_test_ci = percentile_interval(replicates)
        if row.ood_mean is None:
            continue
        replicates = evidence.ood_mean_replicates(row.model)
        if replicates is not None:
            row.ood_mean_ci = percentile_interval(replicates)
        else:
            ood = evidence.ood(row.model)
            if len(ood) == 1 and (ood[0].get("ci") or {}).get("accuracy"):
                row.ood_mean_ci = list(ood[0]["ci"]["accuracy"])


def choose_reference(
    rows: list[ModelRow], records: list[dict[str, Any]], configured: str | None
) -> tuple[ModelRow | None, str]:
    """The reference model of the paired comparisons, and a note when the configured one is
    missing.

    ``configured`` (``report.reference``) names a model, in a report across runs with or without
    its run's prefix (the first run's is taken). Default: ``full_ft`` where present, else the
    first standard (ID-trained) model, else the first trained one (not zero-shot).
    """
    local = {r["model"]: r.get("run_model", r["model"]) for r in records}

    def named(name: str) -> ModelRow | None:
        exact = next((r for r in rows if r.model == name), None)
        return exact or next((r for r in rows if local.get(r.model) == name), None)

    note = ""
    if configured:
        found = named(configured)
        if found is not None:
            return found, note
        note = f"report.reference '{configured}' names no model of this report. "
    default = (
        named(DEFAULT_REFERENCE)
        or next((r for r in rows if r.standard and not r.calibrated), None)
        or next((r for r in rows if r.recipe != "zero_shot"), None)
        or (rows[0] if rows else None)
    )
    return default, note


def paired_table(
    rows: list[ModelRow], evidence: Evidence, reference: ModelRow, note: str = ""
) -> Table | None:
    """Every model against ``reference``: accuracy differences on ID test, each natural OOD
    split and the OOD mean (paired bootstrap intervals), and exact McNemar p-values."""
    splits = [s for s in ("id_test", *evidence.natural) if evidence.record(reference.model, s)]
    outcomes = evidence.outcomes
    values, any_outcome = [], False
    for row in rows:
        if row.model == reference.model:
            continue
        cells = [row.model]
        for split in splits:
            mine = evidence.record(row.model, split)
            theirs = evidence.record(reference.model, split)
            a = None if mine is None else outcomes.get(mine)
            b = None if theirs is None else outcomes.get(theirs)
            if a is None or b is None:
                cells += ["—", "—"]
                continue
            any_outcome = True
            diff = difference_interval(
                float(a.correct.mean() - b.correct.mean()),
                outcomes.accuracy_replicates(mine),
                outcomes.accuracy_replicates(theirs),
            )
            cells += [fmt_difference(diff), fmt_pvalue(mcnemar(a.correct, b.correct).pvalue)]
        mine_mean = evidence.ood_mean_replicates(row.model)
        theirs_mean = evidence.ood_mean_replicates(reference.model)
        if any(v is None for v in (mine_mean, theirs_mean, row.ood_mean, reference.ood_mean)):
            cells.append("—")
        else:
            estimate = row.ood_mean - reference.ood_mean
            cells.append(fmt_difference(difference_interval(estimate, mine_mean, theirs_mean)))
        values.append(cells)
    if not values or not any_outcome:
        return None
    names = {"id_test": "ID test"}
    header = ["model"]
    for split in splits:
        header += [f"{names.get(split, split)} Δ", f"{names.get(split, split)} p"]
    header.append("OOD mean Δ")
    return Table(
        f"Paired comparison against {reference.model}",
        header,
        values,
        note=note
        + f"Δ: the model's accuracy minus {reference.model}'s on the same examples, with the 95% "
        "paired bootstrap interval (1,000 resamples of the examples, the same for both models; "
        "the OOD mean resamples each split with its own seed and averages the differences). "
        "* marks an interval that excludes 0. p: exact McNemar test (two-sided binomial test on "
        "the examples exactly one of the two models gets right), a second opinion per split.",
    )


@dataclass
class Criterion:
    """A way to pick the best model: its name in the summary, the row's value, whether higher
    is better, and which replicates the paired bootstrap compares."""

    label: str
    value: Callable[[ModelRow], float | None]
    higher: bool
    replicates: str


CRITERIA = [
    Criterion("ID test accuracy", lambda r: r.id_test, True, "id_test"),
    Criterion("mean OOD accuracy", lambda r: r.ood_mean, True, "ood_mean"),
    Criterion(
        "worst-group accuracy (ID test)",
        lambda r: r.worst_group_id,
        True,
        "worst_group_accuracy",
    ),
    Criterion("calibration (lowest ID test ECE)", lambda r: r.ece_id, False, "ece"),
]


def _best_sentence(rows: list[ModelRow], evidence: Evidence, criterion: Criterion) -> str | None:
    scored = [(r, criterion.value(r)) for r in rows if criterion.value(r) is not None]
    if not scored:
        return None
    sign = 1.0 if criterion.higher else -1.0
    # the first of the best; compared to 12 decimals, so that the same predictions stored in
    # another order (another run) tie
    best, value = max(scored, key=lambda item: sign * round(item[1], 12))
    mine = evidence.replicates(best.model, criterion.replicates)
    ci = percentile_interval(mine) if mine is not None else None
    if ci is None and criterion.replicates in ("id_test", "ece", "worst_group_accuracy"):
        record = evidence.id_test(best.model) or {}
        metric = "accuracy" if criterion.replicates == "id_test" else criterion.replicates
        ci = (record.get("ci") or {}).get(metric)
    if ci is None and criterion.replicates == "ood_mean":
        ci = best.ood_mean_ci
    sentence = f"Best {criterion.label}: {best.model}, {fmt_interval(value, ci)}."
    if mine is None:
        return sentence + " (No per-example predictions stored: no paired tests.)"
    close, untested = [], []
    for row, v in scored:
        if row is best:
            continue
        theirs = evidence.replicates(row.model, criterion.replicates)
        if theirs is None:
            untested.append(row.model)
            continue
        diff = difference_interval(v - value, theirs, mine)
        if not diff.excludes_zero:
            close.append(f"{row.model} ({fmt_difference(diff, mark=False)})")
    if close:
        sentence += (
            " Statistically indistinguishable from it (95% paired bootstrap interval of the "
            f"difference includes 0): {', '.join(close)}."
        )
    elif len(scored) > 1:
        sentence += " Every other model differs from it significantly (paired bootstrap, 95%)."
    if untested:
        sentence += f" Not tested (no stored predictions): {', '.join(untested)}."
    return sentence


def deployment_summary(rows: list[ModelRow], evidence: Evidence) -> list[str]:
    """Plain sentences: the ID-vs-OOD Pareto front, then the best model by ID test accuracy,
    mean OOD accuracy, worst-group accuracy (when there are groups) and calibration, each with
    the models statistically indistinguishable from it."""
    sentences = []
    placed = [r for r in rows if r.id_test is not None and r.ood_mean is not None]
    if placed:
        points = [(round(r.id_test, 12), round(r.ood_mean, 12)) for r in placed]
        front = [placed[i] for i in pareto_front(points)]
        front.sort(key=lambda r: (-r.id_test, -r.ood_mean))
        points = "; ".join(f"{r.model} (ID {fmt(r.id_test)}, OOD {fmt(r.ood_mean)})" for r in front)
        sentences.append(
            f"{len(front)} of {len(placed)} models are on the ID-vs-OOD Pareto front (no other "
            f"model is at least as accurate on both ID test and OOD mean and more accurate on "
            f"one): {points}."
        )
    for criterion in CRITERIA:
        sentence = _best_sentence(rows, evidence, criterion)
        if sentence is not None:
            sentences.append(sentence)
    if sentences:
        sentences.append(
            "Numbers in brackets are 95% percentile bootstrap intervals (1,000 resamples of "
            "the examples); differences are the other model minus the best, on the same "
            "resampled examples."
        )
    return sentences
