"""The report's language-model tables: capabilities (tasks never trained on) and conjugate
prompting (what a prompt transform recovers of the pretrained model's behaviour)."""

from __future__ import annotations

from typing import Any

from shiftlab.evaluate.metrics import score_of
from shiftlab.report.tables import Table, fmt


def capability_table(records: list[dict[str, Any]]) -> Table | None:
    """Each model's score on each capability (another task), beside its ID test score."""
    plain = [r for r in records if r.get("adapter") is None and not r.get("conjugate")]
    capabilities = list(dict.fromkeys(r["split"] for r in plain if r.get("capability")))
    if not capabilities:
        return None
    models = list(dict.fromkeys(r["model"] for r in plain))
    index = {(r["model"], r["split"]): r for r in plain}
    values = [
        [
            m,
            *[
                score_of(index[m, s]) if (m, s) in index else None
                for s in ["id_test", *capabilities]
            ],
        ]
        for m in models
    ]
    return Table(
        "Capabilities: tasks the model never trained on",
        ["model", "ID test", *capabilities],
        [[fmt(v) for v in row] for row in values],
        note="Accuracy (label words scored) or ROUGE-L F1 (generation) of each model on other "
        "tasks, to see what fine-tuning on the ID task costs elsewhere (Kotha et al. 2024).",
    )


def conjugate_table(records: list[dict[str, Any]], pretrained: str = "zero_shot") -> Table | None:
    """Per conjugate entry, model and split: pretrained, fine-tuned, fine-tuned with the
    transform, and the recovered fraction (ft+P - ft) / (pre - ft)."""
    plain = {
        (r["model"], r["split"]): score_of(r)
        for r in records
        if r.get("adapter") is None and not r.get("conjugate")
    }
    rows = []
    for r in records:
        if not r.get("conjugate") or r["model"] == pretrained or r["role"] == "id_val":
            continue
        pre = plain.get((pretrained, r["split"]))
        ft = plain.get((r["model"], r["split"]))
        transformed = score_of(r)
        recovered = None
        if None not in (pre, ft, transformed) and abs(pre - ft) > 1e-9:
            recovered = (transformed - ft) / (pre - ft)
        rows.append([r["conjugate"], r["model"], r["split"], pre, ft, transformed, recovered])
    if not rows:
        return None
    return Table(
        "Conjugate prompting",
        ["transform", "model", "split", "pretrained", "fine-tuned", "fine-tuned + P", "recovered"],
        [[fmt(v) for v in row] for row in rows],
        note="P maps each prompt (and label word) before the model reads it; recovered = "
        "(fine-tuned + P - fine-tuned) / (pretrained - fine-tuned): 1 recovers the pretrained "
        "model's score, 0 nothing, negative makes it worse (meaningless when the two are close).",
    )


def generation_table(records: list[dict[str, Any]]) -> Table | None:
    """Generation tasks (answers by greedy decoding): each model's exact match and ROUGE-L F1
    on each split."""
    plain = [
        r
        for r in records
        if r.get("adapter") is None
        and not r.get("conjugate")
        and "rouge_l" in r
        and "accuracy" not in r
    ]
    if not plain:
        return None
    splits = list(dict.fromkeys(r["split"] for r in plain))
    models = list(dict.fromkeys(r["model"] for r in plain))
    index = {(r["model"], r["split"]): r for r in plain}

    def cell(model: str, split: str) -> str:
        record = index.get((model, split))
        if record is None:
            return "—"
        return f"{fmt(record.get('exact_match'))} / {fmt(record['rouge_l'])}"

    return Table(
        "Generation: exact match / ROUGE-L F1",
        ["model", *splits],
        [[m, *[cell(m, s) for s in splits]] for m in models],
        note="Greedy answers scored against the reference answers: exact match (stripped, "
        "lower-cased, whitespace collapsed) and ROUGE-L F1 (rouge-score).",
    )
