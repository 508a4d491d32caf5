"""The curation stage in runs: out-of-sample scoring, curated sets, records, encoder passes."""

import csv

import numpy as np
import pytest
from sklearn.metrics import log_loss

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
  ood_domains: [imdb, yelp]
  max_per_domain: 200
  max_per_ood_domain: 60
  label_noise: {{rate: 0.2, seed: 1}}
backbone: {encoder}
prompts: ["a {{class_name}} review."]
recipes:
  - zero_shot
  - linear_probe: {{num_c: 5}}
  - full_ft: {{epochs: 1, batch_size: 32, warmup_steps: 1}}
curation:
  folds: 3
  retrain: [linear_probe]
  scores: {{forgetting: {{epochs: 3}}, el2n: {{runs: 2, epochs: 3}}}}
curate:{curate}
"""

CURATE = """
  - drop_label_issues
  - relabel
  - prune: {by: el2n, keep: [0.5]}
  - prune: {by: random, keep: [0.5]}
"""


def make(tmp_path, sentences_dir, tiny_encoder_dir, curate=CURATE, name="c.yaml"):
    text = CONFIG.format(sentences=sentences_dir, encoder=tiny_encoder_dir, curate=curate)
    return write_config(tmp_path / name, text)


def read_csv(path):
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_curated_sets_retrain_and_leave_the_uncurated_records_alone(
    tmp_path, sentences_dir, tiny_encoder_dir, monkeypatch
):
    import shiftlab.curation.plan as stage_module
    from shiftlab.curation.oof import out_of_sample_probabilities

    seen = {}
    original = stage_module.CurationPlan.out_of_sample

    def spy(self):
        seen["probs"] = original(self)
        seen["stage"] = self
        return seen["probs"]

    monkeypatch.setattr(stage_module.CurationPlan, "out_of_sample", spy)
    cfg = config.load(make(tmp_path, sentences_dir, tiny_encoder_dir))
    out = run(cfg, tmp_path / "run")
    records = read_records(out / "records.jsonl")
    stage = seen["stage"]

    # cleanlab saw out-of-sample probabilities: each example's from the fold that held it out
    train = stage.benchmark.train
    features = stage.features(train).numpy()
    # at the C (half-decades 1e-5 .. 10) of lowest out-of-sample log loss (curation.probe_c)
    candidates = [
        out_of_sample_probabilities(features, train.labels, 2, folds=3, seed=0, c=10.0**e)
        for e in np.arange(-5.0, 1.01, 0.5)
    ]
    losses = [log_loss(train.labels, p, labels=[0, 1]) for p in candidates]
    # (cold fits here; the plan warm-starts a sweep per fold: the same optimum to L-BFGS tolerance)
    np.testing.assert_allclose(seen["probs"], candidates[int(np.argmin(losses))], atol=1e-3)

    # every action removes or relabels exactly what its score says
    issues = read_csv(out / "curation" / "label_issues.csv")
    flagged = {r["example_id"] for r in issues if r["flagged"] == "1"}
    assert [r["example_id"] for r in issues] == list(train.ids)
    by_label = {v.label: v for v in stage.variants}
    assert set(by_label["drop_label_issues"].train.ids) == set(train.ids) - flagged
    relabelled = by_label["relabel"].train
    changed = {
        i for i, a, b in zip(train.ids, train.labels, relabelled.labels, strict=True) if a != b
    }
    assert changed <= flagged and list(relabelled.ids) == list(train.ids)
    el2n = {r["example_id"]: float(r["score"]) for r in read_csv(out / "curation" / "el2n.csv")}
    kept = by_label["prune_el2n_0.5"].train.ids
    dropped = set(train.ids) - set(kept)
    assert len(kept) == len(train) // 2
    assert min(el2n[i] for i in kept) >= max(el2n[i] for i in dropped)  # easiest dropped

    # curated models are named, tagged, scored on clean labels; the uncurated ones untouched
    curated = [r for r in records if r.get("curation")]
    assert {r["model"] for r in curated} == {f"{v}/linear_probe" for v in by_label}
    assert all("standard" not in r for r in curated)
    assert all(bool(r.get("clean_labels")) == (r["role"] != "ood") for r in curated)  # ID noise
    plain = tmp_path / "plain.yaml"
    plain.write_text(make(tmp_path, sentences_dir, tiny_encoder_dir, curate=" []").read_text())
    alone = run(config.load(plain), tmp_path / "alone", report=False)
    base = [r for r in records if not r.get("curation")]
    assert [{k: v for k, v in r.items() if k != "predictions"} for r in base] == [
        {k: v for k, v in r.items() if k != "predictions"}
        for r in read_records(alone / "records.jsonl")
    ]
    summary = (out / "curation" / "summary.json").read_text()
    assert '"true_flips"' in summary and '"detection"' in summary
    page = (out / "report.md").read_text()
    assert "### Curation: retrained on curated training sets" in page
    assert "### Curation: finding the true label flips" in page


def test_scores_cost_no_encoder_pass_beyond_one_per_split(
    tmp_path, sentences_dir, tiny_encoder_dir, monkeypatch
):
    from shiftlab.features import FeatureCache

    caches = []
    original = FeatureCache.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        caches.append(self)

    monkeypatch.setattr(FeatureCache, "__init__", keep)
    text = make(tmp_path, sentences_dir, tiny_encoder_dir).read_text()
    text = text.replace("  - full_ft: {epochs: 1, batch_size: 32, warmup_steps: 1}\n", "")
    text += "  - dedupe\n"
    cfg = config.load(write_config(tmp_path / "p.yaml", text))
    run(cfg, tmp_path / "run", report=False)
    (cache,) = caches
    # zero_shot, linear_probe, every score, every curated probe: one pass per split
    assert dict(cache.passes) == {"train": 1, "id_val": 1, "id_test": 1, "imdb": 1, "yelp": 1}


@pytest.mark.parametrize(
    ("curate", "pattern"),
    [
        ("\n  - drop_label_isues", r"unknown curation action 'drop_label_isues'; did you mean"),
        ("\n  - prune: {by: el2m}", r"curate.prune.by must be one of .* did you mean 'el2n'"),
        ("\n  - prune: {keep: [0]}", r"curate\.prune\.keep must be in \(0, 1\], got 0"),
        ("\n  - prune: {by: random, keep: [0.001]}", r"removes every training example of class"),
    ],
)
def test_bad_curation_gives_one_line_and_no_run_dir(
    tmp_path, capsys, sentences_dir, tiny_encoder_dir, curate, pattern
):
    import re

    path = make(tmp_path, sentences_dir, tiny_encoder_dir, curate=curate)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()


def test_unknown_score_suggests_the_closest(tmp_path):
    from shiftlab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown curation score 'forgeting'; did you mean"):
        config.parse({"data": {"kind": "vader"}, "curation": {"scores": {"forgeting": {}}}})
