"""The report's unlearning section: every method beside the original and the retrained model,
and which one lands closest to retraining."""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftlab.report.summary import mean_of
from shiftlab.report.tables import Table, fmt, fmt_interval

CLASSIFIER = ("forget_accuracy", "retain_accuracy", "mia_auroc_loss")
LANGUAGE = ("verbmem", "knowmem_forget", "knowmem_retain", "privleak", "perplexity_holdout")


def within_noise(row: dict[str, Any], reference: dict[str, Any], metric: str) -> bool:
    """Whether a model's measure is indistinguishable from retraining's: PrivLeak's paired
    interval holds 0 (retraining's own value); another measure's interval holds retraining's
    value."""
    ci = (row.get("ci") or {}).get(metric)
    if ci is None or row is reference:
        return False
    target = 0.0 if metric.startswith("privleak") else reference.get(metric)
    return target is not None and ci[0] <= target <= ci[1]


def unlearning_table(records: list[dict[str, Any]]) -> Table | None:
    """One row per model of the unlearning stage (original, retrained, each method), every
    measure with its 95% interval; ``≈`` marks a measure within noise of retraining's."""
    summaries = [r for r in records if r.get("role") == "unlearn"]
    if not summaries:
        return None
    language = any("verbmem" in r for r in summaries)
    metrics = LANGUAGE if language else CLASSIFIER
    plain = [r for r in records if r.get("adapter") is None and "accuracy" in r]
    rows = []
    for summary in summaries:
        mine = [r for r in plain if r["model"] == summary["model"]]
        id_test = next((r["accuracy"] for r in mine if r["role"] == "id_test"), None)
        ood = mean_of(
            [
                r["accuracy"]
                for r in mine
                if r["role"] == "ood" and not r.get("capability") and "attack" not in r
            ]
        )
        method = summary["unlearn"]["method"]
        rows.append(
            {
                "method": method,
                "name": summary["unlearn"].get("name", method),
                "model": summary["model"],
                **{m: summary.get(m) for m in metrics},
                "id_test": None if language else id_test,
                "ood_mean": None if language else ood,
                "seconds": summary.get("seconds"),
                "ci": summary.get("ci") or {},
            }
        )
    columns = [*metrics, *([] if language else ["id_test", "ood_mean"])]
    reference = next((r for r in rows if r["method"] == "retrain"), None)
    closest, tied = None, []
    if reference is not None:
        for row in rows:
            gaps = [
                abs(row[c] - reference[c]) / (100 if c == "privleak" else 1)
                for c in columns
                if c != "perplexity_holdout" and None not in (row[c], reference[c])
            ]
            row["distance"] = float(np.mean(gaps)) if gaps else None
            row["noise"] = [c for c in metrics if within_noise(row, reference, c)]
        candidates = [r for r in rows if r["method"] not in ("retrain", "original")]
        scored = [r for r in candidates if r.get("distance") is not None]
        if scored:
            closest = min(scored, key=lambda r: r["distance"])
            measured = [c for c in metrics if c in closest["ci"]]
            tied = [r["name"] for r in scored if measured and set(measured) <= set(r["noise"])]

    def cell(row: dict[str, Any], column: str) -> str:
        text = fmt_interval(row[column], row["ci"].get(column))
        return text + (" ≈" if column in row.get("noise", ()) else "")

    def cost(row: dict[str, Any]) -> str:
        base = reference.get("seconds") if reference is not None else None
        if row["method"] == "original" or not base or row.get("seconds") is None:
            return "—"
        return f"{row['seconds'] / base:.2f}x"

    header = ["method", *columns, "distance to retraining", "seconds", "time / retraining"]
    cells = [
        [
            r["name"],
            *[cell(r, c) for c in columns],
            fmt(r.get("distance")),
            fmt(r["seconds"], 1),
            cost(r),
        ]
        for r in rows
    ]
    note = (
        "Every method starts from the original model and is judged against retraining without "
        "the forget set (the reference); brackets are 95% bootstrap intervals over the forget "
        "(and holdout) examples, and ≈ marks a measure within noise of retraining's (its "
        "interval holds retraining's value; PrivLeak's, paired with retraining's, holds 0). "
        "Distance: mean absolute gap to retraining over the columns before it (PrivLeak divided "
        "by 100, perplexity left out)."
    )
    if closest is not None:
        note += f" Closest to retraining: {closest['name']} ({closest['distance']:.3f})."
        if tied:
            note += f" Within noise of retraining on every measure: {', '.join(tied)}."
    if language:
        note += (
            " MUSE's measures: VerbMem and KnowMem are ROUGE-L F1; PrivLeak is 100 (AUC - "
            "AUC_retrain) / AUC_retrain of Min-K% (k 0.4) on forget against holdout texts: 0 for "
            "retraining, near -100 for a model that kept everything."
        )
    else:
        note += (
            " MIA AUROC: a loss-threshold membership attack on the forget set against unseen ID "
            "test examples (0.5: the forget set looks unseen)."
        )
    n = summaries[0].get("n")
    return Table(f"Unlearning {n} training examples", header, cells, note=note)


def membership_table(records: list[dict[str, Any]]) -> Table | None:
    """What membership scores tell of the original language model's training data."""
    original = next((r for r in records if r.get("membership_auroc")), None)
    if original is None:
        return None
    intervals = original.get("membership_auroc_ci") or {}
    cells = [
        [score, fmt_interval(auroc, intervals.get(score))]
        for score, auroc in original["membership_auroc"].items()
    ]
    note = (
        "AUROC of each membership score separating the texts the original model was trained "
        "on (forget and retain) from holdout texts it never saw (0.5: chance). The reference "
        "score's reference model is the pretrained backbone."
    )
    return Table(
        f"Membership of {original['model']}'s training data", ["score", "AUROC"], cells, note=note
    )
