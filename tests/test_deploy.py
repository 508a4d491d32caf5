"""Export and predict: the exported folder, loaded by its own library in a fresh process that
never imports shiftlab, gives the run's predictions; predict reproduces the records."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shiftlab
from helpers import write_config
from shiftlab import config
from shiftlab.cli import main
from shiftlab.data import load_benchmark
from shiftlab.runner import run
from shiftlab.store import read_records

TEXT = """
data:
  kind: sentiment_sentences
  path: {data}
  id_domains: [amazon_cells]
  ood_domains: [imdb, yelp]
  max_per_domain: 60
  max_per_ood_domain: 40
backbone: {{name: minilm, max_length: 48}}
prompts: ["a {{class_name}} review."]
seed: 0
calibrate: true
recipes:
  - zero_shot
  - full_ft: {{epochs: 1, batch_size: 12, lr: 5.0e-5, warmup_steps: 1}}
  - wise_ft: {{finetuned: full_ft, alphas: [0.5]}}
"""

IMAGES = """
data: {{kind: image_folder, path: {data}, id_domains: [photo], ood_domains: [sketch]}}
backbone: {{name: "timm:test_efficientnet", pretrained: false, image_size: 32}}
seed: 0
recipes:
  - full_ft: {{epochs: 1, batch_size: 8, lr: 1.0e-3, warmup_steps: 1}}
"""

# Runs in a fresh interpreter: loads the export with its own library only.
CHILD = r"""
import json, sys
import numpy as np
task = json.load(open(sys.argv[1]))
if task["format"] == "sentence-transformers":
    from sentence_transformers import SentenceTransformer
    logits = SentenceTransformer(task["dir"], device="cpu").encode(task["inputs"])
elif task["format"] == "open_clip":
    import open_clip, torch
    import torch.nn.functional as F
    from PIL import Image
    from safetensors.torch import load_file
    open_clip.add_model_config(task["dir"] + "/" + task["architecture"] + ".json")
    model, _, preprocess = open_clip.create_model_and_transforms(
        task["architecture"], pretrained=task["dir"] + "/open_clip.pt")
    head = load_file(task["dir"] + "/head.safetensors")
    with torch.no_grad():
        images = torch.stack([preprocess(Image.open(p)) for p in task["inputs"]])
        logits = (F.normalize(model.encode_image(images), dim=-1) @ head["weight"].T
                  + head["bias"]).numpy()
else:
    import timm, torch
    from PIL import Image
    model = timm.create_model(task["architecture"], pretrained=True, num_classes=task["k"],
                              pretrained_cfg_overlay=task["overlay"]).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    with torch.no_grad():
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in task["inputs"]])
        logits = model(batch)
        if task["format"] == "lit":  # the LiT card's line: project, normalise, head
            import torch.nn.functional as F
            from safetensors.torch import load_file
            head = load_file(task["dir"] + "/lit_head.safetensors")
            logits = F.normalize(logits @ head["projection"].T, dim=-1) @ head["weight"].T
            logits = logits + head["bias"]
        logits = logits.numpy()
assert "shiftlab" not in sys.modules
json.dump({"logits": np.asarray(logits).tolist()}, open(sys.argv[2], "w"))
"""


def recorded(run_dir: Path, model: str, split: str) -> tuple[dict, pd.DataFrame]:
    """The record of ``model`` on ``split`` and its per-example predictions."""
    record = next(
        r for r in read_records(run_dir / "records.jsonl")
        if r["model"] == model and r["split"] == split and not r.get("adapter")
    )  # fmt: skip
    table = pd.read_parquet(run_dir / record["predictions"])
    return record, table[(table.model == model) & (table.split == split)]


def same_as_run(
    logits: np.ndarray, table: pd.DataFrame, rtol: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Assert the export's logits are the run's (same argmax on every example, within 1e-4,
    relative ``rtol`` on top); return both."""
    expected = np.stack(table.logits.to_numpy())
    assert np.array_equal(logits.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(logits, expected, rtol=rtol, atol=1e-4)
    return logits, expected


def in_fresh_process(task: dict, tmp_path: Path) -> np.ndarray:
    """Logits the export gives in an interpreter that never imports shiftlab."""
    (tmp_path / "task.json").write_text(json.dumps(task), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "task.json"), str(tmp_path / "out.json")],
        check=True,
        cwd=tmp_path,
    )
    return np.array(json.loads((tmp_path / "out.json").read_text())["logits"])


def exported_texts(run_dir: Path, model: str, tmp_path: Path) -> tuple[dict, pd.DataFrame, dict]:
    """Export ``model`` of a text run: its ID test record and predictions, and the fresh
    process's task reading the export with sentence-transformers on those texts, in order."""
    assert main(["export", str(run_dir), model, "--out", str(tmp_path / "export")]) == 0
    record, table = recorded(run_dir, model, "id_test")
    bench = load_benchmark(config.load(run_dir / "config.yaml").data)
    texts = dict(zip(bench.test.ids, bench.test.inputs, strict=True))
    task = {
        "format": "sentence-transformers",
        "dir": str(tmp_path / "export"),
        "inputs": [texts[e] for e in table.example],
    }
    return record, table, task


def exported_images(cfg, tmp_path: Path, model: str, split: str):
    """Run ``cfg``, export ``model``: the export's metadata, the run's predictions of ``model``
    on ``split`` and that split's image paths in the predictions' order."""
    run_dir = run(cfg, tmp_path / "run")
    assert main(["export", str(run_dir), model, "--out", str(tmp_path / "export")]) == 0
    meta = json.loads((tmp_path / "export" / "shiftlab.json").read_text())
    _, table = recorded(run_dir, model, split)
    scored = next(s for s in load_benchmark(cfg.data).eval_splits() if s.name == split)
    paths = dict(zip(scored.ids, scored.inputs.paths, strict=True))
    return meta, table, [paths[e] for e in table.example]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, sentences_dir, minilm_path):
    folder = tmp_path_factory.mktemp("deploy")
    cfg = config.load(write_config(folder / "c.yaml", TEXT.format(data=sentences_dir)))
    return run(cfg, folder / "run")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["wise_ft[alpha=0.5]", "full_ft+ts"])
def test_an_exported_model_is_the_runs_model_in_sentence_transformers(
    text_run, tmp_path, capsys, model
):
    """A WiSE-FT mix (made again from the saved models) and a temperature-scaled twin (T
    folded into the head)."""
    record, table, task = exported_texts(text_run, model, tmp_path)
    logits, _ = same_as_run(in_fresh_process(task, tmp_path), table)
    assert (logits.argmax(1) == table.label.to_numpy()).mean() == record["accuracy"]
    # The card: Hugging Face's format, the record's numbers with their intervals.
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "export" / "README.md")
    assert card.data.library_name == "sentence-transformers"
    low, high = record["ci"]["accuracy"]
    assert f"{record['accuracy']:.3f} [{low:.3f}, {high:.3f}]" in card.text
    assert "Paired comparison against full_ft" in card.text


@pytest.mark.slow
def test_predict_reproduces_the_records_from_the_run_and_from_the_export(
    text_run, tmp_path, capsys
):
    model = "wise_ft[alpha=0.5]"
    record, _ = recorded(text_run, model, "imdb")
    bench = load_benchmark(config.load(text_run / "config.yaml").data)
    imdb = next(s for s in bench.eval_splits() if s.name == "imdb")
    path = tmp_path / "imdb.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        for i, text, label in zip(imdb.ids, imdb.inputs, imdb.labels, strict=True):
            writer.writerow([i, text, bench.class_names[label]])
    truth = pd.read_csv(path).label
    out = tmp_path / "from_run.csv"
    args = ["--input", str(path), "--id-column", "id", "--out"]
    assert main(["predict", str(text_run), model, *args, str(out)]) == 0
    assert (pd.read_csv(out).prediction == truth).mean() == record["accuracy"]
    main(["export", str(text_run), model, "--out", str(tmp_path / "export")])
    out = tmp_path / "from_export.parquet"
    assert main(["predict", str(tmp_path / "export"), *args, str(out)]) == 0
    predicted = pd.read_parquet(out)
    assert (predicted.prediction == truth).mean() == record["accuracy"]
    assert list(predicted.columns) == ["id", "prediction", "p_negative", "p_positive"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,words\n1,great\n", "has no column 'text'"),
        (b"text\n\xff\xfe bad\n", "UTF-8"),
    ],
)
def test_a_bad_input_file_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    path = tmp_path / "in.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    export = tmp_path / "export"
    export.mkdir()
    (export / "shiftlab.json").write_text('{"format": "sentence-transformers"}')
    out = tmp_path / "out.csv"
    code = main(["predict", str(export), "--input", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_missing_image_is_one_line_and_writes_nothing(tmp_path, capsys, tiny_images_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out.csv"
    code = main(["predict", str(tmp_path), "m", "--input", str(folder), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot read image" in err[0], err
    assert not out.exists()


def test_an_exported_timm_model_is_the_runs_model_in_timm(tmp_path, tiny_images_dir, capsys):
    cfg = config.load(write_config(tmp_path / "c.yaml", IMAGES.format(data=tiny_images_dir)))
    meta, table, inputs = exported_images(cfg, tmp_path, "full_ft", "sketch")
    task = {
        "format": "timm",
        "architecture": meta["architecture"],
        "k": 3,
        "overlay": meta["overlay"],
        "inputs": inputs,
    }
    same_as_run(in_fresh_process(task, tmp_path), table)


LM = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [amazon_cells]
  ood_domains: [yelp]
  max_per_domain: 40
  max_per_ood_domain: 8
backbone: hf_causal_lm:{lm}
task:
  template: "Review: {{text}}\\nSentiment:"
  label_words: {{negative: " negative", positive: " positive"}}
recipes:
  - lora: {{epochs: 1, batch_size: 8, lr: 1.0e-2}}
"""

# Scores prompts with the base model and the PEFT adapter, as the card says: the sum of the
# log-probabilities of each label word's tokens after the prompt (trailing whitespace moved onto
# the word, word tokens without special tokens).
LM_CHILD = r"""
import json, sys
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
task = json.load(open(sys.argv[1]))
tokenizer = AutoTokenizer.from_pretrained(task["dir"])
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(task["base"]), task["dir"])
model.eval()
rows = []
with torch.no_grad():
    for prompt in task["prompts"]:
        head = prompt.rstrip()
        ids = tokenizer(head)["input_ids"]
        scores = []
        for word in task["words"]:
            cont = tokenizer(prompt[len(head):] + word, add_special_tokens=False)["input_ids"]
            logp = model(input_ids=torch.tensor([ids + cont])).logits[0].float().log_softmax(-1)
            scores.append(sum(float(logp[len(ids) - 1 + j, t]) for j, t in enumerate(cont)))
        rows.append(scores)
assert "shiftlab" not in sys.modules
json.dump({"logits": rows}, open(sys.argv[2], "w"))
"""


def test_an_exported_lora_model_is_the_runs_model_through_peft(
    tmp_path, sentences_dir, tiny_lm_dir, capsys
):
    cfg = config.load(
        write_config(tmp_path / "c.yaml", LM.format(sentences=sentences_dir, lm=tiny_lm_dir))
    )
    run_dir = run(cfg, tmp_path / "run")
    assert main(["export", str(run_dir), "lora", "--out", str(tmp_path / "export")]) == 0
    meta = json.loads((tmp_path / "export" / "shiftlab.json").read_text())
    assert meta["format"] == "peft" and (tmp_path / "export" / "adapter_config.json").is_file()
    _, table = recorded(run_dir, "lora", "id_test")
    from shiftlab.session import Session
    from shiftlab.stages import default_stages

    session = Session(cfg, run_dir, default_stages(), worker=True)
    prompts = dict(zip(session.benchmark.test.ids, session.benchmark.test.inputs, strict=True))
    task = {
        "dir": str(tmp_path / "export"),
        "base": meta["base"],
        "words": [" negative", " positive"],
        "prompts": [prompts[e].prompt for e in table.example],
    }
    (tmp_path / "task.json").write_text(json.dumps(task), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", LM_CHILD, str(tmp_path / "task.json"), str(tmp_path / "o.json")],
        check=True,
        cwd=tmp_path,
    )
    logits = np.array(json.loads((tmp_path / "o.json").read_text())["logits"])
    same_as_run(logits, table)


UNLEARN = """
data:
  kind: sentiment_sentences
  path: {data}
  id_domains: [amazon_cells]
  ood_domains: [yelp]
  max_per_domain: 120
  max_per_ood_domain: 20
  label_noise: {{rate: 0.2, seed: 2}}
backbone: {encoder}
recipes:
  - full_ft: {{epochs: 1, batch_size: 32, warmup_steps: 1}}
unlearn:
  forget: {{curation: label_issues}}
  on: full_ft
  methods: [retrain, finetune_retain]
"""


@pytest.fixture(scope="module")
def unlearn_run(tmp_path_factory, sentences_dir, tiny_encoder_dir):
    folder = tmp_path_factory.mktemp("unlearn")
    text = UNLEARN.format(data=sentences_dir, encoder=tiny_encoder_dir)
    return run(config.load(write_config(folder / "c.yaml", text)), folder / "run")


@pytest.mark.parametrize("model", ["unlearn.finetune_retain/full_ft", "unlearn.retrain/full_ft"])
def test_an_unlearned_model_is_made_again_and_exported(unlearn_run, tmp_path, capsys, model):
    _, table, task = exported_texts(unlearn_run, model, tmp_path)
    same_as_run(in_fresh_process(task, tmp_path), table)


CLIP = """
data: {{kind: image_folder, path: {data}, id_domains: [photo], ood_domains: [sketch]}}
backbone: {{name: "open_clip:{arch}", pretrained: {weights}}}
prompts: ["a photo of a {{class_name}}."]
seed: 0
recipes: [zero_shot, linear_probe]
"""


def test_an_exported_open_clip_model_is_the_runs_model_in_open_clip(
    tmp_path, tiny_images_dir, tiny_clip_config, clip_checkpoint, capsys
):
    text = CLIP.format(data=tiny_images_dir, arch=tiny_clip_config, weights=clip_checkpoint)
    cfg = config.load(write_config(tmp_path / "c.yaml", text))
    meta, table, inputs = exported_images(cfg, tmp_path, "zero_shot", "sketch")
    task = {
        "format": "open_clip",
        "dir": str(tmp_path / "export"),
        "architecture": meta["architecture"],
        "inputs": inputs,
    }
    # zero-shot logits are 100 x cosine similarities: float32 rounding scales with them
    _, expected = same_as_run(in_fresh_process(task, tmp_path), table, rtol=1e-4)
    # shiftlab.load reads it back the same way
    import shiftlab

    probs = shiftlab.load(tmp_path / "export").predict(task["inputs"])
    assert np.array_equal(probs.argmax(1), expected.argmax(1))


LIT = """
data:
  kind: image_text
  path: {pairs}
  id_domains: [light]
  ood_domains: [dark]
  split: {{train: 0.5, val: 0.25, test: 0.25}}
backbone: {{name: lit, pairs: train, image_size: 32, lit: {{epochs: 3, batch_size: 8}}}}
prompts: ["a {{class_name}} square"]
recipes:
  - clipood: {{epochs: 1, batch_size: 4}}
"""


def test_an_exported_lit_model_is_the_runs_model_in_timm(tmp_path, capsys):
    """A LiT classifier (here CLIPood's averaged weights) exports as its timm image tower plus
    the projection and head: the card's line, without shiftlab, gives the run's logits."""
    pytest.importorskip("timm")
    from shiftlab.data.image_text import sample_pairs

    pairs = sample_pairs(tmp_path)["path"]
    cfg = config.load(write_config(tmp_path / "c.yaml", LIT.format(pairs=pairs)))
    meta, table, inputs = exported_images(cfg, tmp_path, "clipood[bma]", "dark")
    out = tmp_path / "export"
    assert meta["format"] == "lit" and (out / "lit_head.safetensors").is_file()
    task = {"format": "lit", "architecture": meta["architecture"], "k": 0,
            "overlay": meta["overlay"], "dir": str(out), "inputs": inputs}  # fmt: skip
    same_as_run(in_fresh_process(task, tmp_path), table)
    same_as_run(shiftlab.load(out).logits(inputs), table)
