"""T-MARS: text detection and masking on real photos with rendered words, the masked-image CLIP
score against a by-hand computation on a tiny CLIP, and the filter that keeps a fraction."""

from __future__ import annotations

import csv
import difflib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shiftlab import testing
from shiftlab.config.sections import CurationConfig
from shiftlab.curation import tmars
from shiftlab.curation.actions import PruneOptions, prune
from shiftlab.curation.context import ScoreResult
from shiftlab.curation.plan import CurationPlan
from shiftlab.data.batches import input_transform
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.data.images import ImageFiles, concat_files
from shiftlab.errors import ConfigError, DataError, MissingExtraError
from shiftlab.features import FeatureCache

WORDS = ["SALE", "HELLO", "PIZZA", "OPEN", "COFFEE", "MUSIC", "TRAVEL", "GARDEN", "SUMMER"]
WORDS += ["BOOKS", "CLOUD", "RIVER", "WINTER", "PHONE", "market", "yellow", "orange", "planet"]
SIZES = [10, 16, 28]  # font size in pixels, on 227 x 227 photos
RECALL_FLOOR = 0.9  # measured: 24 / 24 words at IoU >= 0.5 (8 at each size)


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def font(size: int):
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def render(photo, words: list[str], size: int, rng: np.random.Generator):
    """``photo`` with ``words`` written on it, one per line (white, yellow or black, with a
    contrasting outline): the image and each word's box."""
    from PIL import ImageDraw

    image = photo.copy()
    draw = ImageDraw.Draw(image)
    face, stroke = font(size), max(1, size // 12)
    styles = [
        ((255, 255, 255), (0, 0, 0)),
        ((0, 0, 0), (255, 255, 255)),
        ((255, 230, 0), (20,) * 3),
    ]
    boxes, y = [], int(rng.integers(4, 20))
    for k, word in enumerate(words):
        width = draw.textbbox((0, 0), word, font=face, stroke_width=stroke)[2]
        x = int(rng.integers(2, max(3, image.width - width - 2)))
        fill, outline = styles[(k + size) % len(styles)]
        draw.text((x, y), word, font=face, fill=fill, stroke_width=stroke, stroke_fill=outline)
        boxes.append(draw.textbbox((x, y), word, font=face, stroke_width=stroke))
        room = image.height - 2 * size - y
        y += int(rng.integers(size + 20, room)) if room > size + 20 else size + 20
    return image, boxes


@pytest.fixture(scope="module")
def photos(data_dir: Path):
    """Four real PACS photos (dog, elephant, giraffe, guitar), RGB."""
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image

    root = data_dir / "pacs" / "photo"
    if not root.is_dir():
        pytest.skip("PACS photos not found in the data folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())[:4]
    return [Image.open(sorted((root / c).iterdir())[1]).convert("RGB") for c in classes]


@pytest.fixture(scope="module")
def rendered(photos):
    """Each photo with two words at each size: (image, words, boxes, size) per image."""
    rng = np.random.default_rng(0)
    out, k = [], 0
    for photo in photos:
        for size in SIZES:
            words = [WORDS[k % len(WORDS)], WORDS[(k + 1) % len(WORDS)]]
            k += 2
            image, boxes = render(photo, words, size, rng)
            out.append((image, words, boxes, size))
    return out


@pytest.fixture(scope="module")
def detected(rendered):
    return [tmars.detect_text(image) for image, *_ in rendered]


def test_detector_finds_rendered_words(rendered, detected):
    found = {size: [0, 0] for size in SIZES}
    for (_, _, truth, size), boxes in zip(rendered, detected, strict=True):
        for word_box in truth:
            best = max((iou(word_box, b) for b in boxes), default=0.0)
            found[size][0] += best >= 0.5
            found[size][1] += 1
    recall = sum(f for f, _ in found.values()) / sum(n for _, n in found.values())
    print(
        f"detector recall at IoU >= 0.5: {recall:.3f};",
        {s: f"{f}/{n}" for s, (f, n) in found.items()},
    )
    assert recall >= RECALL_FLOOR
    for image, *_ in rendered[:1]:
        w, h = image.size
        assert all(
            0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in tmars.detect_text(image)
        )


def test_masked_text_cannot_be_read(rendered, detected):
    """rapidocr reads the rendered words before masking and none after (its detector reading
    at 512 px rather than its default 736, for time: the same for both)."""
    before, after, words = 0, [], 0
    for (image, written, _, _), boxes in zip(rendered, detected, strict=True):
        original = " ".join(tmars.read_text(image, side=512)).lower()
        before += sum(w.lower() in original for w in written)
        words += len(written)
        lines = tmars.read_text(tmars.mask_text(image, boxes), side=512)
        for word in written:
            close = [
                line
                for line in lines
                if word.lower() in line.lower()
                or difflib.SequenceMatcher(None, word.lower(), line.lower()).ratio() >= 0.8
            ]
            after += close
    print(f"OCR reads {before}/{words} rendered words before masking, {len(after)} after: {after}")
    assert before >= 0.8 * words  # the words are legible: masking is what hides them
    assert after == []


def test_mask_text_fills_each_box_with_the_mean_colour():
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    mean = np.round(pixels.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    masked = tmars.mask_text(pixels, [(2.5, 3.2, 7.1, 6.0), (25, 15, 40, 40)])
    inside = np.zeros((20, 30), dtype=bool)
    inside[3:6, 2:8] = True  # edges rounded outwards
    inside[15:20, 25:30] = True  # clipped to the image
    assert isinstance(masked, np.ndarray) and masked.dtype == np.uint8
    assert (masked[inside] == mean).all()
    np.testing.assert_array_equal(masked[~inside], pixels[~inside])
    assert masked is not pixels and not np.shares_memory(masked, pixels)
    as_pil = tmars.mask_text(Image.fromarray(pixels), [(2.5, 3.2, 7.1, 6.0), (25, 15, 40, 40)])
    np.testing.assert_array_equal(np.asarray(as_pil), masked)
    np.testing.assert_array_equal(tmars.mask_text(pixels, []), pixels)


def test_image_files_apply_an_edit_when_decoded(tmp_path):
    from PIL import Image

    paths = []
    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 100, 200)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    files = ImageFiles(paths)
    mask = tmars.TextMask({paths[1]: [(0, 0, 4, 8)], paths[2]: []})
    edited = files.edited(mask)
    assert edited.digest() != files.digest() and files.edited(None).digest() == files.digest()
    assert edited.digest() == files.edited(tmars.TextMask({paths[1]: [(0, 0, 4, 8)]})).digest()
    np.testing.assert_array_equal(np.asarray(edited.load(0)), np.asarray(files.load(0)))
    left = np.asarray(edited.load(1))[:, :4]
    assert (left == np.asarray(files.load(1))[0, 0]).all()  # a flat image's mean is itself
    assert edited.subset(np.array([1])).edit is mask
    with pytest.raises(DataError, match="different edits"):
        concat_files([edited, files])


def test_prune_keeps_exactly_the_top_fraction_by_a_stub_score():
    n = 10
    train = Split("train", "train", [f"t{i}" for i in range(n)], np.zeros(n, dtype=np.int64))
    train.ids = np.array([f"id{i}" for i in range(n)])
    values = np.array([0.3, 0.9, -0.2, 0.5, 0.5, 0.1, 0.8, 0.0, 0.7, 0.4])
    for by in ("tmars", "clip_score"):
        scores = {by: ScoreResult(values, "stub similarity")}
        cfg = PruneOptions(by=by, keep=[0.5, 0.25, 0.35, 0.05, 1.0])
        variants = list(prune(scores, train, cfg, seed=0))
        # round(): 5, round(2.5) = 2 (halves to even), round(3.5) = 4, at least 1, all 10
        assert [len(v.train) for v in variants] == [5, 2, 4, 1, 10]
        assert [v.n_removed for v in variants] == [5, 8, 6, 9, 0]
        assert variants[0].label == f"prune_{by}_0.5"
        assert list(variants[0].train.ids) == ["id1", "id3", "id4", "id6", "id8"]  # split order
        assert set(variants[1].train.ids) == {"id1", "id6"}
        assert set(variants[2].train.ids) == {"id1", "id6", "id8", "id3"}  # tie 0.5: first
        for v in variants:
            kept = np.isin(train.ids, v.train.ids)
            assert values[kept].min() >= values[~kept].max(initial=-np.inf)


@pytest.fixture(scope="module")
def pairs(rendered, photos, tmp_path_factory):
    """Eight captioned image files: four photos with rendered words, four without any."""
    pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("tmars-pairs")
    paths, captions = [], []
    for i, (image, words, _, _) in enumerate(rendered[1::3]):
        image.save(folder / f"text{i}.png")
        paths.append(str(folder / f"text{i}.png"))
        captions.append(f"a photo with the words {' '.join(words).lower()}")
    for i, photo in enumerate(photos):
        photo.save(folder / f"plain{i}.png")
        paths.append(str(folder / f"plain{i}.png"))
        captions.append("a photo of an animal" if i % 2 else "a photo of a thing")
    n = len(paths)
    labels = np.array([0, 1] * (n // 2), dtype=np.int64)
    train = Split(
        "train",
        "train",
        ImageFiles(paths),
        labels,
        ids=np.array([Path(p).stem for p in paths]),
        captions=np.array(captions, dtype=object),
    )
    return Benchmark("pairs", ["a", "b"], "image", train, train, train, [], ["photo"])


@pytest.fixture(scope="module")
def scored(pairs, clip_backbone, tmp_path_factory):
    cache = FeatureCache(tmp_path_factory.mktemp("tmars-cache"), batch_size=4)
    ctx = testing.curation_context(pairs, clip_backbone, cache)
    return (
        tmars.tmars(ctx, tmars.TMarsOptions()),
        tmars.clip_score(ctx, tmars.ClipScoreOptions()),
        cache,
    )


def test_tmars_is_the_masked_image_caption_cosine(pairs, clip_backbone, scored):
    result, baseline, cache = scored
    featurizer, train = clip_backbone.featurizer, pairs.train
    transform = input_transform(featurizer)
    text_boxes = result.columns["text_boxes"]
    has_text = text_boxes > 0
    assert has_text[:4].all() and not has_text.all()  # rendered words found; some have none
    assert result.summary["images_with_text"] == has_text.sum()
    # masking changes exactly the scores of images with detected text
    assert (result.values[has_text] != baseline.values[has_text]).all()
    np.testing.assert_array_equal(result.values[~has_text], baseline.values[~has_text])
    np.testing.assert_array_equal(result.columns["unmasked_score"], baseline.values)
    with torch.no_grad():
        for i in range(len(train)):
            image = train.inputs.load(i)
            boxes = tmars.detect_text(image)
            assert len(boxes) == text_boxes[i]
            text = featurizer.encode_prompts([str(train.captions[i])])
            for shown, score in ((tmars.mask_text(image, boxes), result), (image, baseline)):
                pixels = transform.pil(shown).half().float()  # decoded sets are cached in fp16
                by_hand = F.cosine_similarity(featurizer(pixels[None]), text).item()
                assert score.values[i] == pytest.approx(by_hand, abs=1e-5)
    assert cache.passes == {"train": 1, "train_text_masked": 1}  # only the text images again


def test_tmars_writes_its_text_boxes_beside_the_score(pairs, clip_backbone, scored, tmp_path):
    result, _, cache = scored
    plan = CurationPlan(
        CurationConfig(), [], pairs, cache, clip_backbone.featurizer, "", seed=0, device="cpu"
    )
    plan.scores = {"tmars": result}
    plan.write(tmp_path, pairs.class_names)
    with (tmp_path / "curation" / "tmars.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["text_boxes"]) for r in rows] == result.columns["text_boxes"].tolist()
    assert [float(r["score"]) for r in rows] == pytest.approx(result.values, abs=1e-6)
    assert list(rows[0])[-1] == "input" and rows[4]["boxes"] == "[]"


@pytest.mark.parametrize("name", ["tmars", "clip_score"])
def test_scores_pass_the_curation_conformance_check(name, pairs, clip_backbone, tmp_path):
    testing.check_curation_score(name, pairs, clip_backbone, FeatureCache(None, batch_size=4))


def test_scores_refuse_what_they_cannot_score(
    pairs, tiny_benchmark, tiny_backbone, timm_backbone, clip_backbone
):
    def ctx(benchmark, backbone):
        return testing.curation_context(benchmark, backbone, FeatureCache(None, batch_size=4))

    no_captions = Benchmark(
        "pairs",
        ["a", "b"],
        "image",
        pairs.train.subset(np.arange(2)),
        pairs.val,
        pairs.test,
        [],
        [],
    )
    no_captions.train.captions = None
    cases = [
        (ctx(tiny_benchmark, tiny_backbone), "no image files"),
        (ctx(no_captions, clip_backbone), "caption"),
        (ctx(pairs, timm_backbone), "text side"),
    ]
    for context, message in cases:
        for score, options in (
            (tmars.tmars, tmars.TMarsOptions()),
            (tmars.clip_score, tmars.ClipScoreOptions()),
        ):
            with pytest.raises(ConfigError, match=message):
                score(context, options)


def test_a_missing_rapidocr_names_the_extra(monkeypatch):
    monkeypatch.setattr(tmars, "_ENGINE", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'shiftlab\[ocr\]'"):
        tmars.detect_text(np.zeros((8, 8, 3), dtype=np.uint8))
