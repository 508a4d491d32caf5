"""Tables of the report, computed from records alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftlab.evaluate.robustness import Link, Trend, effective_robustness, fit_trend


@dataclass
class ModelRow:
    """One predictor's headline numbers: ID val/test and OOD accuracy, F1 and ECE."""

    model: str
    recipe: str
    params: dict[str, Any]
    id_val: float | None
    id_test: float | None
    ood_mean: float | None
    ood: dict[str, float] = field(default_factory=dict)
    corrupted_mean: float | None = None
    ece_id: float | None = None
    ece_ood: float | None = None
    f1_id: float | None = None
    f1_ood: float | None = None
    worst_group_id: float | None = None
    worst_group_ood: float | None = None
    calibrated: bool = False
    reliability_id: dict[str, list[Any]] | None = None
    effective_robustness: float | None = None
    standard: bool = False  # an ID-trained standard model: a default effective-robustness baseline
    trend_point: bool = False  # an extra baseline point (a probe at another C, an earlier epoch)
    id_test_ci: list[float] | None = None  # 95% bootstrap interval of id_test (the record's ci)
    ood_mean_ci: list[float] | None = None  # of ood_mean (report.decision.add_intervals)


def mean_of(values: list[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def ood_splits(records: list[dict[str, Any]]) -> list[str]:
    """Names of natural (uncorrupted) OOD splits of the run's task, in first-appearance order
    (capabilities, other tasks, are reported apart)."""
    return list(
        dict.fromkeys(
            r["split"]
            for r in records
            if r["role"] == "ood"
            and "corruption" not in r
            and not r.get("capability")
            and "attack" not in r
        )
    )


def model_rows(records: list[dict[str, Any]], adapter: str | None = None) -> list[ModelRow]:
    """One row per model (in first-appearance order) for records of ``adapter``."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        # Conjugate-prompted scores and capabilities (other tasks) have tables of their own.
        if record.get("adapter") == adapter and not record.get("conjugate"):
            by_model.setdefault(record["model"], []).append(record)
    rows = []
    for model, rs in by_model.items():
        # a backdoor's triggered split has its own table (attack success rate)
        rs = [r for r in rs if not r.get("capability") and "accuracy" in r and "attack" not in r]
        if not rs:
            continue
        role = {r["role"]: r for r in rs if r["role"] != "ood"}
        corrupted = [r for r in rs if r["role"] == "ood" and "corruption" in r]
        # OOD means average natural shifts; corrupted splits have a mean of their own (and
        # stand in for OOD when a benchmark has no natural shift).
        ood = [r for r in rs if r["role"] == "ood" and "corruption" not in r] or corrupted
        rows.append(
            ModelRow(
                model=model,
                recipe=rs[0]["recipe"],
                params=rs[0].get("params", {}),
                id_val=role.get("id_val", {}).get("accuracy"),
                id_test=role.get("id_test", {}).get("accuracy"),
                ood_mean=mean_of([r["accuracy"] for r in ood]),
                ood={r["split"]: r["accuracy"] for r in ood if "corruption" not in r},
                corrupted_mean=mean_of([r["accuracy"] for r in corrupted]),
                ece_id=role.get("id_test", {}).get("ece"),
                ece_ood=mean_of([r["ece"] for r in ood]),
                f1_id=role.get("id_test", {}).get("macro_f1"),
                f1_ood=mean_of([r["macro_f1"] for r in ood]),
                worst_group_id=role.get("id_test", {}).get("worst_group_accuracy"),
                worst_group_ood=mean_of([r.get("worst_group_accuracy") for r in ood]),
                calibrated=bool(rs[0].get("calibrated", False)),
                reliability_id=role.get("id_test", {}).get("reliability"),
                standard=bool(rs[0].get("standard", False)),
                trend_point=bool(rs[0].get("trend_point", False)),
                id_test_ci=(role.get("id_test", {}).get("ci") or {}).get("accuracy"),
            )
        )
    return rows


def wise_curves(rows: list[ModelRow]) -> dict[str, list[ModelRow]]:
    """WiSE-FT predictors grouped by entry name, sorted by alpha."""
    curves: dict[str, list[ModelRow]] = {}
    for row in rows:
        if row.recipe == "wise_ft" and "alpha" in row.params and "selection" not in row.params:
            curves.setdefault(row.model.split("[", 1)[0], []).append(row)
    return {k: sorted(v, key=lambda r: r.params["alpha"]) for k, v in curves.items()}


def is_baseline(row: ModelRow, baselines: list[str] | None) -> bool:
    """Whether ``row`` defines the ID-OOD trend: named, by model or recipe, in ``baselines``;
    by default every standard model trained on the ID data (records with ``standard: true``:
    linear probes, full fine-tuning, ERM, soup ingredients, and their extra trend points), as
    Taori et al.'s line fit; never zero-shot, FLYP, WiSE-FT, ensembles or adapted models unless
    named. Calibrated twins never count (their accuracies are their twins')."""
    if row.calibrated:
        return False
    if baselines is None:
        return row.standard
    name = row.model.split("[", 1)[0]
    return row.model in baselines or name in baselines or row.recipe in baselines


def add_effective_robustness(
    rows: list[ModelRow], baselines: list[str] | None, kind: Link
) -> Trend | None:
    """Fit the baselines' trend (link space) and set every row's effective robustness; the
    trend (with its number of points and R^2) or None."""
    points = [r for r in rows if is_baseline(r, baselines) and None not in (r.id_test, r.ood_mean)]
    trend = fit_trend([r.id_test for r in points], [r.ood_mean for r in points], kind)
    if trend is not None:
        for row in rows:
            if row.id_test is not None and row.ood_mean is not None:
                row.effective_robustness = effective_robustness(row.id_test, row.ood_mean, trend)
    return trend
