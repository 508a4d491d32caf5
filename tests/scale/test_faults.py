"""Runs that survive SIGKILL: ``shiftlab run`` is started as a subprocess that kills itself
(SIGKILL, through SHIFTLAB_KILL_AT) mid-epoch, mid-ingredient, mid-evaluation and mid-write of
state or records; the same run started again finishes with exactly the records of a run never
interrupted, and leaves no temporary file behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers import write_config
from shiftlab import config
from shiftlab.runner import run
from shiftlab.store import read_records

RECIPES = """
  - zero_shot
  - full_ft: {epochs: 3, batch_size: 16, warmup_steps: 1}
  - wise_ft: {alphas: [0.5], select: false}
  - model_soup: {ingredients: 2, epochs_range: [2, 2], batch_size: 16, warmup_steps: 1}"""

COMMAND = "import sys; from shiftlab.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def fault_config(tmp_path_factory, sentences_dir, tiny_encoder_dir):
    folder = tmp_path_factory.mktemp("faults")
    text = f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {tiny_encoder_dir}
prompts: ["a {{class_name}} review."]
recipes:{RECIPES}
"""
    path = write_config(folder / "faults.yaml", text)
    expected = read_records(run(config.load(path), folder / "uninterrupted") / "records.jsonl")
    return path, expected


# 3 steps per epoch: step 5 is in full_ft's second epoch (after its first checkpoint, written
# by the default checkpoint_every: auto, the killed run being told that every epoch is long),
# step 18 in the soup's second ingredient (after the first was stashed); evaluation 4 is
# wise_ft's; writes 6 and 9 replace prediction, state and records files of the first entries.
RESUMED = {
    "train_step:5": "full_ft: resumed after epoch 1",
}


@pytest.mark.parametrize(
    "point", ["train_step:5", "train_step:18", "evaluate:4", "write:6", "write:9"]
)
def test_a_killed_run_resumes_to_the_uninterrupted_records(fault_config, tmp_path, point, capsys):
    path, expected = fault_config
    out = tmp_path / "run"
    env = {**os.environ, "SHIFTLAB_KILL_AT": point, "SHIFTLAB_CHECKPOINT_SECONDS": "0"}
    argv = [sys.executable, "-c", COMMAND, "run", str(path), "--out", str(out)]
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "report.html").exists()  # it died before the end

    capsys.readouterr()
    run(config.load(path), out)  # the same run again
    log = capsys.readouterr().err
    if point in RESUMED:
        assert RESUMED[point] in log
    if point == "train_step:18":  # the first ingredient was not trained again
        assert "model_soup[ingredient=0]: 96 samples" not in log
    assert read_records(out / "records.jsonl") == expected
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "scratch").exists() or not any((out / "scratch").iterdir())


def test_without_checkpoints_a_killed_recipe_starts_again(fault_config, tmp_path, capsys):
    """``checkpoint_every: null`` turns checkpoints off: the resumed run retrains the recipe
    from its first epoch, to the same records."""
    path, expected = fault_config
    out = tmp_path / "run"
    env = {**os.environ, "SHIFTLAB_KILL_AT": "train_step:5", "SHIFTLAB_CHECKPOINT_SECONDS": "0"}
    off = ["--set", "recipes.full_ft.checkpoint_every=null"]
    argv = [sys.executable, "-c", COMMAND, "run", str(path), "--out", str(out), *off]
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list(out.glob("scratch/full_ft-*/checkpoints/*.pt"))
    capsys.readouterr()
    run(config.load(path, off[1:]), out)
    assert "resumed after epoch" not in capsys.readouterr().err
    assert read_records(out / "records.jsonl") == expected
