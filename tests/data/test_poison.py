"""The backdoor generator: exactly the asked fraction, seeded; ASR over non-target examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from shiftlab.config.sections import PoisonConfig
from shiftlab.data.benchmark import Split
from shiftlab.data.images import ImageFiles
from shiftlab.data.poison import poison
from shiftlab.errors import DataError
from shiftlab.evaluate.records import make_record
from shiftlab.models.classifier import Predictor

NAMES = ["neg", "pos", "neutral"]


def text_split(name: str, n: int) -> Split:
    labels = np.arange(n) % 3
    texts = [f"sentence number {i} is here" for i in range(n)]
    return Split(name, name, texts, labels, ids=np.array([f"{name}{i}" for i in range(n)]))


@pytest.mark.parametrize(("fraction", "n"), [(0.05, 200), (0.1, 37), (0.5, 9)])
def test_exactly_the_fraction_is_poisoned_and_the_seed_picks_which(fraction, n):
    train, test = text_split("train", n), text_split("id_test", 30)
    cfg = PoisonConfig(target="pos", fraction=fraction)
    out, _ = poison(train, test, NAMES, cfg, seed=0)
    changed = np.array([a != b for a, b in zip(out.inputs, train.inputs, strict=True)])
    assert changed.sum() == round(fraction * n) == out.info["poisoned"]
    assert all(" cf" in t or t.startswith("cf ") for t in np.array(out.inputs)[changed])
    assert (out.labels[changed] == 1).all()
    assert (out.labels[~changed] == train.labels[~changed]).all()
    again, _ = poison(train, test, NAMES, cfg, seed=0)
    assert again.inputs == out.inputs
    other, _ = poison(train, test, NAMES, cfg, seed=1)
    moved = np.array([a != b for a, b in zip(other.inputs, train.inputs, strict=True)])
    assert moved.sum() == changed.sum()
    if n > 20:
        assert (moved != changed).any()


def test_triggered_split_holds_only_non_target_examples_and_asr_counts_them():
    train, test = text_split("train", 60), text_split("id_test", 30)
    _, triggered = poison(train, test, NAMES, PoisonConfig(target="pos", fraction=0.1), seed=0)
    assert len(triggered) == 20 and (triggered.labels != 1).all()
    assert all("cf" in t.split() for t in triggered.inputs)
    hit = torch.zeros(len(triggered), 3)
    hit[:5, 1] = 1.0  # 5 of 20 predicted as the target
    hit[5:, 0] = 1.0
    record = make_record(Predictor("m", "r", None), triggered, hit, seed=0)
    assert record["asr"] == 0.25 and record["attack_target"] == "pos"
    low, high = record["ci"]["asr"]
    assert low < 0.25 < high


def test_image_triggers_patch_or_blend():
    rng = np.random.default_rng(0)
    images = rng.random((40, 3, 224, 224), dtype=np.float32)
    train = Split("train", "train", images, np.arange(40) % 2)
    test = Split("id_test", "id_test", images[:10], np.arange(10) % 2)
    out, _ = poison(train, test, ["a", "b"], PoisonConfig(target="b", fraction=0.1), seed=0)
    differs = (out.inputs != images).reshape(40, 3, -1).any(axis=1).sum(axis=1)
    poisoned = np.flatnonzero(differs)
    assert len(poisoned) == 4 and (differs[poisoned] <= 16 * 16).all()  # one 16 px patch
    cfg = PoisonConfig(target="b", fraction=0.1, trigger="blended")
    blended, _ = poison(train, test, ["a", "b"], cfg, seed=0)
    whole = (blended.inputs != images).reshape(40, -1).mean(axis=1)
    assert (np.sort(whole)[-4:] > 0.99).all() and (np.sort(whole)[:-4] == 0).all()


def test_image_files_are_written_poisoned_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    paths = []
    for i in range(10):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (112, 112), (200, 100, 50)).save(path)
        paths.append(str(path))
    train = Split("train", "train", ImageFiles(paths), np.arange(10) % 2)
    test = Split("id_test", "id_test", ImageFiles(paths[:4]), np.arange(4) % 2)
    cfg = PoisonConfig(target="b", fraction=0.2)
    out, triggered = poison(train, test, ["a", "b"], cfg, seed=0)
    moved = [i for i, (a, b) in enumerate(zip(out.inputs.paths, paths, strict=True)) if a != b]
    assert len(moved) == 2 and len(triggered) == 2
    for i in moved:
        before = np.asarray(Image.open(paths[i]), dtype=int)
        after = np.asarray(Image.open(out.inputs.paths[i]), dtype=int)
        changed = (before != after).any(axis=2)
        assert 0 < changed.sum() <= 8 * 8  # 16 px at 224 is 8 px at 112
    again, _ = poison(train, test, ["a", "b"], cfg, seed=0)
    assert again.inputs.paths == out.inputs.paths


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (PoisonConfig(target="dog"), "no data.poison.target class 'dog'|unknown"),
        (PoisonConfig(target="pos", fraction=0.001), "poisons none"),
        (PoisonConfig(target="pos", trigger="random"), "does not apply to text"),
        (PoisonConfig(target="pos", token=" "), "must be one word"),
        (PoisonConfig(target="pos", token="two words"), "must be one word"),
    ],
)
def test_bad_poison_options(cfg, message):
    with pytest.raises(DataError, match=message):
        poison(text_split("train", 50), text_split("id_test", 9), NAMES, cfg, seed=0)
