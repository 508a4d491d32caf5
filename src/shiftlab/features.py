"""FeatureCache: one encoder pass per (featurizer weights, split), reused by every head.

Zero-shot, linear probing, calibration and every WiSE-FT endpoint read features from here;
the key is a hash of the featurizer's weights and of the split's contents, so equal weights
(the pretrained model, WiSE-FT at alpha 0) never encode a split twice. Features live in memory
and in the run directory's ``cache/``, so a resumed run reuses them too.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.data.benchmark import Split
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.progress import progress


@torch.inference_mode()
def encode(
    featurizer: nn.Module,
    inputs: Any,
    *,
    batch_size: int,
    description: str = "encoding",
    device: torch.device | None = None,
) -> torch.Tensor:
    """Features of shape (N, D), float32 on the CPU, in input order; featurizer in eval mode."""
    was_training = featurizer.training
    featurizer.eval()
    n = len(inputs)
    order = featurizer.order(inputs) if hasattr(featurizer, "order") else np.arange(n)
    index_chunks = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    batches = iterate(
        inputs,
        index_chunks,
        transform=input_transform(featurizer),
        device=device or "cpu",
        last=channels_last(featurizer),
    )
    chunks: list[torch.Tensor] = []
    try:
        with progress(description, n) as advance:
            for index, batch in zip(index_chunks, batches, strict=True):
                chunks.append(featurizer(batch).float().cpu())
                advance(len(index))
    finally:
        featurizer.train(was_training)
    if not chunks:
        return torch.empty(0, 0)
    features = torch.empty(n, chunks[0].shape[1])
    features[torch.from_numpy(order.astype(np.int64))] = torch.cat(chunks)
    return features


class FeatureCache:
    """Features keyed by (featurizer fingerprint, split fingerprint), in memory and on disk.

    ``passes`` counts encoder passes per split name: the cost the cache exists to bound.
    """

    def __init__(
        self, directory: Path | None, batch_size: int, device: torch.device | None = None
    ) -> None:
        self.directory = directory
        self.batch_size = batch_size
        self.device = device
        self.memory: dict[str, torch.Tensor] = {}
        self.passes: Counter[str] = Counter()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def get(
        self, featurizer: nn.Module, split: Split, fingerprint: str | None = None
    ) -> torch.Tensor:
        """Features of ``split`` under ``featurizer``, shape (N, D); encodes on a miss."""
        fingerprint = fingerprint or weights_fingerprint(featurizer)
        key = f"{fingerprint[:20]}-{split.fingerprint[:16]}"
        features = self.cached(split, fingerprint)
        if features is None and split.parent is not None:
            parent, index = split.parent
            if len(index) == len(parent):  # the same examples (e.g. relabelled): the parent's
                return self.get(featurizer, parent, fingerprint)[torch.from_numpy(index)]
        if features is None:
            features = encode(
                featurizer,
                split.inputs,
                batch_size=self.batch_size,
                description=f"encoding {split.name}",
                device=self.device,
            )
            self.passes[split.name] += 1
            if self.directory is not None:
                save_file(
                    {"features": features.contiguous()}, str(self.directory / f"{key}.safetensors")
                )
        self.memory[key] = features
        return features

    def cached(self, split: Split, fingerprint: str) -> torch.Tensor | None:
        """Features of ``split`` if they are known already (in memory, on disk, or those of a
        split it selects examples of): nothing is encoded."""
        key = f"{fingerprint[:20]}-{split.fingerprint[:16]}"
        if key in self.memory:
            return self.memory[key]
        path = self.directory / f"{key}.safetensors" if self.directory is not None else None
        if path is not None and path.is_file():
            self.memory[key] = load_file(str(path))["features"]
            return self.memory[key]
        if split.parent is not None:
            parent, index = split.parent
            known = self.cached(parent, fingerprint)
            if known is not None:
                return known[torch.from_numpy(index)]
        return None

    def attach(self, directory: Path) -> None:
        """Keep features on disk from now on, starting with those already in memory (a cache
        used before its run directory existed)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        for key, features in self.memory.items():
            path = directory / f"{key}.safetensors"
            if not path.is_file():
                save_file({"features": features.contiguous()}, str(path))
