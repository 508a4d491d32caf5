"""Adapters in whole runs: records, corrupted splits, bad input."""

import numpy as np
import pytest
import torch
from test_tent import cnn_classifier

from helpers import write_config
from shiftlab import config
from shiftlab.adapt import create
from shiftlab.adapt.stream import adapted_records
from shiftlab.data.benchmark import Split
from shiftlab.errors import AdaptError
from shiftlab.runner import run
from shiftlab.store import read_records

DIGITS = """
data:
  kind: digits
  id_domains: [mnist]
  ood_domains: [uci]
  max_per_domain: 600
  max_per_ood_domain: 100
  corruptions: {types: [gaussian_noise, rotate], severities: [1, 5], per_split: 60}
backbone: small_cnn
recipes:
  - full_ft: {name: source_poly, loss: poly, epochs: 2, batch_size: 64, lr: 0.05,
              optimizer: sgd, warmup_steps: 0}
adapt:
  - source
  - tent
  - conjugate: {lr: 0.01}
"""


def test_digits_run_with_adapters_writes_the_contracted_records(tmp_path):
    out = run(config.load(write_config(tmp_path / "d.yaml", DIGITS)), tmp_path / "run")
    records = read_records(out / "records.jsonl")
    adapted = [r for r in records if r["adapter"] is not None]
    # 3 adapters x 1 model x (uci + 2 corruptions x 2 severities)
    assert len(adapted) == 3 * 5
    assert {r["adapter"] for r in adapted} == {"source", "tent", "conjugate"}
    corrupted = [r for r in adapted if "corruption" in r]
    assert {(r["corruption"], r["severity"]) for r in corrupted} == {
        ("gaussian_noise", 1),
        ("gaussian_noise", 5),
        ("rotate", 1),
        ("rotate", 5),
    }
    assert all(r["params"] == {"loss": "poly", "eps": 6.0} for r in adapted)
    assert all(r["resets"] == 0 for r in adapted)
    # the source adapter reproduces the unadapted records
    plain = {r["split"]: r["accuracy"] for r in records if r["adapter"] is None}
    for r in adapted:
        if r["adapter"] == "source":
            assert r["accuracy"] == pytest.approx(plain[r["split"]])
    page = (out / "report.md").read_text()
    assert "### Test-time adaptation: accuracy by OOD split" in page
    assert "**OOD splits**: uci (100), 4 corrupted splits of ID test (2 corruptions)" in page
    assert (out / "report_files" / "adaptation_severity.png").is_file()


def test_adapter_of_a_text_model_without_batchnorm_fails_before_the_run_dir(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    text = f"""
data: {{kind: sentiment_sentences, path: {sentences_dir}, max_per_domain: 60}}
backbone: {tiny_encoder_dir}
recipes: [zero_shot]
adapt: [norm]
"""
    cfg = config.load(write_config(tmp_path / "t.yaml", text))
    with pytest.raises(AdaptError, match="adapter 'norm' cannot adapt backbone .*needs BatchNorm"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_split_smaller_than_one_batch_is_adapted_and_scored():
    model = cnn_classifier()
    images = np.random.default_rng(0).uniform(size=(5, 1, 16, 16)).astype(np.float32)
    split = Split("tiny", "ood", images, np.arange(5), info={"corruption": "x", "severity": 1})
    from shiftlab.models import Predictor

    adapter = create("tent", model, batch_size=200)
    (scored,) = adapted_records(
        adapter,
        "tent",
        Predictor("m", "full_ft", model),
        [split],
        seed=0,
        device=torch.device("cpu"),
    )
    record = scored.record
    assert record["n"] == 5 and record["adapter"] == "tent" and record["corruption"] == "x"
    assert scored.logits.shape == (5, 10)
    assert 0.0 <= record["accuracy"] <= 1.0
    assert adapter.optimizer.state  # it did adapt on the one partial batch


def test_adapter_on_an_unknown_predictor_fails_before_the_run_dir(tmp_path):
    text = DIGITS.replace("  - source\n", "  - source: {on: [source_pol]}\n")
    cfg = config.load(write_config(tmp_path / "d.yaml", text))
    from shiftlab.errors import ConfigError

    with pytest.raises(
        ConfigError, match="unknown predictor 'source_pol'; did you mean 'source_poly'"
    ):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
