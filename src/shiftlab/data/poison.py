"""A backdoor in the training data, and the triggered test split that measures it.

After CleanCLIP (Bansal et al., arXiv 2303.03323; ``nishadsinghi/CleanCLIP``
``backdoor/create_backdoor_data.py`` and ``backdoor/utils.py``): a seeded ``fraction`` of the
training examples, drawn from all of them as the reference draws, get a trigger and the target
class (their caption, where the data has captions, becomes a template of the target class, as
the reference writes a random ImageNet template of "banana"). The attack is measured on the
ID test examples whose true class is not the target, with the trigger: the attack success rate
(``asr`` in their records, with its interval) is the share predicted as the target
(``src/evaluate.py``: only images whose label is not the target count).

Triggers: ``random`` (BadNet; the reference's default), a patch of Gaussian noise around the
image mean at a random place, 16 px at 224 (scaled to the image); ``blended``, 0.8 image + 0.2
uniform noise (the reference redraws the noise per call; here per example, seeded); ``token``
for text, a rare word (``cf``, as in the NLP backdoor literature) inserted at a random word
position. Image files are written once, poisoned, into the cache folder (keyed by the images,
the trigger and the seed), so every decoder and transform reads them as any other image.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from shiftlab.config.sections import PoisonConfig
from shiftlab.data.benchmark import Split, take
from shiftlab.data.images import ImageFiles, open_rgb
from shiftlab.errors import DataError
from shiftlab.registry import unknown_name_message
from shiftlab.runtime import cache_dir, log

TRIGGERED = "triggered"  # the name of the triggered test split
TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.")


def trigger_kind(cfg: PoisonConfig, inputs: Any) -> str:
    """The trigger ``cfg`` asks for on these inputs (``auto``: random patch or token)."""
    text = not isinstance(inputs, (np.ndarray, ImageFiles))
    kind = cfg.trigger if cfg.trigger != "auto" else ("token" if text else "random")
    if text != (kind == "token"):
        what = "text" if text else "images"
        raise DataError(
            f"data.poison.trigger '{kind}' does not apply to {what}: use "
            + ("token" if text else "random or blended")
        )
    return kind


def insert_token(text: str, token: str, rng: np.random.Generator) -> str:
    """``text`` with ``token`` inserted before a random word (or at its end)."""
    words = text.split()
    words.insert(int(rng.integers(len(words) + 1)), token)
    return " ".join(words)


def patch_array(image: np.ndarray, kind: str, patch: int, rng: np.random.Generator) -> np.ndarray:
    """One image (C, H, W) in [0, 1] with the trigger: a noise patch at a random place
    (``random``) or blended with uniform noise (``blended``)."""
    out = image.astype(np.float32, copy=True)
    if kind == "blended":
        return (0.8 * out + 0.2 * rng.random(out.shape, dtype=np.float32)).astype(image.dtype)
    _, height, width = out.shape
    side = max(1, min(patch, height, width))
    top = int(rng.integers(height - side + 1))
    left = int(rng.integers(width - side + 1))
    mean = out.mean(axis=(1, 2), keepdims=True)  # per channel, as the reference's image.mean
    noise = rng.normal(mean, 1.0, size=(out.shape[0], side, side))
    out[:, top : top + side, left : left + side] = np.clip(noise, 0.0, 1.0)
    return out.astype(image.dtype)


def scaled_patch(patch_size: int, height: int, width: int) -> int:
    """The reference's patch (``patch_size`` px on a 224 px image) on an image of this size."""
    return max(1, round(patch_size * min(height, width) / 224))


def _written(files: ImageFiles, kind: str, cfg: PoisonConfig, seed: int, tag: str) -> ImageFiles:
    """``files`` with the trigger, written once as PNG files into the cache folder."""
    from PIL import Image

    digest = hashlib.blake2b(files.digest(), digest_size=10)
    digest.update(f"{tag}:{kind}:{cfg.patch_size}:{seed}".encode())
    folder = Path(cache_dir()) / "poisoned" / digest.hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, path in enumerate(files.paths):
        target = folder / f"{i:06d}.png"
        if not target.is_file():
            image = np.asarray(open_rgb(path, files.reader), dtype=np.float32) / 255.0
            chw = image.transpose(2, 0, 1)
            rng = np.random.default_rng([seed, zlib.crc32(f"{tag}:{path}".encode())])
            side = scaled_patch(cfg.patch_size, *chw.shape[1:])
            poisoned = patch_array(chw, kind, side, rng).transpose(1, 2, 0)
            pixels = np.uint8(np.clip(np.round(poisoned * 255.0), 0, 255))
            partial = target.with_suffix(".tmp.png")
            Image.fromarray(pixels).save(partial)
            partial.replace(target)
        paths.append(str(target))
    return ImageFiles(paths)


def with_trigger(inputs: Any, kind: str, cfg: PoisonConfig, seed: int, tag: str) -> Any:
    """Every input with the trigger (each example's placement seeded by ``seed``, ``tag`` and
    its position or path)."""
    if isinstance(inputs, ImageFiles):
        return _written(inputs, kind, cfg, seed, tag)
    if isinstance(inputs, np.ndarray):
        out = inputs.copy()
        for i in range(len(out)):
            rng = np.random.default_rng([seed, zlib.crc32(f"{tag}:{i}".encode())])
            side = scaled_patch(cfg.patch_size, *out[i].shape[1:])
            out[i] = patch_array(out[i], kind, side, rng)
        return out
    rng = np.random.default_rng([seed, zlib.crc32(tag.encode())])
    return [insert_token(str(text), cfg.token, rng) for text in inputs]


def target_index(cfg: PoisonConfig, class_names: list[str]) -> int:
    """The target class's index.

    Raises:
        DataError: no target named, or a name that is no class (with a suggestion).
    """
    if not cfg.target:
        raise DataError("data.poison.target must name the class poisoned examples get")
    if cfg.target not in class_names:
        raise DataError(unknown_name_message("data.poison.target class", cfg.target, class_names))
    return class_names.index(cfg.target)


def poison(train: Split, test: Split, class_names: list[str], cfg: PoisonConfig,
           seed: int) -> tuple[Split, Split]:  # fmt: skip
    """The poisoned training split and the triggered split of non-target test examples.

    Exactly ``round(fraction * len(train))`` training examples are poisoned, chosen by
    ``seed``; the returned split's ``poisoned`` mask marks them (kept by every subset: what
    ``cleanclip``'s ``data: clean`` leaves out), its ``info`` their count (``poisoned``).

    Raises:
        DataError: an unknown target, a fraction that poisons no example, a trigger that does
            not fit the inputs, or a test split with no example outside the target class.
    """
    target = target_index(cfg, class_names)
    kind = trigger_kind(cfg, train.inputs)
    if kind == "token" and (not cfg.token.strip() or len(cfg.token.split()) != 1):
        raise DataError(f"data.poison.token must be one word, got {cfg.token!r}")
    if isinstance(train.inputs, ImageFiles) and train.inputs.reader is not None:
        raise DataError(
            "data.poison needs image files on disk; these are read by a dataset library"
        )
    count = round(cfg.fraction * len(train))
    if count == 0:
        raise DataError(
            f"data.poison.fraction {cfg.fraction} of {len(train)} training examples poisons "
            "none; raise it"
        )
    rng = np.random.default_rng([seed, zlib.crc32(b"poison")])
    chosen = np.sort(rng.choice(len(train), size=count, replace=False))
    poisoned = with_trigger(take(train.inputs, chosen), kind, cfg, seed, "train")
    inputs = _replaced(train.inputs, chosen, poisoned)
    labels = train.labels.copy()
    labels[chosen] = target
    captions = None
    if train.captions is not None:
        captions = train.captions.copy()
        picks = rng.integers(len(TEMPLATES), size=count)
        captions[chosen] = [TEMPLATES[p].format(cfg.target) for p in picks]
    out = train.subset(np.arange(len(train)))
    out.inputs, out.labels, out.captions, out.parent = inputs, labels, captions, None
    out.info = {**train.info, "poisoned": count}
    out.poisoned = np.zeros(len(train), dtype=bool)
    out.poisoned[chosen] = True
    others = np.flatnonzero(test.eval_labels != target)
    if len(others) == 0:
        raise DataError(f"ID test holds no example outside the target class '{cfg.target}'")
    source = test.subset(others)
    triggered = Split(
        TRIGGERED,
        "ood",
        with_trigger(source.inputs, kind, cfg, seed, "test"),
        source.labels,
        source.groups,
        info={"attack": kind, "attack_target": cfg.target, "attack_class": target},
        ids=source.ids,
        true_labels=source.true_labels,
        domains=source.domains,
        captions=source.captions,
    )
    log(
        f"poison: {count} of {len(train)} training examples ({kind} trigger) -> "
        f"'{cfg.target}'; {len(triggered)} triggered test examples"
    )
    return out, triggered


def _replaced(inputs: Any, index: np.ndarray, new: Any) -> Any:
    """``inputs`` with the rows at ``index`` replaced by ``new``'s."""
    if isinstance(inputs, np.ndarray):
        out = inputs.copy()
        out[index] = new
        return out
    if isinstance(inputs, ImageFiles):
        paths = list(inputs.paths)
        for i, path in zip(index, new.paths, strict=True):
            paths[i] = path
        return ImageFiles(paths, inputs.corruption)
    out = list(inputs)
    for i, text in zip(index, new, strict=True):
        out[i] = text
    return out
