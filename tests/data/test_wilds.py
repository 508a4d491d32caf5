"""The wilds loader on tiny WILDS-format folders that the real ``wilds`` package reads
(download off): Waterbirds (images) and CivilComments (text)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from shiftlab.config.sections import DataConfig
from shiftlab.data.build import build_benchmark
from shiftlab.data.wilds_data import WildsOptions, wilds_benchmark, wilds_eval
from shiftlab.errors import DataError
from shiftlab.typed import build

# not importorskip: importing wilds directly would ask PyPI for its latest version
pytestmark = pytest.mark.skipif(importlib.util.find_spec("wilds") is None, reason="needs wilds")

# (split, y, place) -> count: a skewed train split, group-balanced val and test (as Waterbirds).
WATERBIRDS = {
    (0, 0, 0): 16, (0, 0, 1): 4, (0, 1, 0): 4, (0, 1, 1): 16,
    (1, 0, 0): 2, (1, 0, 1): 2, (1, 1, 0): 2, (1, 1, 1): 2,
    (2, 0, 0): 3, (2, 0, 1): 3, (2, 1, 0): 3, (2, 1, 1): 3,
}  # fmt: skip
GROUPS = [
    "y:landbird_background:land",
    "y:landbird_background:water",
    "y:waterbird_background:land",
    "y:waterbird_background:water",
]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def waterbirds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/waterbirds_v1.0/: metadata.csv, RELEASE_v1.0.txt and 64 small PNGs of mixed sizes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("wilds")
    folder = root / "waterbirds_v1.0"
    rows = []
    for (split, y, place), count in WATERBIRDS.items():
        for _ in range(count):
            i = len(rows)
            name = f"{'098.Scott_Oriole' if y == 0 else '045.Northern_Fulmar'}/bird_{i:03d}.png"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            colour = (40 * y + 3 * i % 255, 120 * place, 200)
            Image.new("RGB", (8 + i % 5, 8), colour).save(folder / name)
            place_file = f"/{'b/bamboo_forest' if place == 0 else 'o/ocean'}/x_{i}.jpg"
            rows.append([i + 1, name, y, split, place, place_file])
    _write_csv(
        folder / "metadata.csv",
        ["img_id", "img_filename", "y", "split", "place", "place_filename"],
        rows,
    )
    (folder / "RELEASE_v1.0.txt").write_text("v1.0\n")
    return root


def _waterbirds(root: Path, **options: object):
    return wilds_benchmark(WildsOptions(dataset="waterbirds", root_dir=str(root), **options), None)


def _cfg(**keys: object) -> DataConfig:
    return build(DataConfig, {"kind": "wilds", **keys}, "data")


def _metadata(root: Path) -> list[dict[str, str]]:
    with (root / "waterbirds_v1.0" / "metadata.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_waterbirds_splits_are_domains_with_the_right_roles(waterbirds_root):
    loaded = _waterbirds(waterbirds_root)
    assert list(loaded.domains) == ["train", "val", "test"]
    assert loaded.class_names == ["landbird", "waterbird"]
    assert loaded.modality == "image"
    assert loaded.fixed_splits == {"train": "train"}  # Waterbirds has no ID val / test split
    bench = build_benchmark(loaded, _cfg(), "wilds")
    # ID val / test carved from WILDS train (60/20/20, stratified by group); val, test are OOD
    assert (len(bench.train), len(bench.val), len(bench.test)) == (24, 8, 8)
    assert [(s.name, s.role, len(s)) for s in bench.ood] == [("val", "ood", 8), ("test", "ood", 12)]
    train_files = {*bench.train.inputs, *bench.val.inputs, *bench.test.inputs}
    meta = _metadata(waterbirds_root)
    folder = waterbirds_root / "waterbirds_v1.0"
    assert train_files == {str(folder / r["img_filename"]) for r in meta if r["split"] == "0"}
    assert list(bench.ood[1].inputs) == [
        str(folder / r["img_filename"]) for r in meta if r["split"] == "2"
    ]


def test_waterbirds_groups_are_label_x_background(waterbirds_root):
    loaded = _waterbirds(waterbirds_root)
    assert loaded.group_names == GROUPS
    meta = [r for r in _metadata(waterbirds_root) if r["split"] == "0"]
    train = loaded.domains["train"]
    expected = [2 * int(r["y"]) + int(r["place"]) for r in meta]
    assert train.groups.tolist() == expected
    assert train.labels.tolist() == [int(r["y"]) for r in meta]
    assert train.attributes["background"].tolist() == [
        "land" if r["place"] == "0" else "water" for r in meta
    ]
    assert "background" in loaded.attributes
    # data.groups: label_x_background gives the same partition, in shiftlab's names
    bench = build_benchmark(loaded, _cfg(groups="label_x_background"), "wilds")
    assert bench.group_names == [
        f"{c}/{b}" for c in ("landbird", "waterbird") for b in ("land", "water")
    ]
    assert np.bincount(bench.ood[1].groups).tolist() == [3, 3, 3, 3]
    assert _waterbirds(waterbirds_root, groupby=[]).group_names is None


def test_waterbirds_images_decode_to_rgb(waterbirds_root):
    files = _waterbirds(waterbirds_root).domains["test"].inputs
    image = files.load(0)
    assert image.mode == "RGB" and image.size[1] == 8


def test_wilds_eval_matches_the_worst_group_accuracy_by_hand(waterbirds_root):
    meta = [r for r in _metadata(waterbirds_root) if r["split"] == "2"]
    y = np.array([int(r["y"]) for r in meta])
    group = 2 * y + np.array([int(r["place"]) for r in meta])
    predictions = y.copy()
    predictions[[0, 3, 4, 9]] = 1 - predictions[[0, 3, 4, 9]]  # a few mistakes in some groups
    by_group = [float((predictions == y)[group == g].mean()) for g in range(4)]
    results = wilds_eval("waterbirds", str(waterbirds_root), "test", predictions)
    assert results["acc_wg"] == pytest.approx(min(by_group))
    for name, accuracy in zip(GROUPS, by_group, strict=True):
        assert results[f"acc_{name}"] == pytest.approx(accuracy)
    assert all(isinstance(v, float) for v in results.values())
    assert "outdated" not in sys.modules  # wilds was imported without its PyPI version check
    scores = np.eye(2)[predictions]  # (N, C) scores give the same numbers
    assert wilds_eval("waterbirds", str(waterbirds_root), "test", scores) == results
    with pytest.raises(DataError, match="11 predictions for the 12 examples"):
        wilds_eval("waterbirds", str(waterbirds_root), "test", predictions[:-1])
    with pytest.raises(DataError, match="unknown waterbirds split 'tset'"):
        wilds_eval("waterbirds", str(waterbirds_root), "tset", predictions)


def test_missing_data_is_a_one_line_error_and_nothing_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv("SHIFTLAB_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="WILDS folder not found"):
        wilds_benchmark(WildsOptions(dataset="waterbirds", root_dir=str(tmp_path / "nope")), None)
    with pytest.raises(DataError, match="not found in .*data.download: true"):
        wilds_benchmark(WildsOptions(dataset="waterbirds", root_dir=str(tmp_path)), None)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="did you mean 'waterbirds'"):
        wilds_benchmark(WildsOptions(dataset="waterbird", root_dir=str(tmp_path)), None)


def test_relative_root_is_looked_up_in_the_data_dir(waterbirds_root, monkeypatch, tmp_path):
    monkeypatch.setenv("SHIFTLAB_DATA_DIR", str(waterbirds_root.parent))
    monkeypatch.chdir(tmp_path)
    loaded = wilds_benchmark(
        WildsOptions(dataset="waterbirds", root_dir=waterbirds_root.name), None
    )
    assert len(loaded.domains["test"]) == 12


IDENTITIES = ["male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white"]
AUXILIARY = ["identity_any", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]


@pytest.fixture(scope="module")
def civilcomments_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/civilcomments_v1.0/all_data_with_identities.csv: train 12, val 4, and a test split
    with one toxic and one non-toxic comment per identity (16)."""
    root = tmp_path_factory.mktemp("wilds-text")
    folder = root / "civilcomments_v1.0"
    folder.mkdir()
    rows = []

    def add(split: str, toxic: int, identity: int) -> None:
        flags = [1.0 if j == identity else 0.0 for j in range(len(IDENTITIES))]
        text = f"comment {len(rows)} on {IDENTITIES[identity]} {'toxic' if toxic else 'kind'}"
        rows.append([len(rows), text, 0.8 if toxic else 0.1, split, *flags, 0.0, *[0.0] * 6])

    for i in range(12):
        add("train", i % 2, i % len(IDENTITIES))
    for i in range(4):
        add("val", i % 2, 6)
    for identity in range(len(IDENTITIES)):
        for toxic in (0, 1):
            add("test", toxic, identity)
    header = ["id", "comment_text", "toxicity", "split", *IDENTITIES, *AUXILIARY, "sexual_explicit"]
    _write_csv(folder / "all_data_with_identities.csv", header, rows)
    (folder / "RELEASE_v1.0.txt").write_text("v1.0\n")
    return root


def test_civilcomments_texts_and_identity_groups(civilcomments_root):
    cfg = WildsOptions(dataset="civilcomments", root_dir=str(civilcomments_root))
    loaded = wilds_benchmark(cfg, None)
    assert loaded.modality == "text"
    assert loaded.class_names == ["non_toxic", "toxic"]
    assert list(loaded.domains) == ["train", "val", "test"]
    test = loaded.domains["test"]
    assert test.inputs[1] == "comment 17 on male toxic"
    # WILDS's training grouping: black x y, named as its evaluation names groups
    assert loaded.group_names == ["y:0_black:0", "y:0_black:1", "y:1_black:0", "y:1_black:1"]
    black = test.attributes["black"] == 1
    assert (test.groups == 2 * test.labels + black).all()
    predictions = test.labels.copy()
    predictions[[2, 12]] = 1 - predictions[[2, 12]]  # wrong on female non-toxic, black non-toxic
    results = wilds_eval("civilcomments", str(civilcomments_root), "test", predictions)
    assert results["acc_avg"] == pytest.approx(14 / 16)
    assert results["acc_wg"] == 0.0  # each (identity, label) group holds one comment
    assert results["acc_y:0_female:1"] == 0.0 and results["acc_y:1_female:1"] == 1.0


@pytest.fixture(scope="module")
def camelyon_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/camelyon17_v1.0/: metadata.csv and patches from 5 hospitals (center 1 is WILDS's
    OOD val, center 2 its OOD test)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("wilds-camelyon")
    folder = root / "camelyon17_v1.0"
    rows = []
    for center in range(5):
        for i in range(12):
            patient, node, x, y = f"{center:03d}", i % 2, 32 * i, 64
            split = 1 if i % 4 == 3 else 0  # WILDS's own ID val within the train hospitals
            rows.append([len(rows), patient, node, x, y, i % 2, center * 2 + node, center, split])
            name = f"patches/patient_{patient}_node_{node}/patch_patient_{patient}_node_{node}"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4), (center * 40, 0, 0)).save(folder / f"{name}_x_{x}_y_{y}.png")
    header = ["", "patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split"]
    _write_csv(folder / "metadata.csv", header, rows)
    (folder / "RELEASE_v1.0.txt").write_text("v1.0\n")
    return root


def test_camelyon_hospitals_are_an_attribute_and_ood_val_test_are_hospitals(camelyon_root):
    cfg = WildsOptions(dataset="camelyon17", root_dir=str(camelyon_root))
    loaded = wilds_benchmark(cfg, None)
    assert list(loaded.domains) == ["train", "id_val", "val", "test"]
    assert loaded.fixed_splits == {"train": "train", "id_val": "id_val"}  # no id_test in WILDS
    assert loaded.group_names is None
    assert set(loaded.domains["val"].attributes["hospital"]) == {1}
    assert set(loaded.domains["test"].attributes["hospital"]) == {2}
    assert set(loaded.domains["train"].attributes["hospital"]) == {0, 3, 4}
    assert loaded.domains["test"].inputs.load(0).getpixel((0, 0)) == (80, 0, 0)
    bench = build_benchmark(loaded, _cfg(groups="label_x_hospital"), "wilds")
    assert len(bench.val) == 9  # WILDS's id_val as it is
    # id_test carved from train, 0.6 : 0.2 per (label, hospital) stratum of 6 or 3: 4+2 / 2+1
    assert (len(bench.train), len(bench.test)) == (18, 9)
    assert [s.name for s in bench.ood] == ["val", "test"]
    assert bench.group_names == [f"{c}/{h}" for c in ("0", "1") for h in range(5)]


def test_a_run_config_reaches_the_loader(waterbirds_root):
    from shiftlab.config.load import parse_data
    from shiftlab.data import load_benchmark

    raw = {"kind": "wilds", "dataset": "waterbirds", "root_dir": str(waterbirds_root)}
    bench = load_benchmark(parse_data({**raw, "groupby": ["background", "y"]}))
    assert bench.group_names == GROUPS
    assert [s.name for s in bench.ood] == ["val", "test"]
