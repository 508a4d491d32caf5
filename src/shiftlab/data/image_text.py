"""Image-text pairs: a CSV or JSONL file of image paths and captions (optional label, domain).

One row per pair: ``image`` (a path, relative to the file's folder unless ``root`` is given),
``caption``, and optionally ``label`` (the image's class, for zero-shot and fine-tuned
classification) and ``domain``. Captions travel with the images (``Split.captions``): contrastive
recipes (``lit``, ``flyp``, ``cleanclip``) pair each image with its caption, T-MARS and
CLIP-score filtering score the pair. Every row is checked when the benchmark is built: a missing
or unreadable image, or an empty caption, stops the run with its line named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.build import CAPTION
from shiftlab.data.image_folder import readable
from shiftlab.data.images import ImageFiles
from shiftlab.data.labels import encode_labels
from shiftlab.data.table import ALL, read_rows
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS, closest
from shiftlab.runtime import log
from shiftlab.typed import param


@dataclass
class ImageTextOptions:
    """Columns of a CSV or JSONL file of image-text pairs."""

    path: str = param("", "the CSV or JSONL file of pairs")
    root: str | None = param(None, "folder image paths are relative to; default the file's")
    image_column: str = param("image", "column holding the image path")
    caption_column: str = param("caption", "column holding the caption")
    label_column: str | None = param(
        "label", "column holding the image's class; null for pairs without classes"
    )
    domain_column: str | None = param(
        "domain", "column naming each row's domain (used when the file has it)"
    )
    id_column: str | None = param(None, "column of stable ids; default the image path")


@dataclass
class Pairs:
    """The rows of an image-text file: image paths, captions, raw labels and domains."""

    paths: list[str]
    captions: list[str]
    labels: list[str] | None
    domains: list[str]
    ids: list[str]


def _column(have: list[str], column: str, option: str, path: Path) -> None:
    if column not in have:
        hint = closest(column, have)
        more = f"; did you mean '{hint}'?" if hint else ""
        raise DataError(
            f"column '{column}' (data.{option}) not found in {path}{more} "
            f"(columns: {', '.join(have)})"
        )


def read_pairs(cfg: ImageTextOptions) -> Pairs:
    """Every row of ``cfg.path``, checked: the image exists and opens, the caption is not empty.

    Raises:
        DataError: a missing file or column, a missing or unreadable image, an empty caption
            or label (the first such row named, with how many more there are).
    """
    if not cfg.path:
        raise DataError("data.path is required for kind 'image_text'")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"image-text file not found: {path}")
    root = Path(cfg.root).expanduser() if cfg.root else path.parent
    pairs = Pairs([], [], [] if cfg.label_column else None, [], [])
    problems: list[str] = []
    seen: dict[str, int] = {}  # image path or id -> the line it was first on
    checked = False
    for line, row in read_rows(path):
        if not checked:
            have = list(row)
            _column(have, cfg.image_column, "image_column", path)
            _column(have, cfg.caption_column, "caption_column", path)
            if cfg.label_column:
                _column(have, cfg.label_column, "label_column", path)
            if cfg.id_column:
                _column(have, cfg.id_column, "id_column", path)
            checked = True
        given = str(row.get(cfg.image_column) or "").strip()
        caption = str(row.get(cfg.caption_column) or "").strip()
        image = (root / given) if given else None
        if image is None:
            problems.append(f"{path}:{line}: no image path")
            continue
        if not image.is_file():
            problems.append(f"{path}:{line}: image not found: {image}")
            continue
        if why := readable(image):
            problems.append(f"{path}:{line}: unreadable image {image}: {why}")
            continue
        if not caption:
            problems.append(f"{path}:{line}: empty caption")
            continue
        label = str(row.get(cfg.label_column) or "").strip() if cfg.label_column else None
        if label == "":
            problems.append(f"{path}:{line}: empty label")
            continue
        ident = str(row.get(cfg.id_column) or "").strip() if cfg.id_column else given
        if not ident:
            problems.append(f"{path}:{line}: empty id ({cfg.id_column})")
            continue
        # one row per image: rows of one image (several captions) would straddle the splits
        again = [(what, seen[key]) for what, key in (("image", str(image.resolve())),
                 ("id", f"id:{ident}")) if key in seen]  # fmt: skip
        if again:
            what, first = again[0]
            problems.append(f"{path}:{line}: the {what} of line {first} again; give one row "
                            "per image")  # fmt: skip
            continue
        seen[str(image.resolve())] = seen[f"id:{ident}"] = line
        if pairs.labels is not None:
            pairs.labels.append(str(label))
        pairs.paths.append(str(image))
        pairs.captions.append(caption)
        domain = row.get(cfg.domain_column) if cfg.domain_column else None
        pairs.domains.append(str(domain).strip() if domain not in (None, "") else ALL)
        pairs.ids.append(ident)
    if problems:
        more = f" (and {len(problems) - 1} more rows)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    if not pairs.paths:
        raise DataError(f"{path} holds no image-text pairs")
    return pairs


def caption_column(pairs: Pairs, index: np.ndarray) -> np.ndarray:
    """The captions at ``index`` as an object array."""
    return np.array([pairs.captions[i] for i in index], dtype=object)


def write_pairs(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write image-text ``rows`` (image, caption, label, domain, ...) as a CSV file."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_pairs(workdir: Path, **_: object) -> dict[str, str]:
    """Options of 24 small image-text pairs (red and blue squares, two domains) written into
    ``workdir``: what the conformance check of ``image_text`` loads."""
    from PIL import Image

    rows = []
    for i in range(24):
        colour, domain = ("red", "blue")[i % 2], ("light", "dark")[i // 12]
        shade = 255 if domain == "light" else 128
        rgb = (shade, 0, 0) if colour == "red" else (0, 0, shade)
        name = f"{i:02d}.png"
        Image.new("RGB", (16, 16), rgb).save(Path(workdir) / name)
        rows.append(
            {"image": name, "caption": f"a {colour} square", "label": colour, "domain": domain}
        )
    return {"path": str(write_pairs(Path(workdir) / "pairs.csv", rows))}


@DATASETS.register("image_text", options=ImageTextOptions, fast=sample_pairs)
def image_text(cfg: ImageTextOptions, class_names: list[str] | None) -> LoadedData:
    """Your own image-text pairs: a CSV / JSONL of image path, caption, label and domain."""
    pairs = read_pairs(cfg)
    if pairs.labels is None:
        raise DataError(
            "image_text data in a run needs a label column (each image's class), which "
            "zero-shot and fine-tuned classification are scored on; set data.label_column"
        )
    labels, names = encode_labels(pairs.labels, class_names, cfg.label_column or "label")
    order = np.array(pairs.domains, dtype=object)
    domains: dict[str, Domain] = {}
    for name in dict.fromkeys(pairs.domains):
        index = np.flatnonzero(order == name)
        domains[name] = Domain(
            ImageFiles([pairs.paths[i] for i in index]),
            labels[index],
            attributes={CAPTION: caption_column(pairs, index)},
            ids=np.array([pairs.ids[i] for i in index], dtype=object),
        )
    log(
        f"image_text {cfg.path}: "
        + ", ".join(f"{d} {len(v)}" for d, v in domains.items())
        + f" pairs; classes {', '.join(names)}"
    )
    return LoadedData(domains, names, modality="image")
