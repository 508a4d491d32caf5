"""Data-parallel runs through Accelerate: two gloo processes write the records one process
writes, and only the main process writes anything."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from helpers import write_config
from shiftlab import cli, config, distributed
from shiftlab.runner import run
from shiftlab.store import read_records

pytest.importorskip("accelerate")

# Logs every file write and rename under $SHIFTLAB_AUDIT_ROOT made by a launched process
# (one that has a RANK) to $SHIFTLAB_AUDIT_LOG.<rank>: Python's audit hooks see builtins.open,
# os.open, os.replace / os.rename, os.mkdir and os.remove.
AUDIT = """
import os, sys
_names = ("SHIFTLAB_AUDIT_ROOT", "SHIFTLAB_AUDIT_LOG", "RANK")
_root, _log, _rank = (os.environ.get(k) for k in _names)
if _root and _log and _rank is not None:
    _writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def _hook(event, args, _busy=[]):
        if _busy or event not in ("open", "os.rename", "os.mkdir", "os.remove"):
            return
        path = args[1] if event == "os.rename" else args[0]
        if event == "open":
            mode, flags = args[1], args[2]
            text = isinstance(mode, str)
            if not (any(c in mode for c in "wax+") if text else flags & _writes):
                return
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).startswith(_root):
            return
        _busy.append(1)
        try:
            with open(f"{_log}.{_rank}", "a") as handle:
                handle.write(f"{event} {os.fspath(path)}\\n")
        finally:
            _busy.pop()
    sys.addaudithook(_hook)
"""

METRICS_EXACT = ("model", "recipe", "split", "role", "n", "accuracy", "selected_epoch")
METRICS_CLOSE = ("nll", "ece", "macro_f1")


@pytest.fixture(scope="module")
def deterministic_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> Path:
    """A tiny random BERT without dropout, so two processes computing halves of a batch do
    exactly what one process does on the whole batch."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        source = Path(minilm_path) / name
        if source.is_file():
            shutil.copy(source, folder / name)
    torch.manual_seed(0)
    bert = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(bert).save_pretrained(folder)
    return folder


def run_config(tmp_path: Path, sentences_dir: Path, encoder: Path) -> Path:
    # Batches of 15 over the 48 training examples: 15, 15, 15 and 3, so the two processes take
    # unequal shares (8 and 7, then 2 and 1) and the losses are weighted by share. Encoding in
    # batches of 7 gives each process a different number of rows to gather.
    text = f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb, yelp]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {{name: {encoder}, batch_size: 7}}
prompts: ["a {{class_name}} review."]
recipes:
  - zero_shot
  - full_ft: {{epochs: 2, batch_size: 15, warmup_steps: 1, lr: 1e-3, select: id_val_accuracy}}
"""
    return write_config(tmp_path / "ddp.yaml", text)


def test_two_gloo_processes_write_the_records_of_one(
    tmp_path: Path, sentences_dir: Path, deterministic_encoder: Path, monkeypatch
):
    path = run_config(tmp_path, sentences_dir, deterministic_encoder)
    one = run(config.load(path), tmp_path / "one")

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    two = tmp_path / "two"
    audit_log = tmp_path / "writes"
    pythonpath = [str(hooks), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in pythonpath if p))
    monkeypatch.setenv("SHIFTLAB_AUDIT_ROOT", str(two))
    monkeypatch.setenv("SHIFTLAB_AUDIT_LOG", str(audit_log))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = ["run", str(path), "--out", str(two), "--launcher", "accelerate", "--num-processes", "2"]
    assert cli.main(argv) == 0

    expected, found = read_records(one / "records.jsonl"), read_records(two / "records.jsonl")
    assert len(found) == len(expected) == 2 * 4  # zero_shot, full_ft x (val, test, 2 OOD)
    for a, b in zip(expected, found, strict=True):
        for key in METRICS_EXACT:
            assert a.get(key) == b.get(key), (key, a["model"], a["split"])
        for key in METRICS_CLOSE:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (key, a["model"])

    # One writer: the main process wrote everything, the other process wrote nothing at all.
    main_writes = (audit_log.parent / f"{audit_log.name}.0").read_text().splitlines()
    assert any(line.endswith("records.jsonl") for line in main_writes)
    assert any("config.yaml" in line for line in main_writes)
    assert not (audit_log.parent / f"{audit_log.name}.1").exists()

    # ... and the run directory holds what the one-process run's does, nothing half-written
    # (cached features are named by the weights' hash, which fp rounding changes).
    def listing(root: Path) -> list[str]:
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        return sorted("cache/*" if n.startswith("cache/") else n for n in names)

    files = listing(two)
    assert files == listing(one)
    assert not [f for f in files if f.endswith(".tmp")]
    assert json.loads((two / "state" / "full_ft.json").read_text())["records"]


def test_the_launcher_options_are_not_passed_on():
    argv = ["run", "c.yaml", "--launcher", "accelerate", "--num-processes=2", "--set", "a=1"]
    assert cli._without_launcher(argv) == ["run", "c.yaml", "--set", "a=1"]


def test_one_process_is_the_main_process_and_needs_no_process_group():
    assert distributed.world_size() == 1 and distributed.is_main_process()
    distributed.setup("cpu")  # a no-op
    assert not torch.distributed.is_initialized()
    with distributed.main_writes() as main:
        assert main


def test_the_accelerate_launcher_needs_processes_on_a_cpu(monkeypatch):
    from shiftlab.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs --num-processes N"):
        distributed.launch(["run", "x.yaml"], None)
    with pytest.raises(ConfigError, match="needs 2 or more processes"):
        distributed.launch(["run", "x.yaml"], 1)
    assert sys.executable  # the launcher runs this interpreter
