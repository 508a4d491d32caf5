"""Image files on disk, decoded lazily: the inputs of image benchmarks built from folders.

A split of such a benchmark holds an :class:`ImageFiles`: the paths of its images (and, for
a corrupted copy of a split, which corruption to apply), not pixels. Pixels are made only when a
batch needs them, by :mod:`shiftlab.data.batches`, in DataLoader workers, through the
backbone's own transform; so a 10,000-image folder costs a list of paths until it is used.
Images of any mode (grayscale, RGBA, palette) are converted to RGB.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.errors import DataError


@dataclass(frozen=True)
class Corruption:
    """An ImageNet-C corruption (``imagecorruptions``) at a severity, seeded per image."""

    name: str
    severity: int
    seed: int


def open_rgb(path: str):  # -> PIL.Image.Image
    """Decode an image file of any mode to RGB.

    Raises:
        DataError: the file cannot be read as an image (named).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "PA") or (
                image.mode == "P" and "transparency" in image.info
            ):
                # Transparent pixels over white, as a viewer shows them.
                rgba = image.convert("RGBA")
                canvas = Image.new("RGB", rgba.size, (255, 255, 255))
                canvas.paste(rgba, mask=rgba.getchannel("A"))
                return canvas
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def corrupt_image(image, corruption: Corruption, key: int):  # PIL -> PIL
    """Apply an ImageNet-C corruption (the reference implementation, ``imagecorruptions``) with
    numpy's global generator seeded by (run seed, corruption, severity, image key), so a
    corrupted image is the same in every run and every DataLoader worker."""
    from PIL import Image

    from shiftlab._optional import require

    corruptions = require("imagecorruptions", "vision")
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
    """N image paths, decoded on demand (optionally corrupted).

    ``take``/``concat`` in :mod:`shiftlab.data.benchmark` keep it an ``ImageFiles``.
    """

    def __init__(self, paths: Sequence[str], corruption: Corruption | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.corruption = corruption

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        return self.paths[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __repr__(self) -> str:
        more = f", {self.corruption}" if self.corruption else ""
        return f"ImageFiles({len(self)} images{more})"

    def subset(self, index: np.ndarray) -> ImageFiles:
        """The images at ``index``, with the same corruption."""
        return ImageFiles([self.paths[i] for i in index], self.corruption)

    def corrupted(self, corruption: Corruption) -> ImageFiles:
        """The same images under ``corruption``."""
        return ImageFiles(self.paths, corruption)

    def load(self, i: int):  # -> PIL.Image.Image
        """Image ``i`` as RGB, corrupted when this is a corrupted split."""
        image = open_rgb(self.paths[i])
        if self.corruption is not None:
            image = corrupt_image(image, self.corruption, zlib.crc32(self.paths[i].encode()))
        return image

    def digest(self) -> bytes:
        """What identifies these inputs: paths, file sizes and the corruption."""
        h = hashlib.blake2b(digest_size=16)
        for p in self.paths:
            path = Path(p)
            size = path.stat().st_size if path.is_file() else -1
            h.update(f"{p}\0{size}\0".encode("utf-8", "surrogatepass"))
        h.update(repr(self.corruption).encode())
        return h.digest()


def concat_files(parts: Sequence[ImageFiles]) -> ImageFiles:
    """One ImageFiles of several (which must share their corruption)."""
    corruptions = {p.corruption for p in parts}
    if len(corruptions) > 1:
        raise DataError("cannot join image sets under different corruptions")
    return ImageFiles([path for p in parts for path in p.paths], corruptions.pop())
