"""What to deploy: intervals, paired comparisons and a plain summary, from stored predictions.

Everything here reads the per-example predictions each record names
(:func:`shiftlab.predictions.split_predictions`) and resamples them as the records' intervals
were resampled (:mod:`shiftlab.evaluate.intervals`: a split's bootstrap seed comes from the run
seed and the split's name, so every model on a split is resampled on the same examples):

- the OOD mean's interval: each OOD split resampled with its own seeded indices, the accuracies
  averaged across splits per replicate, then the percentile interval;
- paired comparisons against a reference model: the paired bootstrap of the accuracy difference
  and exact McNemar tests (:mod:`shiftlab.evaluate.significance`);
- the "What to deploy" choices (:func:`deployment_choices`, one row of the report's table
  each): the best model by each criterion with the models statistically indistinguishable from
  it (the 95% paired bootstrap interval of the difference includes 0), and the ID-vs-OOD Pareto
  front (a model is on it when no other is at least as accurate on both ID test and OOD mean and
  more accurate on one; the ID-vs-OOD plane of Taori et al. 2020 and Wortsman et al. 2022,
  WiSE-FT); :func:`deploy_commands` spells out the export and predict commands of a choice.

A report across runs (``shiftlab compare``) aligns each split's examples by id to the first run's
order and resamples with the first run's seed, so models of different runs are paired too.
Records without stored predictions (runs of older versions) still get their records' intervals;
they are left out of what needs per-example outcomes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftlab.evaluate.intervals import (
    percentile_interval,
)
from shiftlab.evaluate.significance import difference_interval, mcnemar
from shiftlab.report.outcomes import Evidence
from shiftlab.report.summary import ModelRow
from shiftlab.report.tables import Table, fmt, fmt_difference, fmt_interval, fmt_pvalue
from shiftlab.store import safe_name

DEFAULT_REFERENCE = "full_ft"


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


@dataclass
class Choice:
    """One row of the "What to deploy" table: a criterion, the model it picks, and the long
    form of the same (a bullet of the details below the table).

    ``key`` names the criterion (``id_test``, ``ood_mean``, ``worst_group_accuracy``, ``ece``
    or ``pareto``; the report links each to its detailed table). ``close`` and ``tested`` count
    the other models within noise of the choice and those with predictions to test; ``tested``
    is None where the choice itself has no stored predictions (nothing tested).
    """

    key: str
    criterion: str
    model: str
    value: str
    sentence: str
    row: ModelRow | None = None
    close: int = 0
    tested: int | None = None
    untested: int = 0

    @property
    def within_noise(self) -> str:
        """The table's cell: ``3 of 11`` (other models within noise, of those tested), ``—``
        for the Pareto front, ``not tested`` without stored predictions."""
        if self.key == "pareto":
            return "—"
        if self.tested is None:
            return "not tested"
        if self.tested == 0 and not self.untested:
            return "no other model"
        text = f"{self.close} of {self.tested}"
        return text + (f" ({self.untested} not tested)" if self.untested else "")


DEPLOY_NOTE = (
    "Numbers in brackets are 95% percentile bootstrap intervals (1,000 resamples of the "
    "examples); differences are the other model minus the best, on the same resampled examples."
)
WITHIN_NOISE_NOTE = (
    "Models within noise: the other models (of those with stored predictions) whose 95% paired "
    "bootstrap interval of the difference from the choice includes 0. [low, high]: 95% "
    "percentile bootstrap interval (1,000 resamples of the examples)."
)


def _best_choice(rows: list[ModelRow], evidence: Evidence, criterion: Criterion) -> Choice | None:
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
    choice = Choice(
        criterion.replicates,
        f"Best {criterion.label}",
        best.model,
        fmt_interval(value, ci),
        f"Best {criterion.label}: {best.model}, {fmt_interval(value, ci)}.",
        row=best,
    )
    if mine is None:
        choice.sentence += " (No per-example predictions stored: no paired tests.)"
        return choice
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
    choice.close, choice.untested = len(close), len(untested)
    choice.tested = len(scored) - 1 - len(untested)
    if close:
        choice.sentence += (
            " Statistically indistinguishable from it (95% paired bootstrap interval of the "
            f"difference includes 0): {', '.join(close)}."
        )
    elif len(scored) > 1:
        choice.sentence += (
            " Every other model differs from it significantly (paired bootstrap, 95%)."
        )
    if untested:
        choice.sentence += f" Not tested (no stored predictions): {', '.join(untested)}."
    return choice


def _pareto_choice(rows: list[ModelRow]) -> Choice | None:
    placed = [r for r in rows if r.id_test is not None and r.ood_mean is not None]
    if not placed:
        return None
    points = [(round(r.id_test, 12), round(r.ood_mean, 12)) for r in placed]
    front = [placed[i] for i in pareto_front(points)]
    front.sort(key=lambda r: (-r.id_test, -r.ood_mean))
    listed = "; ".join(f"{r.model} (ID {fmt(r.id_test)}, OOD {fmt(r.ood_mean)})" for r in front)
    names = ", ".join(r.model for r in front[:3])
    if len(front) > 3:
        names += f", +{len(front) - 3} more"
    value = (
        f"ID {fmt(front[0].id_test)}, OOD {fmt(front[0].ood_mean)}"
        if len(front) == 1
        else f"{len(front)} of {len(placed)} models"
    )
    return Choice(
        "pareto",
        "ID-vs-OOD Pareto front",
        names,
        value,
        f"{len(front)} of {len(placed)} models are on the ID-vs-OOD Pareto front (no other "
        f"model is at least as accurate on both ID test and OOD mean and more accurate on "
        f"one): {listed}.",
        row=front[0] if len(front) == 1 else None,
    )


def deployment_choices(rows: list[ModelRow], evidence: Evidence) -> list[Choice]:
    """The "What to deploy" table's rows: the best model by ID test accuracy, mean OOD
    accuracy, worst-group accuracy (when there are groups) and calibration, each with the models
    statistically indistinguishable from it, then the ID-vs-OOD Pareto front."""
    choices = [_best_choice(rows, evidence, criterion) for criterion in CRITERIA]
    choices.append(_pareto_choice(rows))
    return [c for c in choices if c is not None]


def recommended(choices: Sequence[Choice]) -> Choice | None:
    """The choice the report gives deploy commands for: the best mean OOD accuracy (the model
    to deploy under shift), else the best ID test accuracy, else the first with one model."""
    by_key = {c.key: c for c in choices if c.row is not None}
    return by_key.get("ood_mean") or by_key.get("id_test") or next(iter(by_key.values()), None)


def deploy_commands(
    model: str, records: Sequence[dict[str, Any]], run_dir: Path | None
) -> list[str]:
    """``shiftlab export`` and ``shiftlab predict`` command lines for ``model``, shell-quoted.

    A report across runs names the model's own run directory and its name there (the records'
    ``run_dir`` / ``run_model``); one run's report names ``run_dir`` (``RUN_DIR`` when unknown).
    """
    record = next((r for r in records if r["model"] == model), {})
    where = record.get("run_dir") or (None if run_dir is None else str(Path(run_dir).resolve()))
    local = record.get("run_model", model)
    out = f"deploy/{safe_name(local)}"
    return [
        f"shiftlab export {shlex.quote(where) if where else 'RUN_DIR'} {shlex.quote(local)} "
        f"--out {shlex.quote(out)}",
        f"shiftlab predict {shlex.quote(out)} --input FILE --out predictions.csv",
    ]


def deployment_summary(rows: list[ModelRow], evidence: Evidence) -> list[str]:
    """The long form of :func:`deployment_choices`, one plain sentence per choice, then what
    the brackets mean (no sentences without choices)."""
    sentences = [c.sentence for c in deployment_choices(rows, evidence)]
    return [*sentences, DEPLOY_NOTE] if sentences else []
