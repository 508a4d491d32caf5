"""Language models in whole runs: tasks, capabilities, recipes, conjugate prompts, bad input."""

import re

import pytest

from helpers import write_config
from shiftlab import config, predictions
from shiftlab.cli import main
from shiftlab.errors import ConfigError
from shiftlab.runner import run
from shiftlab.store import read_records

CONFIG = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [amazon_cells]
  ood_domains: [yelp]
  max_per_domain: 60
  max_per_ood_domain: 16
backbone: hf_causal_lm:{lm}
task:
  template: "Review: {{text}}\\nSentiment:"
  label_words: {{negative: " negative", positive: " positive"}}
capabilities:
  - name: imdb_flipped
    data: {{kind: sentiment_sentences, path: {sentences}, id_domains: [imdb], max_per_domain: 40}}
    template: "Review: {{text}}\\nSentiment:"
    label_words: {{negative: " negative", positive: " positive"}}
    shots: 2
    label_map: permuted
    max_examples: 6
recipes:
  - zero_shot
  - sft: {{epochs: 1, batch_size: 8, lr: 1.0e-4, select: id_val_accuracy}}
  - lora: {{epochs: 1, batch_size: 8, lr: 1.0e-3}}
  - wise_ft: {{finetuned: lora, alphas: [0, 0.5, 1]}}
conjugate:
  - leetspeak: {{on: [lora]}}
"""


def lm_config(tmp_path, sentences_dir, tiny_lm_dir):
    body = CONFIG.format(sentences=sentences_dir, lm=tiny_lm_dir)
    return write_config(tmp_path / "lm.yaml", body)


def test_lm_run_scores_tasks_capabilities_and_conjugate_prompts(
    tmp_path, sentences_dir, tiny_lm_dir
):
    cfg = config.load(lm_config(tmp_path, sentences_dir, tiny_lm_dir))
    out = run(cfg, tmp_path / "run")
    records = read_records(out / "records.jsonl")
    plain = [r for r in records if not r.get("conjugate")]
    models = list(dict.fromkeys(r["model"] for r in plain))
    assert models[:3] == ["zero_shot", "sft", "lora"] and "wise_ft[alpha=0.5]" in models
    sft = next(r for r in plain if r["model"] == "sft")
    assert sft["selected_by"] == "id_val_accuracy" and sft["standard"]
    splits = {r["split"] for r in plain if r["model"] == "lora"}
    assert splits == {"id_val", "id_test", "yelp", "imdb_flipped"}
    cap = next(r for r in plain if r["split"] == "imdb_flipped" and r["model"] == "lora")
    assert cap["capability"] and cap["task"] == "imdb_flipped" and cap["n"] == 6
    by = {(r["model"], r["split"]): r for r in plain}
    for split in ("id_test", "yelp"):  # WiSE-FT's end points are the pretrained and LoRA models
        assert by["wise_ft[alpha=0]", split]["nll"] == pytest.approx(
            by["zero_shot", split]["nll"], abs=1e-5
        )
        assert by["wise_ft[alpha=1]", split]["nll"] == pytest.approx(
            by["lora", split]["nll"], abs=1e-4
        )
    conj = [r for r in records if r.get("conjugate") == "leetspeak"]
    assert {r["model"] for r in conj} == {"lora"} and len(conj) == 4
    # predictions tell a conjugate record's rows from the plain ones of the same model and split
    table = predictions.read(out)
    rows = [
        (m, c)
        for m, c, s in zip(
            table["model"].to_pylist(),
            table["conjugate"].to_pylist(),
            table["split"].to_pylist(),
            strict=True,
        )
        if s == "yelp"
    ]
    assert (
        rows.count(("lora", None)) == rows.count(("lora", "leetspeak")) == by["lora", "yelp"]["n"]
    )
    for record in (by["lora", "yelp"], next(r for r in conj if r["split"] == "yelp")):
        _, labels, _, logits = predictions.split_predictions(out, record)
        assert (logits.argmax(axis=1) == labels).mean() == pytest.approx(record["accuracy"])
    page = (out / "report.md").read_text()
    assert "### Capabilities: tasks the model never trained on" in page
    assert "### Conjugate prompting" in page


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            '  label_words: {negative: " negative", positive: " positive"}\ncap',
            "cap",
            "neither label words",
        ),
        (
            'template: "Review: {text}\\nSentiment:"\n  label',
            'template: "{review}"\n  label',
            "template field 'review'",
        ),
        ("    shots: 2", "    shots: 500", r"shots=500 but its training split has"),
        ('positive: " positive"}\ncap', 'positive: " "}\ncap', r"label word"),
        ("{on: [lora]}", "{on: [lora], cases: ends}", r"conjugate.leetspeak.*cases.*case"),
    ],
)
def test_bad_lm_input_gives_one_line_and_no_run_dir(
    tmp_path, capsys, sentences_dir, tiny_lm_dir, old, new, pattern
):
    path = lm_config(tmp_path, sentences_dir, tiny_lm_dir)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()


def test_conjugate_on_a_classifier_is_refused(tmp_path, capsys, sentences_dir, tiny_encoder_dir):
    text = f"""
data: {{kind: sentiment_sentences, path: {sentences_dir}, max_per_domain: 40}}
backbone: {tiny_encoder_dir}
recipes: [linear_probe]
conjugate: [leetspeak]
"""
    out = tmp_path / "out"
    code = main(["run", str(write_config(tmp_path / "c.yaml", text)), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "conjugate: applies to language models" in err and not out.exists()


FACTS = """
data:
  kind: fictitious_facts
  people: {{forget: 2, retain: 3, holdout: 2}}
  qa_per_person: 1
backbone: hf_causal_lm:{lm}
task: {{name: facts, template: "{{text}}", max_new_tokens: 4}}
recipes:
  - sft: {{epochs: 1, batch_size: 4, lr: 1.0e-4, max_length: 64}}
unlearn:
  forget: {{domain: forget_bio}}
  on: sft
  knowmem_forget: forget_qa
  knowmem_retain: retain_qa
  holdout: holdout_bio
  forget_texts: forget_bio
  methods:
    - retrain
    - gradient_ascent: {{causal_lm: {{epochs: 1, batch_size: 2, lr: 1.0e-5, max_length: 64}}}}
"""


def test_a_generation_task_unlearned_against_retraining(tmp_path, tiny_lm_dir):
    path = write_config(tmp_path / "facts.yaml", FACTS.format(lm=tiny_lm_dir))
    out = run(config.load(path), tmp_path / "facts")
    records = read_records(out / "records.jsonl")
    sft = [r for r in records if r["model"] == "sft" and r["role"] != "unlearn"]
    assert {r["split"] for r in sft} >= {"id_test", "holdout_bio", "forget_qa"}
    assert all("rouge_l" in r and "accuracy" not in r for r in sft)  # generation: no accuracy
    summaries = {r["unlearn"]["method"]: r for r in records if r["role"] == "unlearn"}
    assert set(summaries) == {"original", "retrain", "gradient_ascent"}
    assert summaries["retrain"]["privleak"] == 0.0
    aurocs = summaries["original"]["membership_auroc"]
    assert set(aurocs) == {"loss", "zlib", "reference", "min_k", "min_k_pp"}
    assert all(0.0 <= v <= 1.0 for v in aurocs.values())
    page = (out / "report.md").read_text()
    assert "### Unlearning 2 training examples" in page
    assert "### Membership of sft's training data" in page
    assert "### Generation: exact match / ROUGE-L F1" in page


def test_a_misspelt_conjugate_option_is_refused_before_the_model_loads(
    tmp_path, sentences_dir, tiny_lm_dir, monkeypatch
):
    path = lm_config(tmp_path, sentences_dir, tiny_lm_dir)
    path.write_text(path.read_text().replace("{on: [lora]}", "{on: [lora], numbrs: keep}"))
    loaded = []
    monkeypatch.setattr("shiftlab.session.load_backbone", lambda *a, **k: loaded.append(a))
    with pytest.raises(ConfigError, match=r"conjugate.*numbrs.*numbers"):
        config.load(path)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert not loaded and not (tmp_path / "out").exists()
