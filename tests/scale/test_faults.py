"""Runs that survive SIGKILL: ``shiftlab run`` is started as a subprocess that kills itself
(SIGKILL, through SHIFTLAB_KILL_AT) mid-epoch, mid-ingredient, mid-evaluation and mid-write of
state or records; the same run started again finishes with exactly the records of a run never
interrupted, and leaves no temporary file behind. Every run is a fresh process with the same
environment, so that the comparison is bit for bit (a long-lived test process's state may move
the last float bits of CPU kernels)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers import write_config
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
    done = shiftlab_run(path, folder / "uninterrupted")
    assert done.returncode == 0, done.stderr[-2000:]
    return path, read_records(folder / "uninterrupted" / "records.jsonl")


def shiftlab_run(
    path, out, kill_at: str | None = None, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``shiftlab run`` in a fresh process, writing checkpoints after every epoch."""
    env = {**os.environ, "SHIFTLAB_CHECKPOINT_SECONDS": "0"}
    env.pop("SHIFTLAB_KILL_AT", None)
    if kill_at is not None:
        env["SHIFTLAB_KILL_AT"] = kill_at
    argv = [sys.executable, "-c", COMMAND, "run", str(path), "--out", str(out), *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


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
def test_a_killed_run_resumes_to_the_uninterrupted_records(fault_config, tmp_path, point):
    path, expected = fault_config
    out = tmp_path / "run"
    killed = shiftlab_run(path, out, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "report.html").exists()  # it died before the end

    again = shiftlab_run(path, out)  # the same run again
    assert again.returncode == 0, again.stderr[-2000:]
    log = again.stderr
    if point in RESUMED:
        assert RESUMED[point] in log
    if point == "train_step:18":  # the first ingredient was not trained again
        assert "model_soup[ingredient=0]: 96 samples" not in log
    assert read_records(out / "records.jsonl") == expected
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "scratch").exists() or not any((out / "scratch").iterdir())


def test_without_checkpoints_a_killed_recipe_starts_again(fault_config, tmp_path):
    """``checkpoint_every: null`` turns checkpoints off: the resumed run retrains the recipe
    from its first epoch, to the same records."""
    path, expected = fault_config
    out = tmp_path / "run"
    off = ("--set", "recipes.full_ft.checkpoint_every=null")
    killed = shiftlab_run(path, out, kill_at="train_step:5", extra=off)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list(out.glob("scratch/full_ft-*/checkpoints/*.pt"))
    again = shiftlab_run(path, out, extra=off)
    assert again.returncode == 0 and "resumed after epoch" not in again.stderr
    assert read_records(out / "records.jsonl") == expected
