"""The hf_datasets loader on tiny datasets built here and saved to disk."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from PIL import Image  # noqa: E402

from shiftlab.config.sections import DataConfig  # noqa: E402
from shiftlab.data.batches import _Decoded  # noqa: E402
from shiftlab.data.build import build_benchmark  # noqa: E402
from shiftlab.data.hf_data import HFDatasetsOptions, hf_datasets  # noqa: E402
from shiftlab.data.images import ImageFiles  # noqa: E402
from shiftlab.errors import DataError  # noqa: E402
from shiftlab.typed import build  # noqa: E402

MODES = [("L", (5, 7)), ("RGBA", (9, 4)), ("P", (6, 6)), ("RGB", (12, 3)), ("1", (4, 4))]


def _image(i: int) -> Image.Image:
    mode, size = MODES[i % len(MODES)]
    colour = {"L": 200, "RGBA": (10, 20, 30, 255), "P": 3, "RGB": (i, 2 * i, 3 * i), "1": 1}[mode]
    return Image.new(mode, size, colour)


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 images of five modes and sizes, a ClassLabel (3 names, 'bird' unused), 2 domains."""
    folder = tmp_path_factory.mktemp("hf") / "pets"
    n = 20
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "label": datasets.ClassLabel(names=["cat", "dog", "bird"]),
            "site": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "img": [_image(i) for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "site": ["shelter" if i < 12 else "street" for i in range(n)],
        },
        features=features,
    )
    datasets.DatasetDict({"train": ds, "test": ds.select(range(4))}).save_to_disk(str(folder))
    return folder


def test_image_dataset_loads_lazily_with_domains_and_class_names(image_dataset):
    cfg = HFDatasetsOptions(path=str(image_dataset), domain_column="site")
    loaded = hf_datasets(cfg, None)
    assert loaded.modality == "image"
    assert loaded.class_names == ["cat", "dog", "bird"]  # the ClassLabel's names, in order
    assert list(loaded.domains) == ["shelter", "street"]
    shelter, street = loaded.domains["shelter"], loaded.domains["street"]
    assert (len(shelter), len(street)) == (12, 8)
    assert shelter.labels.tolist() == [i % 2 for i in range(12)]
    assert isinstance(street.inputs, ImageFiles)
    assert list(street.inputs) == [f"hf:{i}" for i in range(12, 20)]  # keys, not pixels
    for i in range(len(MODES)):
        image = shelter.inputs.load(i)
        assert image.mode == "RGB" and image.size == MODES[i][1]
    assert shelter.inputs.load(1).getpixel((0, 0)) == (10, 20, 30)
    assert shelter.inputs.load(3).getpixel((0, 0)) == (3, 6, 9)


def test_reader_survives_pickling_as_for_dataloader_workers(image_dataset):
    files = hf_datasets(HFDatasetsOptions(path=str(image_dataset)), None).domains["all"].inputs
    copy = pickle.loads(pickle.dumps(files.subset(np.array([3, 1]))))
    assert copy.paths == ["hf:3", "hf:1"]
    assert np.array_equal(np.asarray(copy.load(0)), np.asarray(files.load(3)))
    assert copy.digest() == files.subset(np.array([3, 1])).digest()
    assert len(pickle.dumps(files)) < 20_000  # the reader pickles as file paths, not pixels
    import torch

    loader = torch.utils.data.DataLoader(
        _Decoded(files, _ToTensor(), False), batch_size=4, num_workers=1
    )
    batch = next(iter(loader))
    assert batch.shape == (4, 3, 2, 2)


class _ToTensor:
    """A stand-in for a backbone's transform: 2x2 RGB tensors."""

    def pil(self, image, train=False):
        import torch

        return torch.from_numpy(np.asarray(image.resize((2, 2)), dtype=np.float32)).permute(2, 0, 1)


def test_benchmark_from_a_split_and_feature_cache_keys_differ_by_source(image_dataset):
    cfg = build(DataConfig, {"kind": "hf_datasets", "id_domains": ["shelter"]}, "data")
    options = HFDatasetsOptions(path=str(image_dataset), domain_column="site")
    bench = build_benchmark(hf_datasets(options, None), cfg, "hf")
    assert [s.name for s in bench.ood] == ["street"]
    assert bench.train.inputs.reader is not None  # concatenation keeps the reader
    test_split = hf_datasets(HFDatasetsOptions(path=str(image_dataset), dataset_split="test"), None)
    train_split = hf_datasets(HFDatasetsOptions(path=str(image_dataset)), None)
    first4 = train_split.domains["all"].inputs.subset(np.arange(4))
    assert list(first4) == list(test_split.domains["all"].inputs)  # same keys ...
    assert first4.digest() != test_split.domains["all"].inputs.digest()  # ... other source
    with pytest.raises(DataError, match="no split 'valid'"):
        hf_datasets(HFDatasetsOptions(path=str(image_dataset), dataset_split="valid"), None)


def test_user_class_names_reorder_a_class_label(image_dataset):
    loaded = hf_datasets(HFDatasetsOptions(path=str(image_dataset)), ["dog", "cat", "bird"])
    assert loaded.class_names == ["dog", "cat", "bird"]
    assert loaded.domains["all"].labels[:4].tolist() == [1, 0, 1, 0]


def test_text_dataset_with_string_labels_and_missing_ones(tmp_path):
    ds = datasets.Dataset.from_dict(
        {
            "sentence": ["good", "bad", "fine", "awful", "unlabelled"],
            "sentiment": ["pos", "neg", "pos", "neg", None],
        }
    )
    ds.save_to_disk(str(tmp_path / "texts"))
    cfg = HFDatasetsOptions(path=str(tmp_path / "texts"), text_column="sentence")
    with pytest.raises(DataError, match="'label' \\(data.label_column\\) not found"):
        hf_datasets(cfg, None)
    cfg.label_column = "sentiment"
    loaded = hf_datasets(cfg, None)
    assert loaded.modality == "text" and loaded.class_names == ["neg", "pos"]
    assert loaded.domains["all"].inputs == ["good", "bad", "fine", "awful"]
    assert loaded.domains["all"].labels.tolist() == [1, 0, 1, 0]


def test_csv_data_files_by_format(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("text,label,where\nhi,1,x\nho,0,y\nhu,1,y\n")
    cfg = HFDatasetsOptions(
        path=str(tmp_path / "data"),
        format="csv",
        data_files=["a.csv"],
        text_column="text",
        domain_column="where",
    )
    loaded = hf_datasets(cfg, None)
    assert list(loaded.domains) == ["x", "y"]
    assert loaded.domains["y"].inputs == ["ho", "hu"]
    assert loaded.class_names == ["0", "1"]
    assert (tmp_path / "cache" / "hf-datasets").is_dir()


def test_imagefolder_format_reads_class_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    for i, name in enumerate(["cat", "dog", "cat", "dog"]):
        (tmp_path / "pics" / name).mkdir(parents=True, exist_ok=True)
        Image.new("L", (3 + i, 3), 50 * i).save(tmp_path / "pics" / name / f"{i}.png")
    loaded = hf_datasets(HFDatasetsOptions(path=str(tmp_path / "pics"), format="imagefolder"), None)
    assert loaded.class_names == ["cat", "dog"]
    files = loaded.domains["all"].inputs
    assert sorted(files.load(i).size[0] for i in range(4)) == [3, 4, 5, 6]
    assert sorted(loaded.domains["all"].labels.tolist()) == [0, 0, 1, 1]


def test_a_run_config_reaches_the_loader(image_dataset):
    from shiftlab.config.load import parse_data
    from shiftlab.data import load_benchmark

    raw = {
        "kind": "hf_datasets",
        "path": str(image_dataset),
        "dataset_split": "train",
        "domain_column": "site",
        "id_domains": ["shelter"],
        "split": {"train": 0.5, "val": 0.25, "test": 0.25},
    }
    bench = load_benchmark(parse_data(raw))
    # 6 a class, cut at round(3) and round(4.5) = 4: 3 / 1 / 2 a class
    assert (len(bench.train), len(bench.val), len(bench.test)) == (6, 2, 4)
    assert [s.name for s in bench.ood] == ["street"]


def test_a_string_image_column_names_files_beside_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    for i in range(3):
        Image.new("LA", (2 + i, 2), (9, 255)).save(tmp_path / "data" / "imgs" / f"{i}.png")
    (tmp_path / "data" / "a.csv").write_text(
        "file,label\nimgs/0.png,x\nimgs/1.png,y\nimgs/2.png,x\n"
    )
    cfg = HFDatasetsOptions(
        path=str(tmp_path / "data"), format="csv", data_files=["a.csv"], image_column="file"
    )
    loaded = hf_datasets(cfg, None)
    files = loaded.domains["all"].inputs
    assert files.reader is None and files[1] == str(tmp_path / "data" / "imgs" / "1.png")
    assert files.load(2).size == (4, 2) and files.load(2).getpixel((0, 0)) == (9, 9, 9)
