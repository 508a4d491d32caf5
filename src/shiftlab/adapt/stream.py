"""Run an adapter along a test stream and score what it predicted."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shiftlab.adapt.base import Adapter
from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.data.benchmark import Split
from shiftlab.evaluate.records import make_record
from shiftlab.models.classifier import Predictor
from shiftlab.predictions import Scored
from shiftlab.progress import progress


def adapt_stream(
    adapter: Adapter, split: Split, *, seed: int, device: torch.device, advance: Any = None
) -> torch.Tensor:
    """Logits (N, K) the adapter gives each example of ``split``, streamed in batches.

    The stream visits the split in a seeded random order (i.i.d. batches, as TTA benchmarks
    assume; data files are often sorted by class), and the logits come back in split order. A
    split smaller than one batch is one batch.
    """
    n = len(split)
    order = np.random.default_rng(seed).permutation(n)
    chunks = [
        order[start : start + adapter.cfg.batch_size]
        for start in range(0, n, adapter.cfg.batch_size)
    ]
    batches = iterate(
        split.inputs,
        chunks,
        transform=input_transform(adapter.model),
        device=device,
        last=channels_last(adapter.model),
    )
    logits: torch.Tensor | None = None
    for index, inputs in zip(chunks, batches, strict=True):
        out = adapter(inputs).float().cpu()
        if logits is None:
            logits = torch.empty(n, out.shape[1])
        logits[torch.from_numpy(index)] = out
        if advance is not None:
            advance(len(index))
    assert logits is not None
    return logits


def adapted_records(
    adapter: Adapter,
    name: str,
    predictor: Predictor,
    splits: list[Split],
    *,
    seed: int,
    device: torch.device,
    group_names: list[str] | None = None,
) -> list[Scored]:
    """Records (with their logits) of ``predictor`` adapted by ``adapter`` (named ``name``) on
    each split, with the adapter reset between splits; each record counts the guard's resets."""
    adapter.to(device)
    records = []
    with progress(f"{name} on {predictor.name}", sum(len(s) for s in splits)) as advance:
        for split in splits:
            adapter.reset()
            adapter.resets.clear()
            logits = adapt_stream(adapter, split, seed=seed, device=device, advance=advance)
            record = make_record(
                predictor, split, logits, seed=seed, adapter=name, group_names=group_names
            )
            record["resets"] = len(adapter.resets)
            if adapter.resets:
                record["reset_reasons"] = sorted(set(adapter.resets))
            records.append(Scored(record, logits, split))
    return records
