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

from shiftlab import distributed
from shiftlab.atomic import atomic_path
from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.data.benchmark import Split
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.precision import autocast, current_precision
from shiftlab.progress import progress


@torch.inference_mode()
def encode(
    featurizer: nn.Module,
    inputs: Any,
    *,
    batch_size: int,
    description: str = "encoding",
    device: torch.device | None = None,
    precision: str | None = None,
) -> torch.Tensor:
    """Features of shape (N, D), float32 on the CPU, in input order; featurizer in eval mode.

    The forward pass runs under ``precision`` (default the run's: see :mod:`shiftlab.precision`).
    In a run on several processes each encodes every W-th batch and the features are gathered,
    so every process returns all N rows, each computed in the batch one process would use.
    """
    was_training = featurizer.training
    featurizer.eval()
    n = len(inputs)
    order = featurizer.order(inputs) if hasattr(featurizer, "order") else np.arange(n)
    index_chunks = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    device = device or "cpu"
    distributed.setup(device)  # a no-op unless launched on several processes (joined once)
    mine = distributed.shard(index_chunks)
    weights = next(iter(featurizer.parameters()), None)
    where = weights.device if weights is not None else torch.device(device)
    precision = precision or current_precision()
    batches = iterate(
        inputs,
        mine,
        transform=input_transform(featurizer),
        device=device,
        last=channels_last(featurizer),
    )
    chunks: list[torch.Tensor] = []
    try:
        with progress(description, sum(len(c) for c in mine)) as advance:
            for index, batch in zip(mine, batches, strict=True):
                with autocast(precision, where):
                    chunks.append(featurizer(batch).float().cpu())
                advance(len(index))
    finally:
        featurizer.train(was_training)
    if distributed.is_distributed():
        return _gathered(chunks, index_chunks, order, n)
    if not chunks:
        return torch.empty(0, 0)
    features = torch.empty(n, chunks[0].shape[1])
    features[torch.from_numpy(order.astype(np.int64))] = torch.cat(chunks)
    return features


def _gathered(
    chunks: list[torch.Tensor], index_chunks: list[np.ndarray], order: np.ndarray, n: int
) -> torch.Tensor:
    """Every process's encoded batches (rank r holds batches r, r + W, ...) as the (N, D)
    features in input order."""
    size = distributed.world_size()
    local = torch.cat(chunks) if chunks else torch.empty(0, 0)
    parts = distributed.all_gather_rows(local)
    if sum(len(p) for p in parts) != n:
        raise RuntimeError(f"encode: processes encoded {[len(p) for p in parts]} rows, not {n}")
    if n == 0:
        return torch.empty(0, 0)
    rows: list[torch.Tensor] = []
    offsets = [0] * size
    for i, index in enumerate(index_chunks):
        r = i % size
        rows.append(parts[r][offsets[r] : offsets[r] + len(index)])
        offsets[r] += len(index)
    features = torch.empty(n, rows[0].shape[1])
    features[torch.from_numpy(order.astype(np.int64))] = torch.cat(rows)
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
        if directory is not None and distributed.is_main_process():
            directory.mkdir(parents=True, exist_ok=True)

    def get(
        self, featurizer: nn.Module, split: Split, fingerprint: str | None = None
    ) -> torch.Tensor:
        """Features of ``split`` under ``featurizer``, shape (N, D); encodes on a miss."""
        fingerprint = fingerprint or weights_fingerprint(featurizer)
        key = _key(fingerprint, split)
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
            if self.directory is not None and distributed.is_main_process():
                with atomic_path(self.directory / f"{key}.safetensors") as tmp:
                    save_file({"features": features.contiguous()}, str(tmp))
        self.memory[key] = features
        return features

    def cached(self, split: Split, fingerprint: str) -> torch.Tensor | None:
        """Features of ``split`` if they are known already (in memory, on disk, or those of a
        split it selects examples of): nothing is encoded."""
        key = _key(fingerprint, split)
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
        used before its run directory existed). Only the main process of a run writes."""
        self.directory = directory
        if not distributed.is_main_process():
            return
        directory.mkdir(parents=True, exist_ok=True)
        for key, features in self.memory.items():
            path = directory / f"{key}.safetensors"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    save_file({"features": features.contiguous()}, str(tmp))


def _key(fingerprint: str, split: Split) -> str:
    """Cache key of a split's features under a featurizer; features encoded in mixed precision
    are kept apart from fp32 ones (whose key is unchanged)."""
    key = f"{fingerprint[:20]}-{split.fingerprint[:16]}"
    precision = current_precision()
    return key if precision == "fp32" else f"{key}-{precision}"
