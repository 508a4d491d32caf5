"""Image files on disk, decoded lazily: the inputs of image benchmarks built from folders.

A split of such a benchmark holds an :class:`ImageFiles`: the paths of its images (and, for
a corrupted copy of a split, which corruption to apply), not pixels. Pixels are made only when a
batch needs them, by :mod:`shiftlab.data.batches`, in DataLoader workers, through the
backbone's own transform; so a 10,000-image folder costs a list of paths until it is used.
Images of any mode (grayscale, RGBA, palette) are converted to RGB. Images that are not files
(rows of a Hugging Face dataset) are read the same way through an :class:`ImageReader`. An
:class:`ImageEdit` changes each decoded image before the transform (T-MARS masks its text).
"""

from __future__ import annotations

import hashlib
import sys
import types
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from shiftlab._optional import require
from shiftlab.errors import DataError


@dataclass(frozen=True)
class Corruption:
    """An ImageNet-C corruption (``imagecorruptions``) at a severity, seeded per image."""

    name: str
    severity: int
    seed: int


class ImageReader(Protocol):
    """Reads images by key instead of from files (e.g. rows of a Hugging Face dataset).

    It must pickle (DataLoader workers get a copy), and ``identity`` must say what it reads: the
    feature cache's key includes it.
    """

    identity: str

    def __call__(self, key: str):  # -> PIL.Image.Image of any mode
        """The image stored under ``key``."""
        ...


class ImageEdit(Protocol):
    """A change made to every decoded image, after any corruption and before the backbone's
    transform (e.g. T-MARS's text masking, :mod:`shiftlab.curation.tmars`).

    It must pickle (DataLoader workers get a copy), and ``identity`` must say what it does: the
    inputs' digest, hence the feature cache's key, includes it.
    """

    identity: str

    def __call__(self, image, path: str):  # PIL RGB -> PIL RGB
        """``image``, decoded from ``path``, edited."""
        ...


def to_rgb(image):  # PIL -> PIL
    """An image of any mode as RGB (transparent pixels over white, as a viewer shows them)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def open_rgb(path: str, reader: ImageReader | None = None):  # -> PIL.Image.Image
    """Decode an image file (or the image ``reader`` holds under the key ``path``) to RGB.

    Raises:
        DataError: the file cannot be read as an image (named).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if reader is not None:
            return to_rgb(reader(path))
        with Image.open(path) as image:
            return to_rgb(image)
    except (OSError, UnidentifiedImageError, ValueError, KeyError, IndexError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def imagecorruptions():  # -> module
    """The ``imagecorruptions`` package (ImageNet-C's reference code), made to run on today's
    scientific stack and to be reproducible: it calls ``skimage.filters.gaussian(...,
    multichannel=True)`` (removed in scikit-image 0.19; now ``channel_axis=-1``) and
    ``np.float_`` (removed in NumPy 2.0), and its impulse noise draws from scikit-image's own
    unseeded generator, which is given a seed from NumPy's global one (seeded per image). The
    shims keep its arithmetic exactly as written."""
    with warnings.catch_warnings():  # its imports of deprecated scipy / pkg_resources names
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        module = require("imagecorruptions", "vision")
    corruptions = sys.modules["imagecorruptions.corruptions"]
    if not getattr(corruptions, "_shiftlab_compat", False):
        import skimage
        from skimage.filters import gaussian

        def compat_gaussian(image, sigma=1, multichannel=None, **kwargs):
            if multichannel is not None:
                kwargs.setdefault("channel_axis", -1 if multichannel else None)
            return gaussian(image, sigma=sigma, **kwargs)

        def seeded_random_noise(image, **kwargs):
            kwargs.setdefault("rng", int(np.random.randint(2**31)))
            return skimage.util.random_noise(image, **kwargs)

        corruptions.gaussian = compat_gaussian
        corruptions.sk = types.SimpleNamespace(
            util=types.SimpleNamespace(random_noise=seeded_random_noise), color=skimage.color
        )
        if not hasattr(np, "float_"):
            np.float_ = np.float64  # an alias NumPy 2 dropped; fog's plasma fractal uses it
        corruptions._shiftlab_compat = True
    return module


def corrupt_image(image, corruption: Corruption, key: int):  # PIL -> PIL
    """Apply an ImageNet-C corruption (the reference implementation, ``imagecorruptions``) with
    numpy's global generator seeded by (run seed, corruption, severity, image key), so a
    corrupted image is the same in every run and every DataLoader worker."""
    from PIL import Image

    corruptions = imagecorruptions()
    seed = zlib.crc32(f"{corruption.seed}:{corruption.name}:{corruption.severity}:{key}".encode())
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        out = corruptions.corrupt(
            np.asarray(image), corruption_name=corruption.name, severity=corruption.severity
        )
    finally:
        np.random.set_state(state)
    return Image.fromarray(np.uint8(np.clip(out, 0, 255)))


class ImageFiles(Sequence[str]):
    """N image paths, decoded on demand (optionally corrupted, optionally edited).

    With a ``reader``, the "paths" are keys it reads (``hf:<row>``) rather than files. With an
    ``edit``, each image is edited after it is decoded (and corrupted).
    ``take``/``concat`` in :mod:`shiftlab.data.benchmark` keep it an ``ImageFiles``.
    """

    def __init__(
        self,
        paths: Sequence[str],
        corruption: Corruption | None = None,
        reader: ImageReader | None = None,
        edit: ImageEdit | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.corruption = corruption
        self.reader = reader
        self.edit = edit

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        return self.paths[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __repr__(self) -> str:
        more = f", {self.corruption}" if self.corruption else ""
        more += f", edit {self.edit.identity}" if self.edit is not None else ""
        return f"ImageFiles({len(self)} images{more})"

    def subset(self, index: np.ndarray) -> ImageFiles:
        """The images at ``index``, with the same corruption and edit."""
        paths = [self.paths[i] for i in index]
        return ImageFiles(paths, self.corruption, self.reader, self.edit)

    def corrupted(self, corruption: Corruption) -> ImageFiles:
        """The same images under ``corruption``."""
        return ImageFiles(self.paths, corruption, self.reader, self.edit)

    def edited(self, edit: ImageEdit | None) -> ImageFiles:
        """The same images, each changed by ``edit`` once decoded (None: unedited)."""
        return ImageFiles(self.paths, self.corruption, self.reader, edit)

    def load(self, i: int):  # -> PIL.Image.Image
        """Image ``i`` as RGB, corrupted when this is a corrupted split, then edited."""
        image = open_rgb(self.paths[i], self.reader)
        if self.corruption is not None:
            image = corrupt_image(image, self.corruption, zlib.crc32(self.paths[i].encode()))
        if self.edit is not None:
            image = self.edit(image, self.paths[i])
        return image

    def digest(self) -> bytes:
        """What identifies these inputs: paths, file sizes (or the reader), the corruption and
        the edit."""
        h = hashlib.blake2b(digest_size=16)
        if self.reader is not None:
            h.update(f"reader\0{self.reader.identity}\0".encode())
        for p in self.paths:
            path = Path(p)
            size = path.stat().st_size if self.reader is None and path.is_file() else -1
            h.update(f"{p}\0{size}\0".encode("utf-8", "surrogatepass"))
        h.update(repr(self.corruption).encode())
        if self.edit is not None:  # unedited inputs keep the digest they always had
            h.update(f"edit\0{self.edit.identity}".encode())
        return h.digest()


def concat_files(parts: Sequence[ImageFiles]) -> ImageFiles:
    """One ImageFiles of several (which must share their corruption, reader and edit)."""
    corruptions = {p.corruption for p in parts}
    if len(corruptions) > 1:
        raise DataError("cannot join image sets under different corruptions")
    if len({None if p.reader is None else p.reader.identity for p in parts}) > 1:
        raise DataError("cannot join image sets read from different sources")
    if len({None if p.edit is None else p.edit.identity for p in parts}) > 1:
        raise DataError("cannot join image sets under different edits")
    paths = [path for p in parts for path in p.paths]
    return ImageFiles(paths, corruptions.pop(), parts[0].reader, parts[0].edit)
