"""image_folder: both layouts, any image mode, unreadable files, and photo corruptions."""

import numpy as np
import pytest
from PIL import Image

from shiftlab.config.load import parse
from shiftlab.data import load_benchmark
from shiftlab.data.benchmark import take
from shiftlab.data.image_folder import ImageFolderOptions, image_folder
from shiftlab.data.images import Corruption, ImageFiles
from shiftlab.errors import DataError


def write_images(folder, n, mode, size=(20, 14), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(array).convert(mode)
        suffix = ".png" if mode in ("RGBA", "P", "L") else ".jpg"
        image.save(folder / f"{i}{suffix}")


def test_domain_layout_reads_domains_classes_and_paths(tiny_images_dir):
    loaded = image_folder(ImageFolderOptions(path=str(tiny_images_dir)), None)
    assert list(loaded.domains) == ["photo", "sketch"]
    assert loaded.class_names == ["dog", "guitar", "house"] and loaded.modality == "image"
    photo = loaded.domains["photo"]
    assert isinstance(photo.inputs, ImageFiles) and len(photo) == 24
    assert np.bincount(photo.labels).tolist() == [8, 8, 8]
    for path, label in zip(photo.inputs, photo.labels, strict=True):
        assert f"/photo/{loaded.class_names[label]}/" in path


def test_single_domain_layout_and_every_image_mode(tmp_path):
    write_images(tmp_path / "cat", 3, "L")
    write_images(tmp_path / "dog", 3, "RGBA", seed=1)
    write_images(tmp_path / "fox", 3, "P", seed=2)
    loaded = image_folder(ImageFolderOptions(path=str(tmp_path)), None)
    assert list(loaded.domains) == ["all"] and loaded.class_names == ["cat", "dog", "fox"]
    files = loaded.domains["all"].inputs
    for i in range(len(files)):
        assert files.load(i).mode == "RGB"


def test_a_domain_without_class_folders_is_refused(tmp_path):
    write_images(tmp_path / "photo" / "dog", 2, "RGB")
    write_images(tmp_path / "sketch", 2, "RGB")  # images straight in the domain folder
    with pytest.raises(DataError, match="sketch has no class folders"):
        image_folder(ImageFolderOptions(path=str(tmp_path)), None)


def test_missing_folder_and_unreadable_images(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        image_folder(ImageFolderOptions(path=str(tmp_path / "nowhere")), None)
    write_images(tmp_path / "a", 3, "RGB")
    write_images(tmp_path / "b", 3, "RGB", seed=1)
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"unreadable image .*broken\.jpg"):
        image_folder(ImageFolderOptions(path=str(tmp_path)), None)
    loaded = image_folder(ImageFolderOptions(path=str(tmp_path), on_bad_image="skip"), None)
    assert len(loaded.domains["all"]) == 6
    assert not any(p.endswith("broken.jpg") for p in loaded.domains["all"].inputs)


def test_photo_corruptions_are_imagenet_c_and_deterministic(tiny_images_dir):
    cfg = parse(
        {
            "data": {
                "kind": "image_folder",
                "path": str(tiny_images_dir),
                "id_domains": ["photo"],
                "ood_domains": [],
                "corruptions": {"types": ["gaussian_noise", "fog"], "severities": [1, 5]},
            }
        }
    )
    bench = load_benchmark(cfg.data)
    assert [s.name for s in bench.ood] == ["gaussian_noise_1", "gaussian_noise_5", "fog_1", "fog_5"]
    noisy = bench.ood[1].inputs
    assert noisy.corruption == Corruption("gaussian_noise", 5, 0)
    clean = np.asarray(take(bench.test.inputs, np.array([0])).load(0), dtype=np.float64)
    first, again = (np.asarray(noisy.load(0), dtype=np.float64) for _ in range(2))
    assert np.array_equal(first, again)  # seeded per image
    assert np.abs(first - clean).mean() > 10  # severity 5 noise is visible
    cfg.data.corruptions.types = ["gaussian_noize"]
    with pytest.raises(DataError, match="did you mean 'gaussian_noise'"):
        load_benchmark(cfg.data)
