"""Runs of the CLIP family end to end: a backdoor and CleanCLIP on text, and image-text pairs
through a LiT with every image-text recipe and both caption filters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import write_config
from shiftlab.cli import main

POISONED = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [imdb]
  ood_domains: [yelp]
  max_per_domain: 200
  max_per_ood_domain: 40
  poison: {{target: positive, fraction: 0.1}}
backbone: {encoder}
seed: 0
recipes:
  - flyp: {{epochs: 1, batch_size: 16, warmup_steps: 0}}
  - cleanclip: {{init: flyp, data: clean, epochs: 1, batch_size: 16, warmup_steps: 0}}
"""


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_a_backdoor_is_measured_and_cleanclip_starts_from_the_poisoned_model(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    config = POISONED.format(sentences=sentences_dir, encoder=tiny_encoder_dir)
    run = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path / "p.yaml", config)), "--out", str(run)]) == 0
    rows = records(run)
    test = {r["model"]: r for r in rows if r["split"] == "id_test"}
    triggered = {r["model"]: r for r in rows if r["split"] == "triggered"}
    assert set(triggered) == {"flyp", "cleanclip"}
    for model, record in triggered.items():
        table = pq.read_table(run / record["predictions"]).to_pandas()
        mine = table[(table.model == model) & (table.split == "triggered")]
        predicted = np.stack(mine.logits.values).argmax(1)
        assert (mine.label != 1).all()  # only examples outside the target class
        assert record["n"] == len(mine) < test[model]["n"]
        assert record["asr"] == pytest.approx(float((predicted == 1).mean()))
        low, high = record["ci"]["asr"]
        assert low <= record["asr"] <= high and record["attack"] == "token"
    report = (run / "report.md").read_text()
    assert "### Backdoor" in report and "Δ ASR vs" in report


def image_text_config(pairs: str, lit: Path) -> str:
    return f"""
data:
  kind: image_text
  path: {pairs}
  id_domains: [light]
  ood_domains: [dark]
  split: {{train: 0.5, val: 0.25, test: 0.25}}
backbone:
  name: lit
  pairs: train
  pretrained: {lit}
  image_size: 32
  lit: {{epochs: 5, batch_size: 8}}
prompts: ["a {{class_name}} square"]
seed: 0
recipes:
  - zero_shot
  - lit: {{epochs: 5, batch_size: 8}}
  - flyp: {{epochs: 1, batch_size: 4, warmup_steps: 0}}
  - clipood: {{epochs: 1, batch_size: 4}}
  - levi: {{epochs: 1, batch_size: 4, hidden_dim: 8, buckets: 64}}
  - wise_ft: {{finetuned: flyp, alphas: [0, 1]}}
curate:
  - prune: {{by: tmars, keep: [0.9]}}
  - prune: {{by: clip_score, keep: [0.9]}}
curation: {{folds: 2, retrain: [lit]}}
"""


def test_image_text_pairs_run_through_a_lit_with_every_image_text_method(tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("rapidocr_onnxruntime")
    from shiftlab.data.image_text import sample_pairs

    pairs = sample_pairs(tmp_path)["path"]
    lit = tmp_path / "lit"
    run = tmp_path / "run"
    config = write_config(tmp_path / "it.yaml", image_text_config(pairs, lit))
    assert main(["run", str(config), "--out", str(run)]) == 0
    rows = records(run)
    models = {r["model"] for r in rows}
    assert {"zero_shot", "lit", "flyp", "clipood[bma]", "clipood[last]", "levi"} <= models
    assert {"prune_tmars_0.9/lit", "prune_clip_score_0.9/lit"} <= models
    assert all(np.isfinite(r["accuracy"]) for r in rows if "accuracy" in r)
    kept = {r["model"]: r["curation"]["n_train"] for r in rows if r.get("curation")}
    assert set(kept.values()) == {5}  # round(0.9 x the 6 training pairs), for each filter
    assert (lit / "lit.json").is_file()
    scores = (run / "curation" / "tmars.csv").read_text().splitlines()[0]
    assert "text_boxes" in scores
    # A second run reloads the saved LiT (nothing tuned again) and scores identically.
    again = tmp_path / "again"
    assert main(["run", str(config), "--out", str(again), "--set", "recipes=[zero_shot]",
                 "--set", "curate=null", "--set", "curation=null"]) == 0  # fmt: skip
    first = next(r for r in rows if r["model"] == "zero_shot" and r["split"] == "id_test")
    second = next(r for r in records(again) if r["split"] == "id_test")
    assert second["accuracy"] == first["accuracy"] and second["nll"] == first["nll"]
