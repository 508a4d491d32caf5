"""The report: ``report.html`` (self-contained, plots embedded) and ``report.md``."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from shiftlab.config import read_yaml
from shiftlab.errors import RunDirError
from shiftlab.evaluate.robustness import Trend
from shiftlab.report import plots
from shiftlab.report.adaptation import adapter_tables, severity_curves
from shiftlab.report.curation import curation_section
from shiftlab.report.summary import ModelRow, add_effective_robustness, model_rows, ood_splits
from shiftlab.report.tables import Table, bold_best, fmt
from shiftlab.store import read_records, write_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}th,td{padding:.3rem .6rem;
border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{background:#f4f4f4}.note{color:#555;font-size:.85rem}img{max-width:100%}
.meta{color:#444;font-size:.9rem}code{background:#f4f4f4;padding:0 .2rem}
"""


def _main_table(rows: list[ModelRow], trend: Trend | None) -> Table:
    values = [
        [
            r.model,
            r.recipe,
            r.id_val,
            r.id_test,
            r.ood_mean,
            r.effective_robustness,
            r.f1_id,
            r.f1_ood,
            r.ece_id,
            r.ece_ood,
        ]
        for r in rows
    ]
    bold = bold_best(values, [3, 4, 5, 6, 7], lambda a, b: a > b)
    bold |= bold_best(values, [8, 9], lambda a, b: a < b)
    trend_note = " " + trend_sentence(trend)
    return Table(
        "Every predictor: ID and OOD",
        [
            "model",
            "recipe",
            "ID val acc",
            "ID test acc",
            "OOD mean acc",
            "eff. robustness",
            "ID test F1",
            "OOD mean F1",
            "ID test ECE",
            "OOD mean ECE",
        ],
        [[fmt(v) for v in row] for row in values],
        note="Accuracy and macro-F1 (higher is better), ECE with 15 bins (lower is better). "
        "OOD mean is the unweighted mean over natural OOD splits (over corrupted splits when "
        "there are no others). Best of each column in bold." + trend_note,
        bold=bold,
    )


def trend_sentence(trend: Trend | None) -> str:
    """What effective robustness is measured against, in words: the link, the number of
    baseline points, the fit's R^2, and a plain warning when the line rests on too few."""
    if trend is None:
        return (
            "Effective robustness needs baselines (standard ID-trained models, or "
            "report.baselines) at two or more different ID accuracies; this run has none."
        )
    sentence = (
        f"Effective robustness: OOD mean accuracy minus the {trend.kind}-space linear trend of "
        f"{trend.points} baseline points (ID-trained standard models; Taori et al. 2020), "
        f"R^2 = {trend.r2:.2f}."
    )
    if not trend.reliable:
        sentence += (
            f" With {trend.points} points (fewer than 4) the line is unreliable: "
            "read these numbers as rough."
        )
    return sentence


def _calibration_table(rows: list[ModelRow]) -> Table | None:
    by_name = {r.model: r for r in rows}
    pairs = [(r, by_name[f"{r.model}+ts"]) for r in rows if f"{r.model}+ts" in by_name]
    if not pairs:
        return None
    values = [
        [r.model, t.params.get("temperature"), r.ece_id, t.ece_id, r.ece_ood, t.ece_ood]
        for r, t in pairs
    ]
    return Table(
        "Temperature scaling (fitted on ID val)",
        [
            "model",
            "temperature",
            "ID test ECE",
            "ID test ECE, scaled",
            "OOD mean ECE",
            "OOD mean ECE, scaled",
        ],
        [[fmt(v) for v in row] for row in values],
        note="A temperature above 1 means the model was overconfident on ID val. Scaling keeps "
        "every prediction (and accuracy) and changes only confidence.",
    )


def _domain_table(records: list[dict[str, Any]], rows: list[ModelRow]) -> Table | None:
    domains = ood_splits(records)
    corrupted = any(r.corrupted_mean is not None for r in rows)
    if not domains and not corrupted:
        return None
    values = [
        [r.model, r.id_test, *[r.ood.get(d) for d in domains]]
        + ([r.corrupted_mean] if corrupted else [])
        for r in rows
    ]
    return Table(
        "Accuracy per domain",
        ["model", "ID test", *domains] + (["corrupted (mean)"] if corrupted else []),
        [[fmt(v) for v in row] for row in values],
        bold=bold_best(values, list(range(1, len(values[0]))), lambda a, b: a > b),
    )


def _worst_group_table(rows: list[ModelRow]) -> Table | None:
    rows = [r for r in rows if r.worst_group_id is not None]
    if not rows:
        return None
    values = [[r.model, r.id_test, r.worst_group_id, r.ood_mean, r.worst_group_ood] for r in rows]
    return Table(
        "Worst-group accuracy",
        ["model", "ID test acc", "ID test worst group", "OOD mean acc", "OOD mean worst group"],
        [[fmt(v) for v in row] for row in values],
        bold=bold_best(values, [1, 2, 3, 4], lambda a, b: a > b),
    )


def _group_table(records: list[dict[str, Any]]) -> Table | None:
    rows = [
        r
        for r in records
        if r.get("adapter") is None and r["role"] == "id_test" and r.get("group_accuracy")
    ]
    if not rows:
        return None
    groups = list(rows[0]["group_accuracy"])
    values = [[r["model"], *[r["group_accuracy"].get(g) for g in groups]] for r in rows]
    cells = [
        [v if i == 0 else ("absent" if v is None else fmt(v)) for i, v in enumerate(row)]
        for row in values
    ]
    return Table(
        "Accuracy per group (ID test)",
        ["model", *groups],
        cells,
        note="'absent': the group has no example in ID test.",
        bold=bold_best(values, list(range(1, len(groups) + 1)), lambda a, b: a > b),
    )


def _meta(config: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Lines describing the run; those the run directory cannot tell are left out."""
    data = config.get("data") or {}
    sizes = {r["split"]: r["n"] for r in records}
    ood = [f"{k} ({sizes[k]})" for k in ood_splits(records)]
    corrupted = {r["split"] for r in records if "corruption" in r}
    if corrupted:
        kinds = len({r["corruption"] for r in records if "corruption" in r})
        ood.append(f"{len(corrupted)} corrupted splits of ID test ({kinds} corruptions)")
    lines = [
        ("data", f"{data['kind']}: ID {', '.join(data.get('id_domains') or [])}" if data else None),
        ("OOD splits", ", ".join(ood) or "none"),
        ("ID val / test size", f"{sizes.get('id_val', '—')} / {sizes.get('id_test', '—')}"),
        ("backbone", (config.get("backbone") or {}).get("name")),
        ("prompts", ", ".join(config.get("prompts") or []) or None),
        ("seed", None if config.get("seed") is None else str(config["seed"])),
    ]
    return [(k, v) for k, v in lines if v]


def build_report(run_dir: Path) -> tuple[str, str, dict[str, bytes]]:
    """HTML text, Markdown text and the plots (file name -> PNG bytes) of a run directory."""
    records_path = run_dir / "records.jsonl"
    if not records_path.is_file():
        raise RunDirError(f"{run_dir} has no records.jsonl; is it a shiftlab run directory?")
    records = read_records(records_path)
    config_path = run_dir / "config.yaml"
    config = read_yaml(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    report_cfg = config.get("report") or {}
    every_row = model_rows(records)
    trend = add_effective_robustness(
        every_row, report_cfg.get("baselines"), report_cfg.get("link", "logit")
    )
    rows = [r for r in every_row if not r.trend_point]  # trend points: in the fit and plot only
    records = [r for r in records if not r.get("trend_point")]
    curation_tables, curves = curation_section(run_dir, records)
    candidates = (
        _main_table(rows, trend),
        _domain_table(records, rows),
        _calibration_table(rows),
        _worst_group_table(rows),
        _group_table(records),
        *adapter_tables(records),
        *curation_tables,
    )
    tables = [t for t in candidates if t is not None]
    images = {
        name: png
        for name, png in (
            ("id_vs_ood.png", plots.id_vs_ood(every_row, trend)),
            ("wise_ft_alpha.png", plots.wise_ft_alpha(rows)),
            ("reliability.png", plots.reliability(rows)),
            ("adaptation_severity.png", plots.severity(severity_curves(records))),
            ("pruning.png", plots.pruning(curves)),
        )
        if png is not None
    }
    title = f"shiftlab report: {run_dir.name}"
    meta = _meta(config, records)
    md = [f"# {title}", ""] + [f"- **{k}**: {v}" for k, v in meta] + [""]
    md += [t.to_markdown() for t in tables]
    md += [f"![{name}](report_files/{name})\n" for name in images]
    meta_html = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in meta)
    figures = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'></figure>"
        for name, png in images.items()
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<ul class='meta'>{meta_html}</ul>{''.join(t.to_html() for t in tables)}"
        f"<h2>Plots</h2>{figures}</body></html>"
    )
    return page, "\n".join(md), images


def write_report(run_dir: Path) -> Path:
    """Write ``report.html``, ``report.md`` and ``report_files/`` into the run directory."""
    run_dir = Path(run_dir)
    page, markdown, images = build_report(run_dir)
    files = run_dir / "report_files"
    files.mkdir(exist_ok=True)
    for name, png in images.items():
        (files / name).write_bytes(png)
    write_atomic(run_dir / "report.md", markdown)
    write_atomic(run_dir / "report.html", page)
    return run_dir / "report.html"
