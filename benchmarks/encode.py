"""Encoding throughput: shiftlab's FeatureCache encoder vs plain in-order batching.

Both encode the same texts (VADER, 300 from each domain) with the same MiniLM, mean pooling and
normalisation. shiftlab sorts texts by length and uses batches of 32 (its CPU default); the plain
way batches texts in their order, at 32 and at 128. Checks the features agree, then prints
``ratio=`` (shiftlab texts/s over the best plain texts/s) last.

    python benchmarks/encode.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.config.sections import BackboneConfig
from shiftlab.data.vader import VaderOptions, vader
from shiftlab.features import encode
from shiftlab.models import load_backbone


@torch.inference_mode()
def plain_encode(encoder, texts: list[str], batch_size: int) -> torch.Tensor:
    """In-order batches through tokenizer, model, mean pooling and L2 normalisation."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = encoder.tokenizer(
            texts[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=encoder.max_length,
            return_tensors="pt",
        )
        states = encoder.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out.append(F.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1))
    return torch.cat(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    data = vader(VaderOptions(), None)
    rng = np.random.default_rng(0)
    texts = [
        t
        for d in data.domains.values()
        for t in np.array(d.inputs, dtype=object)[rng.permutation(len(d))[:300]]
    ]
    encoder = load_backbone(BackboneConfig(max_length=128), torch.device("cpu")).featurizer.eval()
    plain_encode(encoder, texts[:64], 32)  # warm up
    best: dict[str, float] = {}
    for _ in range(2):
        ours, seconds = timed(lambda: encode(encoder, texts, batch_size=32))
        best["shiftlab"] = max(best.get("shiftlab", 0.0), len(texts) / seconds)
        for size in (32, 128):
            plain, seconds = timed(lambda size=size: plain_encode(encoder, texts, size))
            key = f"plain batch {size}"
            best[key] = max(best.get(key, 0.0), len(texts) / seconds)
    assert torch.allclose(ours, plain, atol=1e-5), "features differ"
    for name, rate in best.items():
        print(f"{name}: {rate:.1f} texts/s")
    plain_best = max(v for k, v in best.items() if k.startswith("plain"))
    print(f"texts={len(texts)} threads={torch.get_num_threads()}")
    print(f"ratio={best['shiftlab'] / plain_best:.3f}")


if __name__ == "__main__":
    main()
