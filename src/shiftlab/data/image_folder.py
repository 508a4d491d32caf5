"""Folders of images: ``root/<domain>/<class>/<image>`` (the DomainBed / PACS / Office-Home
layout), or ``root/<class>/<image>`` for a single domain (named ``all``).

Class names are the class folders' names (sorted, or ``data.class_names``); domains are the
domain folders. Images of any size and mode are accepted (converted to RGB and resized by the
backbone's transform when read). Every file is checked when the benchmark is built (its header
read, not its pixels): an unreadable one stops the run with its path named
(``on_bad_image: error``, the default) or is left out with a log line (``skip``). Splits hold
paths (:class:`shiftlab.data.images.ImageFiles`), decoded in DataLoader workers when used.
Example ids are the images' paths relative to the root folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.images import ImageFiles
from shiftlab.data.labels import encode_labels
from shiftlab.data.samples import under_data_dir
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import data_dir, log
from shiftlab.typed import param

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SINGLE = "all"  # the domain name of the single-domain layout


@dataclass
class ImageFolderOptions:
    """Where the images are and what to do with an unreadable one."""

    path: str = param(
        "", "root folder; a relative path missing here is looked up in $SHIFTLAB_DATA_DIR"
    )
    on_bad_image: Literal["error", "skip"] = param(
        "error", "an unreadable image stops the run (error) or is left out (skip)"
    )


def resolve_root(path: str) -> Path:
    """``path`` itself, else the same name under ``$SHIFTLAB_DATA_DIR``.

    Raises:
        DataError: neither exists (both named).
    """
    if not path:
        raise DataError("data.path is required for kind 'image_folder'")
    given = Path(path).expanduser()
    tried = [given]
    if not given.is_dir() and data_dir():
        for candidate in (Path(data_dir()) / path, Path(data_dir()) / given.name):
            tried.append(candidate)
            if candidate.is_dir():
                return candidate
    if not given.is_dir():
        raise DataError(f"image folder not found: {' or '.join(str(t) for t in tried)}")
    return given


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def readable(path: Path) -> str | None:
    """None if ``path`` opens as an image (header checked), else why not."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return None
    except Exception as exc:  # PIL raises many kinds for a broken file
        return str(exc) or type(exc).__name__


def scan(root: Path) -> dict[str, list[tuple[Path, str]]]:
    """Domain -> [(image path, class name)], from either layout.

    Raises:
        DataError: a domain folder without class folders, or no image at all.
    """
    tops = _subfolders(root)
    nested = any(_subfolders(t) for t in tops)
    layout = {t.name: t for t in tops} if nested else {SINGLE: root}
    found: dict[str, list[tuple[Path, str]]] = {}
    for domain, folder in layout.items():
        classes = _subfolders(folder)
        if not classes:
            raise DataError(
                f"domain folder {folder} has no class folders; expected "
                f"{root}/<domain>/<class>/<image> (or {root}/<class>/<image> for one domain)"
            )
        found[domain] = [(image, c.name) for c in classes for image in _images(c)]
        if not found[domain]:
            raise DataError(f"domain folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


@DATASETS.register("image_folder", options=ImageFolderOptions, fast=under_data_dir("pacs"))
def image_folder(cfg: ImageFolderOptions, class_names: list[str] | None) -> LoadedData:
    """Your own images: root/<domain>/<class>/<image>, or root/<class>/<image>."""
    root = resolve_root(cfg.path)
    found = scan(root)
    bad = [(path, why) for items in found.values() for path, _ in items if (why := readable(path))]
    if bad and cfg.on_bad_image == "error":
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(
            f"unreadable image {path}: {why}{more}; "
            "set data.on_bad_image: skip to leave such files out"
        )
    for path, why in bad:
        log(f"image_folder: skipped unreadable image {path} ({why})")
    skip = {path for path, _ in bad}
    items = {d: [(p, c) for p, c in pairs if p not in skip] for d, pairs in found.items()}
    labels, names = encode_labels(
        [c for pairs in items.values() for _, c in pairs], class_names, "class folder"
    )
    domains: dict[str, Domain] = {}
    start = 0
    for domain, pairs in items.items():
        paths = [str(p) for p, _ in pairs]
        ids = np.array([p.relative_to(root).as_posix() for p, _ in pairs], dtype=object)
        domains[domain] = Domain(ImageFiles(paths), labels[start : start + len(pairs)], ids=ids)
        start += len(pairs)
    log(
        f"image_folder {root}: "
        + ", ".join(f"{d} {len(v)}" for d, v in domains.items())
        + f" images; classes {', '.join(names)}"
    )
    return LoadedData(domains, names, "image")
