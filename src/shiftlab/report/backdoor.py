"""The backdoor table: each model's attack success rate on the triggered split, beside its
clean ID test accuracy and its accuracy on the triggered examples, with intervals."""

from __future__ import annotations

from typing import Any

from shiftlab.report.tables import Table, fmt_interval


def backdoor_table(records: list[dict[str, Any]]) -> Table | None:
    """One row per (model, adapter) scored on a triggered split; None without one."""
    attacked = [r for r in records if "asr" in r]
    if not attacked:
        return None
    clean = {
        (r["model"], r.get("adapter")): r
        for r in records
        if r["role"] == "id_test" and "accuracy" in r
    }
    rows = []
    for r in attacked:
        test = clean.get((r["model"], r.get("adapter")), {})
        name = r["model"] + (f" + {r['adapter']}" if r.get("adapter") else "")
        rows.append(
            [
                name,
                fmt_interval(r["asr"], r.get("ci", {}).get("asr")),
                fmt_interval(test.get("accuracy"), test.get("ci", {}).get("accuracy")),
                fmt_interval(r["accuracy"], r.get("ci", {}).get("accuracy")),
            ]
        )
    first = attacked[0]
    note = (
        f"Trigger '{first['attack']}', target '{first['attack_target']}': the attack success "
        f"rate is the share of the {first['n']} triggered ID test examples outside the target "
        "class predicted as the target (lower is better); 95% bootstrap intervals."
    )
    header = ["model", "attack success rate", "clean ID test accuracy", "accuracy, triggered"]
    return Table("Backdoor", header, rows, note)
