"""Whole runs on the tiny encoder: run directory contents, determinism, resume."""

import json

import pytest
import torch
import yaml

from helpers import write_config
from shiftlab import config
from shiftlab.errors import ConfigError, RunDirError
from shiftlab.runner import run
from shiftlab.store import read_records

RECORD_KEYS = {
    "model",
    "recipe",
    "params",
    "adapter",
    "split",
    "role",
    "n",
    "accuracy",
    "macro_f1",
    "ece",
    "nll",
    "worst_group_accuracy",
    "seed",
}

TINY_TRAIN = "{epochs: 1, batch_size: 16, warmup_steps: 1}"


def tiny_config(tmp_path, sentences_dir, encoder_dir, recipes=None, seed=0):
    recipes = (
        recipes
        or f"""
  - zero_shot
  - linear_probe: {{num_c: 3}}
  - full_ft: {TINY_TRAIN}
  - lp_ft: {{epochs: 1, batch_size: 16, warmup_steps: 1, probe: {{num_c: 3}}}}
  - flyp: {TINY_TRAIN}
  - wise_ft: {{alphas: [0, 0.5, 1]}}"""
    )
    text = f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb, yelp]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {encoder_dir}
prompts: ["a {{class_name}} review.", "{{class_name}}"]
seed: {seed}
recipes:{recipes}
"""
    return config.load(write_config(tmp_path / "run.yaml", text))


def test_run_writes_the_contracted_directory(tmp_path, sentences_dir, tiny_encoder_dir):
    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = run(cfg, tmp_path / "run")
    for name in ("config.yaml", "records.jsonl", "report.html", "report.md"):
        assert (out / name).is_file(), name
    records = read_records(out / "records.jsonl")
    models = [
        "zero_shot",
        "linear_probe",
        "full_ft",
        "lp_ft",
        "flyp",
        "wise_ft[alpha=0]",
        "wise_ft[alpha=0.5]",
        "wise_ft[alpha=1]",
        "wise_ft[val_selected]",
        "wise_ft[fixed_0.5]",
    ]
    shown = [r["model"] for r in records if not r.get("trend_point")]
    assert list(dict.fromkeys(shown)) == models
    # extra effective-robustness baseline points: probes at other C, not saved
    points = {r["model"] for r in records if r.get("trend_point")}
    assert all(m.startswith("linear_probe[C=") for m in points)
    baselines = {r["model"] for r in records if r.get("standard")}
    assert baselines == {"linear_probe", "full_ft", *points}  # never zero_shot, flyp, wise_ft
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert record["adapter"] is None and record["seed"] == 0
    splits = [(r["split"], r["role"]) for r in records if r["model"] == "full_ft"]
    assert splits == [
        ("id_val", "id_val"),
        ("id_test", "id_test"),
        ("imdb", "ood"),
        ("yelp", "ood"),
    ]
    saved = sorted(p.name for p in (out / "models").iterdir())
    assert saved == [f"{m}.safetensors" for m in sorted(models[:5])]  # WiSE-FT models are derived
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["recipes"][2]["full_ft"]["lr"] == 3e-5  # every default written out


def test_same_config_and_seed_give_identical_records(tmp_path, sentences_dir, tiny_encoder_dir):
    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir)
    first = (run(cfg, tmp_path / "a", report=False) / "records.jsonl").read_text()
    second = (run(cfg, tmp_path / "b", report=False) / "records.jsonl").read_text()
    assert first == second
    other = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir, seed=1)
    third = (run(other, tmp_path / "c", report=False) / "records.jsonl").read_text()
    assert third != first


def test_resume_skips_finished_recipes_and_reruns_changed_ones(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys
):
    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = run(cfg, tmp_path / "run", report=False)
    before = read_records(out / "records.jsonl")
    capsys.readouterr()
    run(cfg, out, report=False)
    log = capsys.readouterr().err
    assert log.count("finished in an earlier run") == 6
    assert "samples/s" not in log.replace("fits/s", "")  # nothing trained or encoded again
    assert read_records(out / "records.jsonl") == before

    changed = cfg.recipe("wise_ft").options
    changed.alphas = [0.25]
    run(cfg, out, report=False)
    log = capsys.readouterr().err
    assert "full_ft: finished in an earlier run" in log  # loaded from models/, not retrained
    models = [r["model"] for r in read_records(out / "records.jsonl")]
    assert "wise_ft[alpha=0.25]" in models and "wise_ft[alpha=0.5]" not in models
    wise = [r for r in read_records(out / "records.jsonl") if r["model"] == "wise_ft[alpha=0.25]"]
    assert len(wise) == 4


def test_a_run_directory_of_another_config_is_refused(tmp_path, sentences_dir, tiny_encoder_dir):
    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir, recipes="\n  - zero_shot")
    out = run(cfg, tmp_path / "run", report=False)
    other = tiny_config(
        tmp_path, sentences_dir, tiny_encoder_dir, recipes="\n  - zero_shot", seed=5
    )
    with pytest.raises(RunDirError, match="different seed"):
        run(other, out)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a shiftlab run directory"):
        run(cfg, stranger)


def test_reference_to_a_later_or_absent_recipe_is_refused(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    cfg = tiny_config(
        tmp_path,
        sentences_dir,
        tiny_encoder_dir,
        recipes=f"\n  - wise_ft\n  - full_ft: {TINY_TRAIN}",
    )
    with pytest.raises(ConfigError, match="uses predictor 'full_ft', which no recipe before it"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_records_are_valid_json_lines(tmp_path, sentences_dir, tiny_encoder_dir):
    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir, recipes="\n  - zero_shot")
    out = run(cfg, tmp_path / "run", report=False)
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_calibrate_adds_temperature_scaled_twins(tmp_path, sentences_dir, tiny_encoder_dir):
    cfg = tiny_config(
        tmp_path,
        sentences_dir,
        tiny_encoder_dir,
        recipes=f"\n  - zero_shot\n  - full_ft: {TINY_TRAIN}",
    )
    cfg.calibrate = True
    out = run(cfg, tmp_path / "run")
    records = read_records(out / "records.jsonl")
    models = list(dict.fromkeys(r["model"] for r in records))
    assert models == ["zero_shot", "zero_shot+ts", "full_ft", "full_ft+ts"]
    by_key = {(r["model"], r["split"]): r for r in records}
    for split in ("id_val", "id_test", "imdb", "yelp"):
        twin = by_key["full_ft+ts", split]
        assert twin["calibrated"] is True and twin["recipe"] == "full_ft"
        assert twin["params"]["temperature"] > 0
        assert twin["accuracy"] == by_key["full_ft", split]["accuracy"]  # T keeps predictions
        assert "calibrated" not in by_key["full_ft", split]
    # temperature scaling minimises NLL on ID val, where it was fitted
    assert by_key["full_ft+ts", "id_val"]["nll"] <= by_key["full_ft", "id_val"]["nll"] + 1e-9
    markdown = (out / "report.md").read_text()
    assert "### Temperature scaling (fitted on ID val)" in markdown
    assert (out / "report_files" / "reliability.png").is_file()


def test_stored_predictions_recompute_every_record(tmp_path, sentences_dir, tiny_encoder_dir):
    from shiftlab.evaluate.metrics import classification_metrics
    from shiftlab.predictions import read, split_predictions

    cfg = tiny_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = run(cfg, tmp_path / "run", report=False)
    records = read_records(out / "records.jsonl")
    assert len(read(out)) == sum(r["n"] for r in records)  # one row per record and example
    for record in records:
        ids, labels, true, logits = split_predictions(out, record)
        assert len(ids) == record["n"] and len(set(ids)) == len(ids) and true is None
        metrics = classification_metrics(torch.as_tensor(logits), labels, None)
        assert metrics["accuracy"] == record["accuracy"]
        assert metrics["nll"] == pytest.approx(record["nll"], abs=1e-6)
