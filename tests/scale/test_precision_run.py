"""A run's ``precision:``: resolved into the run's config, used by training and encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import write_config
from shiftlab import cli, config, distributed
from shiftlab.precision import current_precision, set_precision
from shiftlab.runner import run
from shiftlab.store import read_records


@pytest.fixture(autouse=True)
def fp32_after():
    yield
    set_precision("fp32")  # a run sets the process's precision; leave it as other tests expect


def config_file(tmp_path: Path, sentences_dir: Path, encoder: Path, precision: str) -> Path:
    text = f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {encoder}
prompts: ["a {{class_name}} review."]
precision: {precision}
recipes:
  - zero_shot
  - full_ft: {{epochs: 1, batch_size: 16, warmup_steps: 1, accumulate_steps: 2}}
"""
    return write_config(tmp_path / f"{precision}.yaml", text)


def test_fp16_on_a_cpu_fails_in_one_line_before_the_run_directory(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys
):
    path = config_file(tmp_path, sentences_dir, tiny_encoder_dir, "fp16")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "shiftlab: error: fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU"
    assert not (tmp_path / "out").exists()


def test_auto_resolves_to_fp32_on_a_cpu_in_the_written_config(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    path = config_file(tmp_path, sentences_dir, tiny_encoder_dir, "auto")
    out = run(config.load(path), tmp_path / "auto", report=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "fp32"
    assert current_precision() == "fp32"
    assert not [p for p in (out / "cache").iterdir() if "bf16" in p.name]


def test_a_bf16_run_trains_and_encodes_in_bf16_close_to_fp32(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    fp32 = run(
        config.load(config_file(tmp_path, sentences_dir, tiny_encoder_dir, "fp32")),
        tmp_path / "fp32",
        report=False,
    )
    bf16 = run(
        config.load(config_file(tmp_path, sentences_dir, tiny_encoder_dir, "bf16")),
        tmp_path / "bf16",
        report=False,
    )
    assert yaml.safe_load((bf16 / "config.yaml").read_text())["precision"] == "bf16"
    assert current_precision() == "bf16"
    cached = sorted(p.name for p in (bf16 / "cache").iterdir())
    assert cached and all(name.endswith("-bf16.safetensors") for name in cached)
    a, b = read_records(fp32 / "records.jsonl"), read_records(bf16 / "records.jsonl")
    assert [(r["model"], r["split"]) for r in a] == [(r["model"], r["split"]) for r in b]
    assert [r["nll"] for r in a] != [r["nll"] for r in b]  # bf16 really ran
    assert np.allclose([r["nll"] for r in a], [r["nll"] for r in b], rtol=0.05)


def test_share_splits_a_batch_across_processes(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    shares = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shares.append(distributed.share(np.arange(8)))
    assert [len(s) for s in shares] == [3, 3, 2]
    assert np.array_equal(np.concatenate(shares), np.arange(8))
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert len(distributed.share(np.arange(2))) == 0  # a share may be empty
