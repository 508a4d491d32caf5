"""Image-text pairs: the file is checked row by row, captions travel with their images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shiftlab.config.sections import DataConfig, PoisonConfig, SplitConfig
from shiftlab.data.build import load_benchmark
from shiftlab.data.image_text import ImageTextOptions, image_text, read_pairs, sample_pairs
from shiftlab.errors import DataError


def data_config(path: str, **more) -> DataConfig:
    split = SplitConfig(train=0.5, val=0.25, test=0.25)
    options = ImageTextOptions(path=path)
    return DataConfig(kind="image_text", id_domains=["light"], ood_domains=["dark"],
                      split=split, options=options, **more)  # fmt: skip


def test_captions_follow_their_images_into_every_split(tmp_path):
    benchmark = load_benchmark(data_config(sample_pairs(tmp_path)["path"]))
    splits = [benchmark.train, benchmark.val, benchmark.test, *benchmark.ood]
    assert sum(len(s) for s in splits) == 24
    for split in splits:
        for path, caption, label in zip(split.inputs.paths, split.captions, split.labels,
                                        strict=True):  # fmt: skip
            colour = benchmark.class_names[label]
            assert caption == f"a {colour} square"
            shade = Image.open(path).getpixel((0, 0))
            assert (shade[0] > 0) == (colour == "red")
    sub = benchmark.train.subset(np.array([1, 0]))
    assert list(sub.captions) == list(benchmark.train.captions[[1, 0]])


def test_captions_change_the_split_fingerprint(tmp_path):
    benchmark = load_benchmark(data_config(sample_pairs(tmp_path)["path"]))
    other = benchmark.train.subset(np.arange(len(benchmark.train)))
    other.captions = np.array(["something else"] * len(other), dtype=object)
    assert other.fingerprint != benchmark.train.fingerprint


def test_jsonl_and_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    rows = []
    for i, colour in enumerate(["red", "blue"] * 2):
        Image.new("RGB", (8, 8), (255, 0, 0) if colour == "red" else (0, 0, 255)).save(
            tmp_path / "imgs" / f"{i}.png"
        )
        rows.append({"image": f"{i}.png", "caption": f"{colour}!", "label": colour})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = image_text(ImageTextOptions(path=str(path), root=str(tmp_path / "imgs")), None)
    (domain,) = loaded.domains.values()
    assert loaded.class_names == ["blue", "red"] and list(domain.labels) == [1, 0, 1, 0]
    assert list(domain.attributes["caption"]) == ["red!", "blue!", "red!", "blue!"]
    pairs = read_pairs(ImageTextOptions(path=str(path), root=str(tmp_path / "imgs"),
                                        label_column=None))  # fmt: skip
    assert pairs.labels is None and len(pairs.paths) == 4


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("nothere.png,a dog,dog", r"pairs\.csv:3: image not found: .*nothere\.png"),
        ("0.png,,dog", r"pairs\.csv:3: empty caption"),
        ("0.png,  ,dog", r"pairs\.csv:3: empty caption"),
        ("bad.png,a dog,dog", r"pairs\.csv:3: unreadable image"),
        ("0.png,a dog,", r"pairs\.csv:3: empty label"),
        ("0.png,another caption,cat", r"pairs\.csv:3: the image of line 2 again; give one row"),
    ],
)
def test_a_bad_row_is_named(tmp_path, row, message):
    Image.new("RGB", (8, 8)).save(tmp_path / "0.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "pairs.csv").write_text(f"image,caption,label\n0.png,a cat,cat\n{row}\n")
    with pytest.raises(DataError, match=message):
        read_pairs(ImageTextOptions(path=str(tmp_path / "pairs.csv")))


def test_a_missing_column_is_named_with_a_suggestion(tmp_path):
    (tmp_path / "pairs.csv").write_text("image,captions,label\n0.png,a cat,cat\n")
    with pytest.raises(DataError, match="column 'caption'.*did you mean 'captions'"):
        read_pairs(ImageTextOptions(path=str(tmp_path / "pairs.csv")))


def test_poisoned_pairs_get_a_caption_of_the_target(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    poison = PoisonConfig(target="red", fraction=0.5, patch_size=56)
    benchmark = load_benchmark(data_config(sample_pairs(tmp_path)["path"], poison=poison))
    train = benchmark.train
    index = np.flatnonzero(train.poisoned)
    assert len(index) == round(0.5 * len(train)) == train.info["poisoned"]
    red = benchmark.class_names.index("red")
    assert (train.labels[index] == red).all()
    assert all("red" in c and not c.startswith("a red square") for c in train.captions[index])
    assert all(Path(train.inputs.paths[i]).parent.parent.name == "poisoned" for i in index)
    triggered = benchmark.ood[-1]
    assert triggered.name == "triggered" and (triggered.labels != red).all()
