"""Report tables and plot of test-time adaptation, from adapter records alone."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shiftlab.report.summary import mean_of, ood_splits
from shiftlab.report.tables import Table, bold_best, fmt


def _pairs(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("adapter") is not None:
            pairs[r["model"], r["adapter"]].append(r)
    models = list(dict.fromkeys(model for model, _ in pairs))
    return dict(sorted(pairs.items(), key=lambda item: models.index(item[0][0])))  # by model


def _accuracy_where(rows: list[dict[str, Any]], key: str, value: Any) -> float | None:
    """Mean accuracy of the records whose ``key`` is ``value``."""
    return mean_of([r["accuracy"] for r in rows if r.get(key) == value])


def _table(title: str, header: list[str], values: list[list[Any]], note: str = "") -> Table:
    bold: set[tuple[int, int]] = set()
    models = [row[0] for row in values]
    for model in dict.fromkeys(models):  # best adapter per model and column
        rows = [i for i, m in enumerate(models) if m == model]
        sub = [values[i] for i in rows]
        bold |= {(rows[i], j) for i, j in bold_best(sub, range(2, len(header)), lambda a, b: a > b)}
    return Table(title, header, [[fmt(v) for v in row] for row in values], note=note, bold=bold)


def adapter_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Accuracy of every (model, adapter) by OOD split, by corruption type, by severity."""
    pairs = _pairs(records)
    if not pairs:
        return []
    natural = ood_splits(records)
    kinds = list(dict.fromkeys(r["corruption"] for r in records if "corruption" in r))
    severities = sorted({r["severity"] for r in records if "severity" in r})
    by_split, by_kind, by_severity = [], [], []
    resets = 0
    for (model, adapter), rs in pairs.items():
        accuracy = {r["split"]: r["accuracy"] for r in rs}
        corrupted = [r for r in rs if "corruption" in r]
        resets += sum(r.get("resets", 0) for r in rs)
        row = [model, adapter, *[accuracy.get(s) for s in natural]]
        if kinds:
            row.append(mean_of([r["accuracy"] for r in corrupted]))
            by_kind.append(
                [model, adapter, *[_accuracy_where(corrupted, "corruption", k) for k in kinds]]
            )
            by_severity.append(
                [model, adapter, *[_accuracy_where(corrupted, "severity", v) for v in severities]]
            )
        by_split.append(row)
    header = ["model", "adapter", *natural] + (["corrupted (mean)"] if kinds else [])
    note = f"Best adapter per model in bold. The collapse guard reset adapters {resets} times."
    tables = [_table("Test-time adaptation: accuracy by OOD split", header, by_split, note)]
    if kinds:
        tables.append(
            _table(
                "Test-time adaptation: corrupted accuracy by corruption",
                ["model", "adapter", *kinds],
                by_kind,
                "Mean over severities.",
            )
        )
        tables.append(
            _table(
                "Test-time adaptation: corrupted accuracy by severity",
                ["model", "adapter", *map(str, severities)],
                by_severity,
                "Mean over corruptions.",
            )
        )
    return tables


def severity_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """model -> adapter -> [(severity, mean corrupted accuracy)], for the plot."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)
    for (model, adapter), rs in _pairs(records).items():
        levels = sorted({r["severity"] for r in rs if "severity" in r})
        if levels:
            curves[model][adapter] = [(v, _accuracy_where(rs, "severity", v)) for v in levels]
    return dict(curves)
