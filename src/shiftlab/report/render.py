"""The report: ``report.html`` (self-contained, plots embedded) and ``report.md``."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shiftlab.atomic import write_atomic, write_bytes_atomic
from shiftlab.errors import RunDirError
from shiftlab.evaluate.robustness import Trend
from shiftlab.report import plots
from shiftlab.report.adaptation import adapter_tables, severity_curves
from shiftlab.report.backdoor import backdoor_table
from shiftlab.report.curation import curation_section
from shiftlab.report.decision import (
    DEPLOY_NOTE,
    WITHIN_NOISE_NOTE,
    Choice,
    add_intervals,
    choose_reference,
    deploy_commands,
    deployment_choices,
    paired_table,
    recommended,
)
from shiftlab.report.language import capability_table, conjugate_table, generation_table
from shiftlab.report.outcomes import Evidence, Outcomes
from shiftlab.report.seeds import plotted, seed_rows, seed_table
from shiftlab.report.summary import ModelRow, add_effective_robustness, model_rows, ood_splits
from shiftlab.report.tables import Table, anchor, bold_best, fmt, fmt_interval
from shiftlab.report.unlearning import membership_table, unlearning_table
from shiftlab.store import read_records, read_run_config

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}th,td{padding:.3rem .6rem;
border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{background:#f4f4f4}.note{color:#555;font-size:.85rem}img{max-width:100%}
.meta{color:#444;font-size:.9rem}code{background:#f4f4f4;padding:0 .2rem}
.summary li{margin:.3rem 0}table.deploy th,table.deploy td{text-align:left}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}pre code{padding:0}details{margin:.5rem 0}
summary{cursor:pointer}
"""

MAIN_TITLE = "Every predictor: ID and OOD"
PLOTS = "Plots"
#: Where each "What to deploy" criterion is detailed: the table (or section) its row links to.
DETAIL = {
    "id_test": MAIN_TITLE,
    "ood_mean": MAIN_TITLE,
    "ece": MAIN_TITLE,
    "worst_group_accuracy": "Worst-group accuracy",
    "pareto": PLOTS,  # the ID-vs-OOD plot; the main table where there is no plot
}
DEPLOY_HEADER = ["criterion", "choice", "value [95% interval]", "models within noise", "details"]


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
    cells = [[fmt(v) for v in row] for row in values]
    for row, r in zip(cells, rows, strict=True):
        row[3] = fmt_interval(r.id_test, r.id_test_ci)
        row[4] = fmt_interval(r.ood_mean, r.ood_mean_ci)
    trend_note = " " + trend_sentence(trend)
    if any(r.id_test_ci or r.ood_mean_ci for r in rows):
        trend_note += (
            " [low, high]: 95% percentile bootstrap interval over examples (1,000 resamples; "
            "the OOD mean's resamples each split with its own seed and averages per replicate)."
        )
    return Table(
        MAIN_TITLE,
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
        cells,
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
    if not rows or (not domains and not corrupted):
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


def deploy_section(
    choices: list[Choice],
    records: list[dict[str, Any]],
    run_dir: Path | None,
    sections: set[str],
) -> tuple[list[str], str]:
    """The "What to deploy" section in Markdown lines and HTML: a table with one row per
    criterion (the choice, its value, how many models are within noise of it, where the details
    are), the export and predict commands of the recommended choice, then every choice in full
    (bullets in Markdown, a collapsed ``<details>`` block in HTML).

    Args:
        choices: :func:`~shiftlab.report.decision.deployment_choices`.
        records: the report's records (a report across runs: each names its run directory).
        run_dir: the run directory of one run's report (None: ``RUN_DIR`` in the commands).
        sections: the titles of the report's sections; a row links to its detail when present.
    """
    if not choices:
        return [], ""

    def detail(choice: Choice) -> str | None:
        title = DETAIL.get(choice.key, MAIN_TITLE)
        if title not in sections:
            title = MAIN_TITLE
        return title if title in sections else None

    cells = [[c.criterion, c.model, c.value, c.within_noise] for c in choices]
    md = [
        "### What to deploy",
        "",
        "| " + " | ".join(DEPLOY_HEADER) + " |",
        "|---|---|---|---|---|",
    ]
    for choice, row in zip(choices, cells, strict=True):
        title = detail(choice)
        md.append("| " + " | ".join([*row, f'see "{title}"' if title else "—"]) + " |")
    md += ["", WITHIN_NOISE_NOTE, ""]
    body = []
    for choice, row in zip(choices, cells, strict=True):
        title = detail(choice)
        link = f"<a href='#{anchor(title)}'>{html.escape(title)}</a>" if title else "—"
        body.append(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + f"<td>{link}</td></tr>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in DEPLOY_HEADER)
    page = (
        "<h2 id='what-to-deploy'>What to deploy</h2>"
        f"<table class='deploy'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
        f"</table><p class='note'>{html.escape(WITHIN_NOISE_NOTE)}</p>"
    )
    best = recommended(choices)
    if best is not None:
        commands = deploy_commands(best.model, records, run_dir)
        lead = (
            f"Recommended: {best.model} ({best.criterion[0].lower()}{best.criterion[1:]}). "
            "Export it, then predict with it (FILE: the inputs; another row's choice works "
            "the same way):"
        )
        md += [lead, "", "```sh", *commands, "```", ""]
        page += (
            f"<p>{html.escape(lead)}</p><pre class='commands'><code>"
            + html.escape("\n".join(commands))
            + "</code></pre>"
        )
    sentences = [c.sentence for c in choices] + [DEPLOY_NOTE]
    md += ["Every choice in full, with the models within noise of it:", ""]
    md += [f"- {s}" for s in sentences] + [""]
    page += (
        "<details><summary>Every choice in full, with the models within noise of it"
        "</summary><ul class='summary'>"
        + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
        + "</ul></details>"
    )
    return md, page


def run_facts(config: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Lines describing the run; those the run directory cannot tell are left out."""
    data = config.get("data") or {}
    sizes = {r["split"]: r["n"] for r in records}
    ood = [f"{k} ({sizes[k]})" for k in ood_splits(records)]
    corrupted = {r["split"] for r in records if "corruption" in r}
    if corrupted:
        kinds = len({r["corruption"] for r in records if "corruption" in r})
        ood.append(f"{len(corrupted)} corrupted splits of ID test ({kinds} corruptions)")
    lines = [
        ("data", data_line(data)),
        ("OOD splits", ", ".join(ood) or "none"),
        ("ID val / test size", f"{sizes.get('id_val', '—')} / {sizes.get('id_test', '—')}"),
        ("unlabeled pool", pool_line(data.get("unlabeled"))),
        ("backbone", (config.get("backbone") or {}).get("name")),
        ("prompts", ", ".join(config.get("prompts") or []) or None),
        ("seed", None if config.get("seed") is None else str(config["seed"])),
    ]
    return [(k, v) for k, v in lines if v]


def data_line(data: dict[str, Any]) -> str | None:
    """``kind: ID domains`` (the kind alone where the loader's own ID split was used)."""
    if not data:
        return None
    ids = ", ".join(data.get("id_domains") or [])
    return f"{data['kind']}: ID {ids}" if ids else str(data["kind"])


def pool_line(pool: dict[str, Any] | None) -> str | None:
    """Where the unlabeled pool came from (``data.unlabeled``), or None without one."""
    if not pool:
        return None
    share = f"{100 * float(pool.get('fraction', 0.5)):.0f}%"
    rest = "none of them scored" if float(pool.get("fraction", 0.5)) >= 1 else "the rest scored"
    return f"{share} of {', '.join(pool.get('domains') or [])} (labels dropped; {rest})"


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records and the raw config (``{}`` without ``config.yaml``) of a run directory."""
    records_path = run_dir / "records.jsonl"
    if not records_path.is_file():
        raise RunDirError(f"{run_dir} has no records.jsonl; is it a shiftlab run directory?")
    return read_records(records_path), read_run_config(run_dir)


def build_report(run_dir: Path) -> tuple[str, str, dict[str, bytes]]:
    """HTML text, Markdown text and the plots (file name -> PNG bytes) of a run directory."""
    records, config = load_run(run_dir)
    shown = [r for r in records if not r.get("trend_point")]
    return render_report(
        records,
        config,
        title=f"shiftlab report: {run_dir.name}",
        meta=run_facts(config, shown),
        outcomes=Outcomes(run_dir, seed=records[0].get("seed", 0) if records else 0),
        curation=lambda rows: curation_section(run_dir, shown, rows),
        run_dir=run_dir,
    )


def render_report(
    records: list[dict[str, Any]],
    config: dict[str, Any],
    *,
    title: str,
    meta: list[tuple[str, str]],
    outcomes: Outcomes,
    curation: tuple[list[Table], Any] | Callable[[list[ModelRow]], tuple[list[Table], Any]] = (
        [],
        {},
    ),
    run_dir: Path | None = None,
) -> tuple[str, str, dict[str, bytes]]:
    """The report of ``records`` (one run's, or several runs' combined by ``shiftlab
    compare``): HTML text, Markdown text and the plots (file name -> PNG bytes).

    Args:
        records: every record, trend points included (they enter the trend fit and the plot).
        config: the raw config; ``report.baselines``, ``report.link`` and ``report.reference``
            are read from it.
        title: the page's title.
        meta: (label, text) lines describing the run(s).
        outcomes: the per-example predictions behind the records.
        curation: the curation section's tables and pruning curves, or a function making them
            from the report's rows (with their intervals).
        run_dir: the run directory of one run's report, named in its deploy commands (a report
            across runs names each record's own ``run_dir``).
    """
    report_cfg = config.get("report") or {}
    every_row = model_rows(records)
    trend = add_effective_robustness(
        every_row, report_cfg.get("baselines"), report_cfg.get("link", "logit")
    )
    rows = [r for r in every_row if not r.trend_point]  # trend points: in the fit and plot only
    records = [r for r in records if not r.get("trend_point")]
    evidence = Evidence(records, outcomes)
    add_intervals(rows, evidence)
    reference, reference_note = choose_reference(rows, records, report_cfg.get("reference"))
    curation_tables, curves = curation(rows) if callable(curation) else curation
    repeats = seed_rows(rows, records)
    plot_rows, spread = plotted(every_row, repeats)
    candidates = (
        _main_table(rows, trend),
        seed_table(repeats),
        None if reference is None else paired_table(rows, evidence, reference, reference_note),
        _domain_table(records, rows),
        _calibration_table(rows),
        _worst_group_table(rows),
        _group_table(records),
        *adapter_tables(records),
        backdoor_table(records, outcomes),
        *curation_tables,
        generation_table(records),
        capability_table(records),
        conjugate_table(records),
        unlearning_table(records),
        membership_table(records),
    )
    tables = [t for t in candidates if t is not None]
    choices = deployment_choices(rows, evidence)
    images = {
        name: png
        for name, png in (
            ("id_vs_ood.png", plots.id_vs_ood(plot_rows, trend, spread)),
            ("wise_ft_alpha.png", plots.wise_ft_alpha(rows)),
            ("reliability.png", plots.reliability(rows)),
            ("adaptation_severity.png", plots.severity(severity_curves(records))),
            ("pruning.png", plots.pruning(curves)),
        )
        if png is not None
    }
    sections = {t.title for t in tables} | ({PLOTS} if "id_vs_ood.png" in images else set())
    deploy_md, deploy_html = deploy_section(choices, records, run_dir, sections)
    md = [f"# {title}", ""] + [f"- **{k}**: {v}" for k, v in meta] + [""] + deploy_md
    md += [t.to_markdown() for t in tables]
    md += [f"### {PLOTS}\n"] if images else []  # the section the Pareto row refers to
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
        f"<ul class='meta'>{meta_html}</ul>{deploy_html}"
        f"{''.join(t.to_html() for t in tables)}"
        f"<h2 id='{anchor(PLOTS)}'>{PLOTS}</h2>{figures}</body></html>"
    )
    return page, "\n".join(md), images


def write_report(run_dir: Path) -> Path:
    """Write ``report.html``, ``report.md`` and ``report_files/`` into the run directory."""
    run_dir = Path(run_dir)
    page, markdown, images = build_report(run_dir)
    files = run_dir / "report_files"
    files.mkdir(exist_ok=True)
    for name, png in images.items():
        write_bytes_atomic(files / name, png)
    write_atomic(run_dir / "report.md", markdown)
    write_atomic(run_dir / "report.html", page)
    return run_dir / "report.html"
