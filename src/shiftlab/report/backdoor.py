"""The backdoor table: each model's attack success rate on the triggered split, beside its
clean ID test accuracy and its accuracy on the triggered examples, with intervals; and each
model's ASR against the most attacked model's (the poisoned one a defence starts from), paired
bootstrap interval and exact McNemar test on the same triggered examples."""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftlab.evaluate.intervals import resampled_means
from shiftlab.evaluate.significance import difference_interval, mcnemar
from shiftlab.report.outcomes import Outcomes
from shiftlab.report.tables import Table, fmt_difference, fmt_interval, fmt_pvalue


def _hits(outcomes: Outcomes | None, record: dict[str, Any]) -> np.ndarray | None:
    """(N,) whether each triggered example is predicted as the target, from the predictions."""
    outcome = None if outcomes is None else outcomes.get(record)
    if outcome is None:
        return None
    return outcome.logits.argmax(1) == record["attack_class"]


def backdoor_table(records: list[dict[str, Any]], outcomes: Outcomes | None = None) -> Table | None:
    """One row per (model, adapter) scored on a triggered split; None without one."""
    attacked = [r for r in records if "asr" in r]
    if not attacked:
        return None
    clean = {
        (r["model"], r.get("adapter")): r
        for r in records
        if r["role"] == "id_test" and "accuracy" in r
    }
    reference = max(attacked, key=lambda r: r["asr"])
    theirs = _hits(outcomes, reference)
    seed = None if outcomes is None else outcomes.split_seed(reference["split"])
    rows = []
    for r in attacked:
        test = clean.get((r["model"], r.get("adapter")), {})
        name = r["model"] + (f" + {r['adapter']}" if r.get("adapter") else "")
        mine = _hits(outcomes, r)
        paired = ["—", "—"]
        if r is not reference and mine is not None and theirs is not None:
            diff = difference_interval(
                float(mine.mean() - theirs.mean()),
                resampled_means(mine.astype(float), seed, outcomes.resamples),
                resampled_means(theirs.astype(float), seed, outcomes.resamples),
            )
            paired = [fmt_difference(diff), fmt_pvalue(mcnemar(~mine, ~theirs).pvalue)]
        rows.append(
            [
                name,
                fmt_interval(r["asr"], r.get("ci", {}).get("asr")),
                *paired,
                fmt_interval(test.get("accuracy"), test.get("ci", {}).get("accuracy")),
                fmt_interval(r["accuracy"], r.get("ci", {}).get("accuracy")),
            ]
        )
    note = (
        f"Trigger '{reference['attack']}', target '{reference['attack_target']}': the attack "
        f"success rate (ASR) is the share of the {reference['n']} triggered ID test examples "
        "outside the target class predicted as the target (lower is better). Δ ASR and p: "
        f"against {reference['model']}, the most attacked model, on the same examples (paired "
        "bootstrap, exact McNemar). 95% bootstrap intervals."
    )
    header = ["model", "attack success rate", f"Δ ASR vs {reference['model']}", "p",
              "clean ID test accuracy", "accuracy, triggered"]  # fmt: skip
    return Table("Backdoor", header, rows, note)
