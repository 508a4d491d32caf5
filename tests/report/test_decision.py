"""The report's intervals, paired comparison and "What to deploy" summary, on synthetic runs
whose records come from the real make_record and whose predictions are stored as a run stores
them (``write_run`` in tests/test_compare.py)."""

import json
import re

import numpy as np
import pytest
import yaml

from shiftlab.compare import combined_report
from shiftlab.evaluate.intervals import bootstrap_seed, percentile_interval, resampled_means
from shiftlab.predictions import split_predictions
from shiftlab.report import build_report
from shiftlab.report.decision import (
    add_intervals,
    choose_reference,
    deployment_summary,
    pareto_front,
)
from shiftlab.report.outcomes import Evidence, Outcomes
from shiftlab.report.summary import model_rows
from shiftlab.store import read_records
from test_compare import MODELS, write_run

CELL = r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]"


def evidence_of(run_dir):
    records = read_records(run_dir / "records.jsonl")
    rows = model_rows(records)
    evidence = Evidence(records, Outcomes(run_dir, seed=records[0]["seed"]))
    add_intervals(rows, evidence)
    return records, rows, evidence


def test_pareto_front_of_hand_made_points():
    points = [
        (0.80, 0.60),  # 0: front (best ID)
        (0.70, 0.70),  # 1: front (best OOD)
        (0.75, 0.65),  # 2: front (between)
        (0.70, 0.60),  # 3: dominated by all of the above
        (0.75, 0.62),  # 4: dominated by 2
        (0.80, 0.60),  # 5: equal to 0: neither dominates the other
        (0.60, 0.70),  # 6: dominated by 1 (same OOD, lower ID)
    ]
    assert pareto_front(points) == [0, 1, 2, 5]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 0.5)]) == [0]


def test_stored_predictions_reproduce_every_record_interval(tmp_path):
    run = write_run(tmp_path / "run", groups=True)
    records, _, evidence = evidence_of(run)
    for record in records:
        for metric, interval in record["ci"].items():
            replicates = evidence.outcomes.metric_replicates(record, metric)
            assert percentile_interval(replicates) == pytest.approx(interval, abs=1e-9), metric


def test_the_ood_mean_interval_resamples_each_split_with_its_own_seed(tmp_path):
    run = write_run(tmp_path / "run", seed=4)
    records, rows, _ = evidence_of(run)
    row = next(r for r in rows if r.model == "lp_ft")
    per_split = []
    for split in ("tweets", "nyt"):
        record = next(r for r in records if r["model"] == "lp_ft" and r["split"] == split)
        _, labels, _, logits = split_predictions(run, record)
        correct = (logits.argmax(1) == labels) + 0.0
        per_split.append(resampled_means(correct, bootstrap_seed(4, split)))
    assert row.ood_mean_ci == percentile_interval(np.mean(per_split, axis=0))
    assert row.ood_mean_ci[0] < row.ood_mean < row.ood_mean_ci[1]
    # with one OOD split the OOD mean's interval is that split's record interval
    single = write_run(tmp_path / "single", ood=("tweets",))
    records, rows, _ = evidence_of(single)
    tweets = next(r for r in records if r["model"] == "lp_ft" and r["split"] == "tweets")
    row = next(r for r in rows if r.model == "lp_ft")
    assert row.ood_mean_ci == pytest.approx(tweets["ci"]["accuracy"], abs=1e-12)


def test_the_report_opens_with_what_to_deploy_and_compares_against_full_ft(tmp_path):
    run = write_run(tmp_path / "run")
    page, markdown, _ = build_report(run)
    summary = markdown.split("### What to deploy", 1)[1].split("###", 1)[0]
    assert markdown.index("### What to deploy") < markdown.index("### Every predictor")
    assert "<h2 id='what-to-deploy'>What to deploy</h2><table class='deploy'>" in page
    # the table: one row per criterion, then the Pareto front
    table = [line for line in summary.splitlines() if line.startswith("| ")]
    assert table[0] == (
        "| criterion | choice | value [95% interval] | models within noise | details |"
    )
    see_main = re.escape('| see "Every predictor: ID and OOD" |')
    assert re.fullmatch(
        rf"\| Best ID test accuracy \| full_ft \| {CELL} \| 3 of 4 {see_main}", table[1]
    )
    assert re.fullmatch(
        rf"\| Best mean OOD accuracy \| lp_ft \| {CELL} \| 3 of 4 {see_main}", table[2]
    )
    assert table[3].startswith("| Best calibration (lowest ID test ECE) | ")
    assert table[4] == '| ID-vs-OOD Pareto front | lp_ft | ID 0.847, OOD 0.677 | — | see "Plots" |'
    assert len(table) == 5  # no groups: no worst-group row
    # the commands for the recommended choice (best mean OOD accuracy), with this run's path
    assert "Recommended: lp_ft (best mean OOD accuracy)." in summary
    assert f"shiftlab export {run.resolve()} lp_ft --out deploy/lp_ft\n" in summary
    assert "shiftlab predict deploy/lp_ft --input FILE --out predictions.csv\n" in summary
    # HTML: each row links to its detailed table, whose heading carries that id
    assert "<a href='#every-predictor-id-and-ood'>Every predictor: ID and OOD</a>" in page
    assert "<h2 id='every-predictor-id-and-ood'>Every predictor: ID and OOD</h2>" in page
    assert "<a href='#plots'>Plots</a>" in page and "<h2 id='plots'>Plots</h2>" in page
    assert "\n### Plots\n" in markdown  # the Markdown's plain section reference
    assert "<pre class='commands'><code>shiftlab export " in page
    # the long form below the table: bullets in Markdown, a collapsed <details> block in HTML
    details = page.split("<details>", 1)[1].split("</details>", 1)[0]
    assert "Statistically indistinguishable from it" in details
    assert "<details open" not in page
    # Pareto front: lp_ft is the most accurate both ID and OOD here
    assert "- 1 of 5 models are on the ID-vs-OOD Pareto front" in summary
    assert "): lp_ft (ID 0.847, OOD 0.677)." in summary
    best_id = next(s for s in summary.splitlines() if s.startswith("- Best ID test accuracy"))
    assert re.search(rf"Best ID test accuracy: full_ft, {CELL}\.", best_id)
    # the calibrated twin has full_ft's predictions: indistinguishable, by exactly 0
    assert "full_ft+ts (+0.000 [+0.000, +0.000])" in best_id
    assert "zero_shot" not in best_id  # 0.23 less accurate: significantly worse
    assert "- Best mean OOD accuracy: lp_ft" in summary
    assert "- Best calibration (lowest ID test ECE):" in summary
    assert "worst-group" not in summary  # no groups
    main = markdown.split("### Every predictor", 1)[1].split("###", 1)[0]
    full_ft = next(line for line in main.splitlines() if line.startswith("| full_ft |"))
    assert re.fullmatch(
        rf"\| full_ft \| full_ft \| 0\.867 \| \*\*{CELL}\*\* \| {CELL} \|.*", full_ft
    )
    paired = markdown.split("### Paired comparison against full_ft", 1)[1].split("###", 1)[0]
    header = "| model | ID test Δ | ID test p | tweets Δ | tweets p | nyt Δ | nyt p | OOD mean Δ |"
    assert header in paired
    assert "| full_ft |" not in paired  # the reference itself is not a row
    zero_shot = next(line for line in paired.splitlines() if line.startswith("| zero_shot |"))
    assert re.match(r"\| zero_shot \| -0\.233 \[-0\.\d{3}, -0\.\d{3}\] \* \| <0\.001 \|", zero_shot)
    twin = next(line for line in paired.splitlines() if line.startswith("| full_ft+ts |"))
    assert twin.count("+0.000 [+0.000, +0.000]") == 4 and " * " not in twin


def test_worst_group_accuracy_is_a_criterion_when_there_are_groups(tmp_path):
    run = write_run(tmp_path / "run", groups=True)
    page, markdown, _ = build_report(run)
    line = next(s for s in markdown.splitlines() if s.startswith("- Best worst-group accuracy"))
    assert re.search(rf"\(ID test\): \S+, {CELL}\.", line)
    row = next(s for s in markdown.splitlines() if s.startswith("| Best worst-group accuracy"))
    assert row.endswith('| see "Worst-group accuracy" |')
    assert "<a href='#worst-group-accuracy'>Worst-group accuracy</a>" in page
    assert "<h2 id='worst-group-accuracy'>Worst-group accuracy</h2>" in page


def test_the_deploy_commands_quote_the_model_and_name_its_own_run(tmp_path):
    models = [*MODELS, ("wise_ft[alpha=0.5]", "wise_ft", (0.80, 0.75), {})]
    run = write_run(tmp_path / "my runs" / "run", models=models)
    page, markdown, _ = build_report(run)
    summary = markdown.split("### What to deploy", 1)[1].split("###", 1)[0]
    assert "Recommended: wise_ft[alpha=0.5] (best mean OOD accuracy)." in summary
    assert (
        f"shiftlab export '{run.resolve()}' 'wise_ft[alpha=0.5]' --out deploy/wise_ft_alpha=0.5_\n"
        in summary
    )
    assert "shiftlab predict deploy/wise_ft_alpha=0.5_ --input FILE" in summary
    assert "&#x27;wise_ft[alpha=0.5]&#x27;" in page  # escaped in HTML, quoted for the shell
    # several models on the front: named in the choice cell, counted in the value cell
    front = next(s for s in summary.splitlines() if s.startswith("| ID-vs-OOD Pareto front"))
    assert front.startswith(
        "| ID-vs-OOD Pareto front | lp_ft, wise_ft[alpha=0.5] | 2 of 6 models |"
    )
    # a report across runs names the model's own run directory and its name there
    other = write_run(tmp_path / "other", models=models)
    _, markdown, _ = combined_report([run, other])
    assert "Recommended: run/wise_ft[alpha=0.5] (best mean OOD accuracy)." in markdown
    assert f"shiftlab export '{run.resolve()}' 'wise_ft[alpha=0.5]' --out" in markdown


def test_the_reference_comes_from_the_config_or_the_defaults(tmp_path):
    run = write_run(tmp_path / "run", report={"reference": "lp_ft"})
    _, markdown, _ = build_report(run)
    assert "### Paired comparison against lp_ft" in markdown
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["report"]["reference"] = "nope"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    _, markdown, _ = build_report(run)
    assert "### Paired comparison against full_ft" in markdown
    assert "report.reference 'nope' names no model of this report." in markdown
    records = read_records(run / "records.jsonl")
    rows = model_rows(records)
    without_full_ft = [r for r in rows if not r.model.startswith("full_ft")]
    assert choose_reference(without_full_ft, records, None)[0].model == "linear_probe"  # standard
    no_standard = [r for r in without_full_ft if r.model != "linear_probe"]
    assert choose_reference(no_standard, records, None)[0].model == "lp_ft"  # not zero-shot


def test_trend_points_are_left_out_and_old_runs_keep_their_record_intervals(tmp_path):
    models = [*MODELS, ("linear_probe[C=0.1]", "linear_probe", (0.99, 0.99), {"trend_point": True})]
    run = write_run(tmp_path / "run", models=models)
    _, markdown, _ = build_report(run)
    summary = markdown.split("### What to deploy", 1)[1].split("###", 1)[0]
    assert "C=0.1" not in summary and "| linear_probe[C=0.1] |" not in markdown
    # a run of an older shiftlab: no stored predictions (records may hold intervals)
    lines = (run / "records.jsonl").read_text().splitlines()
    old = [{k: v for k, v in json.loads(x).items() if k != "predictions"} for x in lines]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    _, markdown, _ = build_report(run)
    assert "### Paired comparison" not in markdown
    assert "(No per-example predictions stored: no paired tests.)" in markdown
    assert re.search(r"\| Best ID test accuracy \| full_ft \| .* \| not tested \|", markdown)
    full_ft = next(line for line in markdown.splitlines() if line.startswith("| full_ft |"))
    assert re.match(rf"\| full_ft \| full_ft \| 0\.867 \| \*\*{CELL}\*\* \| 0\.620 \|", full_ft)


def test_summary_of_rows_without_predictions_or_ood(tmp_path):
    run = write_run(tmp_path / "run")
    records, rows, evidence = evidence_of(run)
    assert deployment_summary([], evidence) == []
    only_id = [r for r in records if r["role"] != "ood"]
    rows = model_rows(only_id)
    evidence = Evidence(only_id, Outcomes(run, seed=0))
    sentences = deployment_summary(rows, evidence)
    assert not any("Pareto" in s for s in sentences)  # no OOD accuracy: no front
    assert any(s.startswith("Best ID test accuracy: full_ft") for s in sentences)
