"""The report's unlearning tables: distance to retraining, and the original model's membership."""

from __future__ import annotations

from shiftlab.report.unlearning import membership_table, unlearning_table


def summary(method: str, verbmem: float, privleak: float, **extra) -> dict:
    return {
        "model": method if method == "original" else f"unlearn.{method}/sft",
        "role": "unlearn",
        "split": "unlearning",
        "n": 4,
        "unlearn": {"method": method},
        "verbmem": verbmem,
        "knowmem_forget": verbmem,
        "knowmem_retain": 0.5,
        "privleak": privleak,
        "perplexity_holdout": 9.0,
        "seconds": 1.0,
        **extra,
    }


def test_closest_method_is_the_smallest_mean_gap_to_retraining() -> None:
    records = [
        summary("original", 0.9, -80.0),
        summary("retrain", 0.2, 0.0),
        summary("npo", 0.3, -10.0),  # gaps 0.1, 0.1, 0, 0.1: mean 0.075
        summary("rmu", 0.2, -50.0),  # gaps 0, 0, 0, 0.5: mean 0.125
    ]
    table = unlearning_table(records)
    assert "Closest to retraining: npo (0.075)" in table.note


def test_membership_table_lists_the_original_models_aurocs() -> None:
    aurocs = {"loss": 0.75, "zlib": 0.625, "min_k": 1.0}
    records = [summary("original", 0.9, -80.0, membership_auroc=aurocs), summary("retrain", 0, 0)]
    table = membership_table(records)
    assert [row[0] for row in table.rows] == ["loss", "zlib", "min_k"]
    assert "original" in table.title
    assert membership_table(records[1:]) is None
