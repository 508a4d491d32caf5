"""The report's curation section, from the run directory alone: what each curated training set
changed ID and OOD, the pruning curve, how well the scores find true label flips, the most
suspicious examples, and whether likely test-label errors change the ranking of models."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from shiftlab.report.summary import ModelRow, model_rows
from shiftlab.report.tables import Table, fmt, fmt_interval


def _curated(rows: list[ModelRow], records: list[dict[str, Any]]):
    """(curated row, its uncurated twin, the record's curation info) for every curated model."""
    info = {r["model"]: r["curation"] for r in records if r.get("curation")}
    by_name = {r.model: r for r in rows}
    for row in rows:
        if row.model in info:
            base = by_name.get(row.model.split("/", 1)[1])
            yield row, base, info[row.model]


def delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def curated_table(rows: list[ModelRow], records: list[dict[str, Any]]) -> Table | None:
    """Per curated set and retrained recipe: ID test and OOD mean accuracy, and the change."""
    values = []
    for row, base, info in _curated(rows, records):
        values.append(
            [
                row.model,
                info["n_train"],
                info["n_removed"] + info.get("n_relabeled", 0),
                fmt_interval(row.id_test, row.id_test_ci),
                delta(row.id_test, base.id_test if base else None),
                fmt_interval(row.ood_mean, row.ood_mean_ci),
                delta(row.ood_mean, base.ood_mean if base else None),
            ]
        )
    if not values:
        return None
    return Table(
        "Curation: retrained on curated training sets",
        [
            "model",
            "n train",
            "removed / relabelled",
            "ID test acc",
            "Δ ID",
            "OOD mean acc",
            "Δ OOD",
        ],
        [
            [v if isinstance(v, str) else str(v) if isinstance(v, int) else fmt(v) for v in row]
            for row in values
        ],
        note="Δ: change against the same recipe trained on the uncurated training set (same "
        "seed, split and options); [low, high]: 95% bootstrap interval over examples. "
        "Label-noise benchmarks are scored on clean labels.",
    )


Point = tuple[float, float, float, list[float] | None, list[float] | None]


def pruning_curves(
    rows: list[ModelRow], records: list[dict[str, Any]]
) -> dict[str, dict[str, list[Point]]]:
    """recipe -> series -> [(fraction kept, ID test, OOD mean, ID test interval, OOD mean
    interval)], the uncurated model at 1.

    A series per prune score (``el2n``, ``random``, ...) and per selection entry (``kcenter``,
    ``d2``, or the entry's name)."""
    curves: dict[str, dict[str, list[Point]]] = {}
    for row, base, info in _curated(rows, records):
        if info["action"] not in ("prune", "kcenter", "d2") or base is None:
            continue
        label, recipe = row.model.split("/", 1)
        series = info["params"]["by"] if info["action"] == "prune" else label.rsplit("_", 1)[0]
        line = curves.setdefault(recipe, {}).setdefault(series, [])
        line.append((info["params"]["keep"], row.id_test, row.ood_mean, *intervals(row)))
        if not any(p[0] == 1.0 for p in line):
            line.append((1.0, base.id_test, base.ood_mean, *intervals(base)))
    return {r: {b: sorted(v, key=lambda p: p[0]) for b, v in c.items()} for r, c in curves.items()}


def intervals(row: ModelRow) -> tuple[list[float] | None, list[float] | None]:
    """A row's ID test and OOD mean bootstrap intervals (None where not computed)."""
    return row.id_test_ci, row.ood_mean_ci


def detection_table(summary: dict[str, Any]) -> Table | None:
    """How each score finds the true flips (label-noise benchmarks only)."""
    if "true_flips" not in summary:
        return None
    values = []
    for name, item in summary["scores"].items():
        found = item.get("detection", {})
        values.append(
            [
                name,
                found.get("n_flagged"),
                found.get("precision"),
                found.get("recall"),
                found.get("f1"),
                item.get("auroc_true_flips"),
            ]
        )
    return Table(
        "Curation: finding the true label flips",
        ["score", "flagged", "precision", "recall", "F1", "AUROC"],
        [[fmt(v) for v in row] for row in values],
        note=f"{summary['true_flips']} of {summary['n_train']} training labels are wrong (known "
        "from the benchmark's clean labels). Precision / recall / F1 of the examples a score "
        "flags; AUROC of the score as a ranking of the flips (0.5: chance).",
    )


def suspicious_table(folder: Path, limit: int = 10) -> Table | None:
    """The flagged examples confident learning is surest about, to read by eye."""
    path = folder / "label_issues.csv"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["flagged"] == "1"]
    rows.sort(key=lambda r: float(r["score"]))
    if not rows:
        return None
    truth = any(r["true_label"] for r in rows)
    cells = []
    for r in rows[:limit]:
        text = r["input"] if len(r["input"]) <= 160 else r["input"][:157] + "..."
        cells.append(
            [r["example_id"], text, r["given_label"], r["suggested_label"]]
            + ([r["true_label"]] if truth else [])
            + [fmt(float(r["score"]))]
        )
    return Table(
        f"Curation: most likely label errors ({len(rows)} flagged)",
        ["example", "input", "given", "suggested"] + (["true"] if truth else []) + ["quality"],
        cells,
        note="Lowest label quality first (cleanlab self-confidence on out-of-sample "
        "probabilities). Every score of every training example: curation/*.csv.",
    )


def _accuracy(run_dir: Path, record: dict[str, Any], drop: set[str]) -> tuple[float, float]:
    from shiftlab.predictions import split_predictions

    ids, labels, true, logits = split_predictions(run_dir, record)
    target = labels if true is None else true
    correct = logits.argmax(axis=1) == target
    keep = np.array([i not in drop for i in ids])
    return float(correct.mean()), float(correct[keep].mean()) if keep.any() else float("nan")


def test_errors_table(run_dir: Path, records: list[dict[str, Any]]) -> Table | None:
    """Per evaluation split: flagged examples, and the ranking of models with them set aside."""
    path = run_dir / "curation" / "test_label_issues.csv"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        flagged: dict[str, set[str]] = {}
        for r in csv.DictReader(handle):
            flagged.setdefault(r["split"], set()).add(r["example_id"])
    values = []
    for split, ids in flagged.items():
        scored = [
            r
            for r in records
            if r["split"] == split
            and r.get("adapter") is None
            and not r.get("trend_point")
            and not r.get("calibrated")
            and r.get("predictions")
        ]
        if len(scored) < 2:
            continue
        pairs = [(r["model"], *_accuracy(run_dir, r, ids)) for r in scored]
        all_acc = [p[1] for p in pairs]
        clean_acc = [p[2] for p in pairs]
        tau = kendalltau(all_acc, clean_acc).statistic
        best_all = max(pairs, key=lambda p: p[1])[0]
        best_clean = max(pairs, key=lambda p: p[2])[0]
        values.append(
            [
                split,
                scored[0]["n"],
                len(ids),
                best_all,
                best_clean,
                None if np.isnan(tau) else float(tau),
            ]
        )
    if not values:
        return None
    return Table(
        "Curation: likely label errors in the evaluation splits",
        [
            "split",
            "n",
            "flagged",
            "best model, all",
            "best model, flagged set aside",
            "Kendall tau",
        ],
        [[fmt(v) if isinstance(v, float) else str(v) for v in row] for row in values],
        note="Flagged by confident learning on a linear probe trained on the ID training split "
        "(it never saw these examples). Kendall tau compares the ranking of models by accuracy "
        "with and without the flagged examples (1: the same order). List: "
        "curation/test_label_issues.csv.",
    )


def curation_section(
    run_dir: Path, records: list[dict[str, Any]], rows: list[ModelRow] | None = None
) -> tuple[list[Table], Any]:
    """The section's tables and its pruning curves (for the plot); ``rows``: the report's, with
    their bootstrap intervals (default: rows made from ``records``, the record's ID test
    interval only)."""
    folder = run_dir / "curation"
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return [], {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    rows = model_rows(records) if rows is None else rows
    tables = [
        curated_table(rows, records),
        detection_table(summary),
        suspicious_table(folder),
        test_errors_table(run_dir, records),
    ]
    return [t for t in tables if t is not None], pruning_curves(rows, records)
