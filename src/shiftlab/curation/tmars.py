"""T-MARS: score image-caption pairs by CLIP similarity after masking the text in the image.

Maini, Goyal, Lipton, Kolter and Raghunathan, "T-MARS: Improving Visual Representations by
Circumventing Text Feature Learning" (ICLR 2024, arXiv 2307.03132; ``locuslab/T-MARS``). Many
web images hold text that repeats their caption (about 40% of LAION, the paper's abstract); a
CLIP score rewards such pairs for the text alone. T-MARS detects the text, masks it, and scores
the masked image against the caption: a pair that matches only through its text scores low and
is dropped. Steps as in the reference:

1. **Detection.** The reference runs FAST (``czczup/FAST``, ``fast_tiny_tt_512_finetune_ic17mlt``,
   on each image square-padded with 255 and resized to 512 x 512; FAST's own ``min_score`` is
   0.85 there). Here rapidocr-onnxruntime's PP-OCRv4 DBNet detector (the ``ocr`` extra; its ONNX
   model ships in the wheel, so it works offline) finds the text: a different detector, also
   segmentation-based, on the same 512 x 512 square input. A box is kept when its mean text
   probability is at least 0.7 (rapidocr's default is 0.5): on 42 PACS photos (227 px) the
   default put a box on 19 (most on objects, not text), 0.7 on 10, and rendered words of 10 to
   32 px were found as well at either (47 of 48 at IoU >= 0.5); ``unclip_ratio`` 1.6 is
   rapidocr's. Each detected quadrilateral becomes its axis-aligned bounding box.
2. **Masking.** Each box is filled with the image's mean colour (per channel, over the whole
   image): "masking images with mean color before sending to the CLIP model" (the maintainers,
   ``locuslab/T-MARS`` issue #4). The masked images reach the run's backbone through its own
   evaluation transform (an :class:`~shiftlab.data.images.ImageEdit` applied when the image is
   decoded); images without detected text keep their unmasked embeddings.
3. **Score.** Cosine similarity of the image embedding and the caption's text embedding under
   the run's backbone (an image-text model: ``open_clip:<arch>``); higher = keep. ``clip_score``
   is the same without masking: the CLIP-score filter the paper compares against (DataComp's
   baseline).
4. **Filter.** The ``prune`` action keeps a fraction by either score (``by: tmars``, the lowest
   dropped). The fraction the reference keeps is about the top 50% [unverified: the paper's
   LAION experiments as remembered; the released code has no filtering step], so set it:
   ``keep: [0.5]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab._optional import require
from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.data.benchmark import Split
from shiftlab.data.images import ImageFiles
from shiftlab.errors import ConfigError, DataError
from shiftlab.models.backbone import Backbone
from shiftlab.progress import progress
from shiftlab.registry import CURATE
from shiftlab.typed import param

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, x1 > x0, y1 > y0

BOX_THRESH = 0.7  # mean text probability inside a kept box (rapidocr's default: 0.5)
UNCLIP_RATIO = 1.6  # rapidocr's default: how far a box grows past the text kernel
DETECT_SIZE = 512  # the reference's FAST input: the image square-padded, resized to 512 x 512
READ_SIDE = 736  # rapidocr's detector input (shorter side) when it reads text

_ENGINE: Any = None  # one rapidocr engine per process, made on first use


def ocr_engine() -> Any:
    """The process's rapidocr engine (detector, angle classifier, recogniser; loads in well
    under a second, from the models the wheel ships).

    Raises:
        MissingExtraError: rapidocr-onnxruntime is not installed (the ``ocr`` extra).
    """
    global _ENGINE
    if _ENGINE is None:
        rapidocr = require("rapidocr_onnxruntime", "ocr")
        _ENGINE = rapidocr.RapidOCR()
    return _ENGINE


def rgb_array(image: Any) -> np.ndarray:
    """An image (PIL, or an array (H, W), (H, W, 3) or (H, W, 4) RGB(A)) as (H, W, 3) uint8.
    A float array is read as values in [0, 1]."""
    if not isinstance(image, np.ndarray):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    array = image
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    array = array[:, :, :3]
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0)
    return np.ascontiguousarray(array, dtype=np.uint8)


def _bgr(image: Any) -> np.ndarray:
    """What rapidocr takes: an array in OpenCV's BGR order."""
    return np.ascontiguousarray(rgb_array(image)[:, :, ::-1])


def detect_text(
    image: Any,
    *,
    box_thresh: float = BOX_THRESH,
    unclip_ratio: float = UNCLIP_RATIO,
    size: int = DETECT_SIZE,
) -> list[Box]:
    """Boxes around the text in ``image``, by rapidocr's detector alone (no recognition).

    The image is padded to a square with white (bottom and right) and resized to ``size`` x
    ``size``, as the reference prepares FAST's input; boxes are mapped back.

    Args:
        image: a PIL image or an RGB array (see :func:`rgb_array`).
        box_thresh: keep boxes whose mean text probability is at least this.
        unclip_ratio: how far each box grows past its text kernel (DBNet's unclip).
        size: the side of the square the detector sees.

    Returns:
        Axis-aligned ``(x0, y0, x1, y1)`` boxes in pixels, within the image, in reading order.
    """
    from PIL import Image

    rgb = rgb_array(image)
    height, width = rgb.shape[:2]
    side = max(height, width)
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    canvas[:height, :width] = rgb
    square = Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR)
    engine = ocr_engine()
    engine.text_det.limit_side_len = size  # the detector takes the square as it is
    found, _ = engine(
        _bgr(square),
        use_det=True,
        use_cls=False,
        use_rec=False,
        box_thresh=box_thresh,
        unclip_ratio=unclip_ratio,
    )
    boxes: list[Box] = []
    for quad in found or []:
        points = np.asarray(quad, dtype=np.float64).reshape(-1, 2) * (side / size)
        x0, y0 = max(0.0, points[:, 0].min()), max(0.0, points[:, 1].min())
        x1, y1 = min(float(width), points[:, 0].max()), min(float(height), points[:, 1].max())
        if x1 > x0 and y1 > y0:
            boxes.append((float(x0), float(y0), float(x1), float(y1)))
    return boxes


def read_text(image: Any, side: int = READ_SIDE) -> list[str]:
    """What rapidocr's full pipeline (detection, angle classification, recognition), with its
    defaults, reads in ``image``: one string per text line it keeps (recognition confidence at
    least 0.5). ``side``: the detector's input, shorter side (rapidocr's default 736)."""
    engine = ocr_engine()
    engine.text_det.limit_side_len = side
    found, _ = engine(_bgr(image), box_thresh=0.5, unclip_ratio=UNCLIP_RATIO, text_score=0.5)
    return [str(line[1]) for line in found or []]


def mask_text(image: Any, boxes: Sequence[Sequence[float]]) -> Any:
    """``image`` with every box filled with its mean colour (T-MARS's masking).

    The colour is the per-channel mean over the whole image, before masking, rounded. A box
    covers the pixels it touches (edges rounded outwards), clipped to the image.

    Args:
        image: a PIL image or an RGB array (see :func:`rgb_array`).
        boxes: ``(x0, y0, x1, y1)`` in pixels.

    Returns:
        A new image of the input's kind: a PIL RGB image, or an (H, W, 3) uint8 array.
    """
    array = rgb_array(image).copy()
    height, width = array.shape[:2]
    fill = np.round(array.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    for x0, y0, x1, y1 in boxes:
        left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
        right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        if right > left and bottom > top:
            array[top:bottom, left:right] = fill
    if isinstance(image, np.ndarray):
        return array
    from PIL import Image

    return Image.fromarray(array)


class TextMask:
    """The :class:`~shiftlab.data.images.ImageEdit` masking each image's detected text, by path.

    Args:
        boxes: the boxes of each image path (paths without any are left as they are).
    """

    def __init__(self, boxes: Mapping[str, Sequence[Sequence[float]]]) -> None:
        self.boxes = {
            str(path): tuple(tuple(float(v) for v in box) for box in found)
            for path, found in boxes.items()
            if len(found)
        }
        digest = hashlib.blake2b(digest_size=10)
        for path in sorted(self.boxes):
            digest.update(f"{path}\0{self.boxes[path]}\0".encode("utf-8", "surrogatepass"))
        self.identity = f"tmars_mask:{digest.hexdigest()}"

    def __call__(self, image: Any, path: str) -> Any:
        found = self.boxes.get(path)
        return mask_text(image, found) if found else image


# Scores --------------------------------------------------------------------------------------


@dataclass
class ClipScoreOptions:
    """How captions are encoded."""

    batch_size: int = param(256, "captions per text-tower batch", within="[1, inf)")


@dataclass
class TMarsOptions(ClipScoreOptions):
    """How text is found, and how captions are encoded."""

    box_thresh: float = param(
        BOX_THRESH,
        "detection threshold: a text box's mean text probability (rapidocr's default: 0.5)",
        within="(0, 1)",
    )
    size: int = param(
        DETECT_SIZE,
        "side of the square the detector sees (the reference's FAST: 512)",
        within="[32, inf)",
    )
    unclip_ratio: float = param(
        UNCLIP_RATIO,
        "how far a text box grows past its kernel (rapidocr's default)",
        within="(0, inf)",
    )


def captioned_images(ctx: CurationContext, score: str) -> tuple[ImageFiles, np.ndarray, Any]:
    """The training images, their captions and the featurizer whose text side encodes them.

    Raises:
        ConfigError: the training split holds no image files or no captions, or the backbone
            has no text side.
    """
    train = ctx.train
    if not isinstance(train.inputs, ImageFiles):
        raise ConfigError(
            f"curation score '{score}' scores image-caption pairs, but the training split holds "
            "no image files; use image-text data (data.kind: image_text)"
        )
    if train.captions is None:
        raise ConfigError(
            f"curation score '{score}' needs each training image's caption, which the data "
            "lacks; use image-text data (data.kind: image_text)"
        )
    featurizer = ctx.featurizer
    if featurizer is None or not callable(getattr(featurizer, "encode_prompts", None)):
        raise ConfigError(
            f"curation score '{score}' needs a backbone with a text side to encode captions "
            "(an image-text model: lit, or open_clip:<arch>)"
        )
    return train.inputs, np.asarray(train.captions), featurizer


@torch.inference_mode()
def caption_embeddings(featurizer: Any, captions: Sequence[str], batch_size: int) -> torch.Tensor:
    """L2-normalised text embeddings (N, D), float32 on the CPU, of ``captions`` by the
    featurizer's text side (:meth:`~shiftlab.models.backbone.Backbone.text_side`)."""
    encode = Backbone.text_side(featurizer)
    was_training = featurizer.training
    featurizer.eval()
    chunks = []
    try:
        for start in range(0, len(captions), batch_size):
            batch = [str(c) for c in captions[start : start + batch_size]]
            chunks.append(encode(batch).float().cpu())
    finally:
        featurizer.train(was_training)
    return F.normalize(torch.cat(chunks), dim=-1)


def similarities(images: torch.Tensor, texts: torch.Tensor) -> np.ndarray:
    """Row-wise cosine similarity of image and text embeddings (N,), float64."""
    images = F.normalize(images.float(), dim=-1)
    return (images.double() * texts.double()).sum(dim=1).numpy()


def detect_all(files: ImageFiles, cfg: TMarsOptions) -> dict[str, list[Box]]:
    """The text boxes of every image, by path (each distinct path read once)."""
    found: dict[str, list[Box]] = {}
    with progress("detecting text", len(files), unit="images") as advance:
        for i, path in enumerate(files.paths):
            if path not in found:
                found[path] = detect_text(
                    files.load(i),
                    box_thresh=cfg.box_thresh,
                    unclip_ratio=cfg.unclip_ratio,
                    size=cfg.size,
                )
            advance(1)
    return found


def masked_split(train: Split, mask: TextMask, index: np.ndarray) -> Split:
    """The training examples at ``index`` with their text masked when decoded: a split of its
    own (no parent: its features are encoded, not taken from the unmasked ones)."""
    part = train.subset(index)
    inputs = part.inputs.edited(mask)
    return dataclasses.replace(part, name=f"{train.name}_text_masked", inputs=inputs, parent=None)


@CURATE.register("clip_score", options=ClipScoreOptions, kinds=("text_side",), needs=("captions",))
def clip_score(ctx: CurationContext, cfg: ClipScoreOptions) -> ScoreResult:
    """CLIP score: cosine similarity of each training image and its caption (the baseline
    filter of T-MARS and DataComp)."""
    _, captions, featurizer = captioned_images(ctx, "clip_score")
    texts = caption_embeddings(featurizer, captions, cfg.batch_size)
    values = similarities(ctx.features(ctx.train), texts)
    return ScoreResult(
        values,
        "image-caption similarity (low: a poor match; the CLIP-score filter drops these)",
        summary={"mean": round(float(values.mean()), 6)},
    )


@CURATE.register("tmars", options=TMarsOptions, kinds=("text_side",), needs=("captions",))
def tmars(ctx: CurationContext, cfg: TMarsOptions) -> ScoreResult:
    """T-MARS: similarity of each training image, its text masked, and its caption."""
    files, captions, featurizer = captioned_images(ctx, "tmars")
    if files.edit is not None:
        raise DataError(f"tmars cannot mask images that are edited already ({files.edit.identity})")
    train = ctx.train
    found = detect_all(files, cfg)
    boxes = [found[path] for path in files.paths]
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    texts = caption_embeddings(featurizer, captions, cfg.batch_size)
    plain = ctx.features(train)
    images = plain.clone()
    with_text = np.flatnonzero(counts > 0)
    if len(with_text):
        mask = TextMask(found)
        images[torch.from_numpy(with_text)] = ctx.features(masked_split(train, mask, with_text))
    values = similarities(images, texts)
    unmasked = similarities(plain, texts)
    coords = [json.dumps([[round(v) for v in box] for box in b]) for b in boxes]
    return ScoreResult(
        values,
        "image-caption similarity with the image's text masked (low: the pair matches mostly "
        "through the text in the image, or not at all; T-MARS drops these)",
        summary={
            "images_with_text": len(with_text),
            "text_boxes": int(counts.sum()),
            "mean": round(float(values.mean()), 6),
            "mean_unmasked": round(float(unmasked.mean()), 6),
        },
        columns={"text_boxes": counts, "unmasked_score": unmasked, "boxes": np.array(coords)},
    )
