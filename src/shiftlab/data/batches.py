"""Batches of a split's inputs, ready for a model: texts as lists, image arrays and image files
as tensors on the device, through the model's own input transform.

Encoding, training and test-time adaptation all draw their batches here, so an image folder is
decoded the same way everywhere: in DataLoader workers, by the backbone's transform (timm's or
open_clip's preprocessing). Deterministic (evaluation) transforms of image files are cached in
memory, half precision, the first time a set is read, since every model of a run encodes the same
splits; training with augmentation decodes afresh each epoch.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab.data.images import ImageFiles


class ImageTransform:
    """What an image backbone eats: ``size`` x ``size`` RGB, normalised by ``mean`` and ``std``.

    ``eval_pil`` maps a PIL image to a (3, size, size) tensor (resize, crop, normalise);
    ``train_pil`` does the same with augmentation (None: train on the eval transform). Arrays of
    images in [0, 1] (N, C, H, W), e.g. digits, are resized, given three channels and normalised.
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        eval_pil: Any,
        train_pil: Any = None,
        key: str = "",
    ) -> None:
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)
        self.eval_pil, self.train_pil = eval_pil, train_pil
        self.key = key or f"{size}:{self.mean}:{self.std}:{eval_pil!r}"

    def pil(self, image: Any, train: bool = False) -> torch.Tensor:
        """One decoded image as a normalised (3, size, size) tensor."""
        return (self.train_pil if train and self.train_pil is not None else self.eval_pil)(image)

    def array(self, batch: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> normalised (B, 3, size, size)."""
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        elif batch.shape[1] == 2:  # two-channel (red, green) digits: add an empty blue
            batch = torch.cat([batch, torch.zeros_like(batch[:, :1])], dim=1)
        if batch.shape[-1] != self.size or batch.shape[-2] != self.size:
            batch = torch.nn.functional.interpolate(
                batch, size=(self.size, self.size), mode="bilinear", antialias=True
            )
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std


def input_transform(model: nn.Module | None) -> ImageTransform | None:
    """The image transform a model (or its featurizer) declares, if any."""
    for module in (model, getattr(model, "featurizer", None)):
        found = getattr(module, "transform", None)
        if isinstance(found, ImageTransform):
            return found
    return None


def channels_last(model: nn.Module | None) -> bool:
    """Whether a model (or its featurizer) wants channels-last image batches."""
    return any(
        bool(getattr(m, "channels_last", False))
        for m in (model, getattr(model, "featurizer", None))
    )


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, files: ImageFiles, transform: ImageTransform, train: bool) -> None:
        self.files, self.transform, self.train = files, transform, train

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform.pil(self.files.load(i), self.train)


def default_workers() -> int:
    """DataLoader workers for decoding: ``$SHIFTLAB_WORKERS``, else up to 4 (one per spare
    core, at least one)."""
    explicit = os.environ.get("SHIFTLAB_WORKERS")
    if explicit is not None:
        return max(0, int(explicit))
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _loader(files: ImageFiles, transform: ImageTransform, chunks, train: bool, workers: int):
    return torch.utils.data.DataLoader(
        _Decoded(files, transform, train),
        batch_sampler=[list(map(int, c)) for c in chunks],
        num_workers=workers if len(files) > 64 else 0,
    )


class _DecodedCache:
    """Evaluation-transformed image sets (float16), least recently used first out."""

    def __init__(self, max_bytes: int = 3 * 2**30) -> None:
        self.max_bytes, self.items = max_bytes, OrderedDict()

    def get(self, files: ImageFiles, transform: ImageTransform, workers: int) -> torch.Tensor:
        key = (files.digest(), transform.key)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        chunks = [np.arange(i, min(i + 64, len(files))) for i in range(0, len(files), 64)]
        # Nothing else runs while the cache fills: decode on every core.
        fill = max(workers, min(4, os.cpu_count() or 1))
        tensors = [b.half() for b in _loader(files, transform, chunks, False, fill)]
        decoded = torch.cat(tensors) if tensors else torch.empty(0)
        self.items[key] = decoded
        while sum(v.numel() * 2 for v in self.items.values()) > self.max_bytes:
            self.items.popitem(last=False)
        return decoded


DECODED = _DecodedCache()


def iterate(
    inputs: Any,
    chunks: Sequence[np.ndarray],
    *,
    transform: ImageTransform | None = None,
    device: torch.device | str = "cpu",
    train: bool = False,
    last: bool = False,
    workers: int | None = None,
) -> Iterator[Any]:
    """Yield one model-ready batch per chunk of example indices, in order.

    Args:
        inputs: a split's inputs: list of texts, array (N, ...) or ImageFiles.
        chunks: index arrays, one per batch.
        transform: the model's image transform (None: arrays go in as they are).
        train: use the transform's augmentation (image files only).
        last: channels-last memory format for image batches.
        workers: DataLoader workers decoding image files (default :func:`default_workers`).
    """
    workers = default_workers() if workers is None else workers
    if isinstance(inputs, ImageFiles):
        if transform is None:
            raise TypeError("image files need the backbone's image transform to be decoded")
        if train and transform.train_pil is not None:
            batches: Iterator[torch.Tensor] = iter(
                _loader(inputs, transform, chunks, True, workers)
            )
        else:
            decoded = DECODED.get(inputs, transform, workers)
            batches = (decoded[torch.as_tensor(c, dtype=torch.long)].float() for c in chunks)
        for batch in batches:
            batch = batch.to(device)
            yield batch.contiguous(memory_format=torch.channels_last) if last else batch
        return
    for index in chunks:
        if isinstance(inputs, np.ndarray):
            batch = torch.from_numpy(inputs[index]).to(device)
            if transform is not None and batch.dim() == 4:
                batch = transform.array(batch)
            if last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch
        else:
            yield [inputs[i] for i in index]
