"""Mean and standard deviation over seeds (a run with ``seeds:``, see :mod:`shiftlab.seeds`):
a table, and the points of the ID-vs-OOD plot with error bars."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftlab.report.summary import ModelRow
from shiftlab.report.tables import Table, fmt
from shiftlab.seeds import base_name


@dataclass
class SeedRow:
    """A model's numbers over its seeds: means, and sample standard deviations (ddof 1)."""

    model: str
    seeds: list[int]
    id_test: float | None
    id_test_std: float | None
    ood_mean: float | None
    ood_mean_std: float | None
    effective_robustness: float | None = None
    effective_robustness_std: float | None = None
    ood: dict[str, tuple[float, float]] = field(default_factory=dict)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    kept = [v for v in values if v is not None]
    if len(kept) != len(values) or not kept:
        return None, None
    return float(np.mean(kept)), float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0


def seed_rows(rows: list[ModelRow], records: list[dict[str, Any]]) -> list[SeedRow]:
    """One row per model repeated over two or more seeds (records with ``seed_of``), in order."""
    seed_of = {r["model"]: (r["seed_of"], r["seed"]) for r in records if "seed_of" in r}
    groups: dict[str, list[tuple[int, ModelRow]]] = {}
    for row in rows:
        if row.model in seed_of and not row.trend_point:
            base, seed = seed_of[row.model]
            groups.setdefault(base, []).append((seed, row))
    out = []
    for base, members in groups.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: m[0])
        items = [m[1] for m in members]
        splits = [s for s in items[0].ood if all(s in r.ood for r in items)]
        out.append(
            SeedRow(
                base,
                [m[0] for m in members],
                *_mean_std([r.id_test for r in items]),
                *_mean_std([r.ood_mean for r in items]),
                *_mean_std([r.effective_robustness for r in items]),
                ood={s: _mean_std([r.ood[s] for r in items]) for s in splits},  # type: ignore[misc]
            )
        )
    return out


def _pm(mean: float | None, std: float | None) -> str:
    return "–" if mean is None else f"{fmt(mean)} ± {fmt(std)}"


def seed_table(rows: list[SeedRow]) -> Table | None:
    """Mean ± standard deviation over seeds of every repeated model."""
    if not rows:
        return None
    splits = list(dict.fromkeys(s for r in rows for s in r.ood))
    er = any(r.effective_robustness is not None for r in rows)
    header = ["model", "seeds", "ID test", "OOD mean", *(["eff. robustness"] if er else [])]
    body = []
    for r in rows:
        cells = [r.model, ", ".join(map(str, r.seeds)), _pm(r.id_test, r.id_test_std)]
        cells.append(_pm(r.ood_mean, r.ood_mean_std))
        if er:
            cells.append(_pm(r.effective_robustness, r.effective_robustness_std))
        body.append(cells + [_pm(*r.ood[s]) if s in r.ood else "–" for s in splits])
    return Table(
        "Over seeds",
        header + splits,
        body,
        note="Mean ± sample standard deviation over the seeds of `seeds:` (each seed retrains "
        "the model: data order, initialisation, dropout).",
    )


def plotted(rows: list[ModelRow], seeds: list[SeedRow]) -> tuple[list[ModelRow], dict]:
    """The rows of the ID-vs-OOD plot with each repeated model's seeds replaced by one point at
    their means, and ``model -> (ID std, OOD std)`` for its error bars."""
    by_base = {s.model: s for s in seeds}
    out: list[ModelRow] = []
    spread: dict[str, tuple[float, float]] = {}
    for row in rows:
        base = base_name(row.model)
        mean = by_base.get(base)
        if mean is None or row.trend_point:
            out.append(row)
        elif base not in spread and mean.id_test is not None and mean.ood_mean is not None:
            out.append(
                dataclasses.replace(row, model=base, id_test=mean.id_test, ood_mean=mean.ood_mean)
            )
            spread[base] = (mean.id_test_std or 0.0, mean.ood_mean_std or 0.0)
    return out, spread
