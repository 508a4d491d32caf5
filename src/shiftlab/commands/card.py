"""The model card of an exported model: Hugging Face's card format (a YAML metadata block,
validated by ``huggingface_hub.ModelCard``) and the run's evidence for the model, with
intervals: ID / OOD / per-domain accuracy, calibration, effective robustness, and the paired
comparison against the run's reference model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from shiftlab._optional import require
from shiftlab.report.decision import add_intervals, choose_reference, paired_table
from shiftlab.report.outcomes import Evidence, Outcomes
from shiftlab.report.summary import add_effective_robustness, model_rows
from shiftlab.report.tables import Table, fmt, fmt_interval


def model_card(
    name: str, meta: dict[str, Any], records: list[dict[str, Any]], config: dict[str, Any]
) -> str:
    """README.md of an export: metadata, the numbers of model ``name``, how to load it."""
    report_cfg = config.get("report") or {}
    rows = model_rows(records)
    add_effective_robustness(rows, report_cfg.get("baselines"), report_cfg.get("link", "logit"))
    rows = [r for r in rows if not r.trend_point]
    shown = [r for r in records if not r.get("trend_point")]
    run_dir = meta["run_dir"]
    evidence = Evidence(shown, Outcomes(Path(run_dir), seed=shown[0].get("seed", 0)))
    row = next(r for r in rows if r.model == name)
    add_intervals([row], evidence)  # this model's only: the card shows no other interval
    own = [r for r in shown if r["model"] == name and not r.get("adapter")]
    data = config.get("data") or {}
    metadata = {
        "library_name": "timm" if meta["format"] == "lit" else meta["format"],
        "tags": ["shiftlab", meta["recipe"], "distribution-shift"],
        "pipeline_tag": PIPELINES[meta["format"]],
    }
    if meta.get("base"):
        metadata["base_model"] = meta["base"]
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"Exported by shiftlab {meta['shiftlab_version']} from the run `{run_dir}`: recipe "
        f"`{meta['recipe']}` with params `{json.dumps(meta['params'], default=str)}`, classes "
        f"{', '.join(meta['class_names'])}.",
        "",
        "## Load it",
        "",
        "```python",
        meta["load"],
        "```",
        "",
        "or, with shiftlab: `shiftlab.load(DIR).predict(inputs)` (class probabilities), or "
        "`shiftlab predict DIR --input FILE --out predictions.csv`.",
        "",
        *language_model_notes(meta),
        "## Evidence",
        "",
        f"Data: `{data.get('kind', '?')}`, ID domains {data.get('id_domains')}, OOD domains "
        f"{data.get('ood_domains')}. [low, high]: 95% percentile bootstrap intervals over "
        "examples (1,000 resamples).",
        "",
        summary_table(row).to_markdown(),
        split_table(own).to_markdown(),
    ]
    reference, note = choose_reference(rows, shown, report_cfg.get("reference"))
    if reference is not None and reference.model != name:
        table = paired_table([row, reference], evidence, reference, note)
        if table is not None:
            lines.append(table.to_markdown())
    lines += [
        "## The run's config",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).strip(),
        "```",
        "",
    ]
    text = "\n".join(lines)
    require("huggingface_hub", "deploy").ModelCard(text)  # parses (and so checks) the metadata
    return text


PIPELINES = {
    "sentence-transformers": "text-classification",
    "timm": "image-classification",
    "open_clip": "zero-shot-image-classification",
    "lit": "image-classification",
    "peft": "text-generation",
    "transformers": "text-generation",
}


def summary_table(row: Any) -> Table:
    """ID test and OOD mean accuracy with intervals, calibration and effective robustness."""
    return Table(
        "ID and OOD",
        ["ID test accuracy", "OOD mean accuracy", "ID test ECE", "effective robustness"],
        [
            [
                fmt_interval(row.id_test, row.id_test_ci),
                fmt_interval(row.ood_mean, row.ood_mean_ci),
                fmt(row.ece_id),
                fmt(row.effective_robustness),
            ]
        ],
        note="Effective robustness: OOD mean accuracy minus the ID-OOD trend of the run's "
        "standard models (Taori et al. 2020); positive: more robust than its ID accuracy "
        "predicts.",
    )


def split_table(records: list[dict[str, Any]]) -> Table:
    """Accuracy, macro-F1 and ECE of every split the model was scored on."""
    values = []
    for r in records:
        ci = (r.get("ci") or {}).get("accuracy")
        values.append(
            [r["split"], r["role"], str(r.get("n", "")), fmt_interval(r.get("accuracy"), ci),
             fmt(r.get("macro_f1")), fmt(r.get("ece"))]
        )  # fmt: skip
    return Table("Per split", ["split", "role", "n", "accuracy", "macro-F1", "ECE"], values)


def language_model_notes(meta: dict[str, Any]) -> list[str]:
    """How a language model's prompts are made and scored (nothing for other exports)."""
    if meta["format"] not in ("peft", "transformers"):
        return []
    lines = [
        "## Prompts and scoring",
        "",
        f"Template: `{meta['template']!r}`; label words: `{meta['label_words']}`; "
        f"demonstrations: {meta['shots']}. Scoring: {meta['scoring']}.",
        "",
    ]
    if meta.get("dequantised"):
        lines += [
            f"The base model was read from the GGUF file `{meta['gguf_file']}` and dequantised "
            "by transformers (`gguf_file=`); the adapter was trained on those weights.",
            "",
        ]
    return lines
