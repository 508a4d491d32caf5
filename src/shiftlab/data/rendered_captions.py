"""An image-text pool in which some images carry their caption as rendered text.

T-MARS' premise (Maini et al., arXiv 2307.03132): in web pools many images show the words of
their caption, and a CLIP model scores such a pair highly for the text it can read, not for what
the image shows. This generator builds that situation from any image folder
(``root/<domain>/<class>/<image>``, as ``image_folder`` reads it): in the pool domain (default
the first), a seeded ``fraction`` of the images get the name of another class rendered onto
them (PIL, DejaVu Sans, black on a white box at a random place, a sixth of the image's height
high) and that class as their caption (``a photo of a guitar.`` on a photo of a dog); every
other pair is captioned with its own class. Labels stay the class each image shows, so
zero-shot accuracy is scored against what is in the image. The rendered images are written
once into the cache folder; ids are the images' paths relative to the root (a rendered one
gains ``#text=<word>``). Each rendered file is named by a hash of its source image, word,
seed and position, so a cached one always shows the word its caption names.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.build import CAPTION
from shiftlab.data.image_folder import resolve_root, scan
from shiftlab.data.images import ImageFiles
from shiftlab.data.labels import encode_labels
from shiftlab.data.samples import under_data_dir
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import cache_dir, log
from shiftlab.typed import param

CAPTION_TEMPLATE = "a photo of a {}."


@dataclass
class RenderedCaptionsOptions:
    """Where the images are, which domain is the pool, and how many carry rendered text."""

    path: str = param("", "image folder root/<domain>/<class>/<image>; else $SHIFTLAB_DATA_DIR")
    pool_domain: str | None = param(None, "the domain whose images get text; default the first")
    fraction: float = param(
        0.3, "share of the pool's images with another class rendered", within="[0, 1]"
    )
    seed: int = param(0, "which images, which words, where", within="[0, inf)")


def font(size: int):  # -> PIL.ImageFont.FreeTypeFont
    """DejaVu Sans (shipped with matplotlib) at ``size`` px, else PIL's default font."""
    from matplotlib import font_manager
    from PIL import ImageFont

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except OSError:
        return ImageFont.load_default(size)


def render_word(source: str, word: str, target: Path, rng: np.random.Generator) -> tuple[int, ...]:
    """Write ``source`` with ``word`` drawn on it to ``target``; the word's box (x0, y0, x1, y1)."""
    from PIL import Image, ImageDraw

    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    face = font(max(8, height // 6))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), word, font=face)
    pad = max(2, height // 40)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x = int(rng.integers(0, max(1, width - w)))
    y = int(rng.integers(0, max(1, height - h)))
    draw.rectangle((x, y, x + w, y + h), fill=(255, 255, 255))
    draw.text((x + pad - left, y + pad - top), word, font=face, fill=(0, 0, 0))
    partial = target.with_suffix(".tmp.png")
    image.save(partial)
    partial.replace(target)
    return (x, y, x + w, y + h)


@DATASETS.register(
    "rendered_captions", options=RenderedCaptionsOptions, fast=under_data_dir("pacs", fraction=0.1)
)
def rendered_captions(cfg: RenderedCaptionsOptions, class_names: list[str] | None) -> LoadedData:
    """An image-text pool from an image folder, some images showing another class's name."""
    root = resolve_root(cfg.path)
    found = scan(root)
    pool = cfg.pool_domain or next(iter(found))
    if pool not in found:
        raise DataError(f"data.pool_domain '{pool}' is not a domain of {root} ({', '.join(found)})")
    if len({c for items in found.values() for _, c in items}) < 2:
        raise DataError(f"rendered_captions needs at least two classes in {root}")
    labels, names = encode_labels(
        [c for items in found.values() for _, c in items], class_names, "class folder"
    )
    folder = Path(cache_dir()) / "rendered_captions"
    folder.mkdir(parents=True, exist_ok=True)
    domains: dict[str, Domain] = {}
    start = 0
    rendered = 0
    for domain, items in found.items():
        y = labels[start : start + len(items)]
        start += len(items)
        paths = [str(p) for p, _ in items]
        ids = [p.relative_to(root).as_posix() for p, _ in items]
        captions = [CAPTION_TEMPLATE.format(names[k]) for k in y]
        if domain == pool and cfg.fraction > 0:
            rng = np.random.default_rng([cfg.seed, zlib.crc32(b"rendered_captions")])
            chosen = np.sort(
                rng.choice(len(items), size=round(cfg.fraction * len(items)), replace=False)
            )
            for i in chosen:
                word = names[(int(y[i]) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
                # named by what is drawn on what: a changed folder or class order never
                # reuses an image whose word no longer matches its caption
                key = f"{Path(paths[i]).resolve()}:{word}:{cfg.seed}:{i}".encode()
                target = folder / f"{hashlib.blake2b(key, digest_size=12).hexdigest()}.png"
                if not target.is_file():
                    render_word(paths[i], word, target, np.random.default_rng([cfg.seed, int(i)]))
                paths[i], captions[i] = str(target), CAPTION_TEMPLATE.format(word)
                ids[i] = f"{ids[i]}#text={word}"
            rendered = len(chosen)
        domains[domain] = Domain(
            ImageFiles(paths),
            y,
            attributes={CAPTION: np.array(captions, dtype=object)},
            ids=np.array(ids, dtype=object),
        )
    log(
        f"rendered_captions {root}: {rendered} of {len(found[pool])} '{pool}' images show "
        "another class's name"
    )
    return LoadedData(domains, names, modality="image")
