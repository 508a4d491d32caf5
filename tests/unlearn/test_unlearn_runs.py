"""The unlearning stage in runs: retraining is curation's drop-and-retrain, the original run's
records are untouched, forget sets are exactly what they name, bad input is refused."""

import re

import pytest

from helpers import write_config
from shiftlab import config
from shiftlab.cli import main
from shiftlab.runner import run
from shiftlab.store import read_records

CONFIG = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [amazon_cells]
  ood_domains: [yelp]
  max_per_domain: 160
  max_per_ood_domain: 40
  label_noise: {{rate: 0.2, seed: 2}}
backbone: {encoder}
recipes:
  - linear_probe: {{num_c: 5}}
  - full_ft: {{epochs: 1, batch_size: 32, warmup_steps: 1}}
{extra}
"""

UNLEARN = """
curate: [drop_label_issues]
curation: {retrain: [full_ft]}
unlearn:
  forget: {curation: label_issues}
  on: full_ft
  methods: [retrain, gradient_ascent, ssd]
"""


def make(tmp_path, sentences_dir, tiny_encoder_dir, extra, name="u.yaml"):
    text = CONFIG.format(sentences=sentences_dir, encoder=tiny_encoder_dir, extra=extra)
    return write_config(tmp_path / name, text)


def strip(record):
    return {k: v for k, v in record.items() if k not in ("predictions",)}


def test_unlearning_against_retraining(tmp_path, sentences_dir, tiny_encoder_dir):
    out = run(
        config.load(make(tmp_path, sentences_dir, tiny_encoder_dir, UNLEARN)), tmp_path / "run"
    )
    records = read_records(out / "records.jsonl")
    # retraining is curation's drop-and-retrain on the same examples: the same numbers
    retrain = [r for r in records if r["model"] == "unlearn.retrain/full_ft" and "accuracy" in r]
    dropped = {r["split"]: r for r in records if r["model"] == "drop_label_issues/full_ft"}
    assert retrain and all(
        r["accuracy"] == dropped[r["split"]]["accuracy"] and r["nll"] == dropped[r["split"]]["nll"]
        for r in retrain
    )
    # the forget set is exactly the flagged examples
    summary = next(
        r for r in records if r["model"] == "unlearn.retrain/full_ft" and r["split"] == "unlearning"
    )
    import csv

    with (out / "curation" / "label_issues.csv").open() as handle:
        flagged = [row["example_id"] for row in csv.DictReader(handle) if row["flagged"] == "1"]
    assert summary["n"] == len(flagged) == summary["unlearn"]["n_forget"] > 0
    from shiftlab.predictions import split_predictions

    ids, _, _, _ = split_predictions(out, summary)
    assert sorted(ids) == sorted(flagged)
    for method in ("original", "retrain", "gradient_ascent", "ssd"):
        row = next(
            r for r in records if r["split"] == "unlearning" and r["unlearn"]["method"] == method
        )
        assert {"forget_accuracy", "retain_accuracy", "mia_auroc_loss", "seconds"} <= set(row)
    ascent = next(
        r
        for r in records
        if r["split"] == "unlearning" and r["unlearn"]["method"] == "gradient_ascent"
    )
    original = next(
        r for r in records if r["split"] == "unlearning" and r["unlearn"]["method"] == "original"
    )
    assert ascent["forget_accuracy"] <= original["forget_accuracy"]
    # the original run's records are untouched by the unlearning stage
    plain = run(
        config.load(make(tmp_path, sentences_dir, tiny_encoder_dir, "", name="p.yaml")),
        tmp_path / "plain",
        report=False,
    )
    mine = ("linear_probe", "full_ft")
    base = [strip(r) for r in records if r["model"] in mine and r["role"] != "unlearn"]
    alone = [strip(r) for r in read_records(plain / "records.jsonl") if r["model"] in mine]
    assert base == alone
    assert "### Unlearning" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (
            "unlearn: {forget: {curation: label_issues}, methods: [scrubb]}",
            r"unknown unlearning method 'scrubb'; did you mean 'scrub'",
        ),
        ("unlearn: {forget: {class: neutral}, methods: [retrain]}", r"no class 'neutral'"),
        (
            "unlearn: {forget: {ids: [nope-1, nope-2]}, methods: [retrain]}",
            r"2 ids are not training examples, e.g. nope-1, nope-2",
        ),
        (
            "unlearn: {forget: {domain: amazon_cells}, methods: [retrain]}",
            r"covers every training example",
        ),
        (
            "unlearn: {forget: {class: positive}, methods: [npo]}",
            r"unlearning method 'npo' is for language models",
        ),
    ],
)
def test_bad_unlearning_input_gives_one_line_and_no_run_dir(
    tmp_path, capsys, sentences_dir, tiny_encoder_dir, extra, pattern
):
    path = make(tmp_path, sentences_dir, tiny_encoder_dir, extra)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()
