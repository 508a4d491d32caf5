"""Full fine-tuning throughput: shiftlab's trainer vs a minimal hand-written PyTorch loop.

Same model (MiniLM), same data (VADER movie snippets), same batch size, same optimiser and
schedule, in one process; the two are run alternately and each keeps its best repeat. Also
checks that zero_shot + linear_probe together cost one encoder pass per split.
Prints ``ratio=`` (shiftlab samples/s over plain samples/s) last.

    python benchmarks/throughput.py [--samples 384] [--batch-size 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.config.sections import BackboneConfig, DataConfig
from shiftlab.data import load_benchmark
from shiftlab.data.vader import VaderOptions
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.models import Classifier, load_backbone
from shiftlab.registry import FINETUNE
from shiftlab.training import TrainOptions, train
from shiftlab.training.trainer import lr_factor
from shiftlab.typed import build

CPU = torch.device("cpu")


def shiftlab_run(backbone, head, texts, labels, cfg: TrainOptions) -> float:
    """Samples per second of shiftlab's trainer."""
    model = Classifier(copy.deepcopy(backbone.featurizer), copy.deepcopy(head))
    result = train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        texts,
        labels,
        cfg,
        seed=0,
        device=CPU,
        description="shiftlab trainer",
    )
    return result.samples_per_second


def plain_run(backbone, head, texts, labels, cfg: TrainOptions) -> float:
    """Samples per second of the plain loop: tokenise, encode, mean-pool, head, AdamW."""
    encoder = copy.deepcopy(backbone.featurizer)
    hf, tokenizer = encoder.model, encoder.tokenizer
    head = copy.deepcopy(head)
    params = list(hf.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = np.random.default_rng(0).permutation(len(labels))
    total = math.ceil(len(order) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps, total))
    y = torch.as_tensor(labels)
    hf.train()
    start = time.perf_counter()
    for i in range(0, len(order), cfg.batch_size):
        idx = order[i : i + cfg.batch_size]
        batch = tokenizer(
            [texts[j] for j in idx],
            padding=True,
            truncation=True,
            max_length=encoder.max_length,
            return_tensors="pt",
        )
        states = hf(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        features = F.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
        loss = F.cross_entropy(head(features), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
    return len(order) / (time.perf_counter() - start)


def encoder_passes(backbone, data_cfg: DataConfig) -> dict[str, int]:
    """Encoder passes per split when zero_shot and linear_probe both run and are scored."""
    bench = load_benchmark(data_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp), batch_size=32)
        predictors = []
        for recipe in ("zero_shot", "linear_probe"):
            ctx = RecipeContext(
                recipe,
                bench,
                backbone,
                cache,
                ["a {class_name} review."],
                0,
                CPU,
                lambda name: None,
            )
            entry = FINETUNE[recipe]
            predictors += list(entry.obj(ctx, entry.options()))
        for predictor in predictors:
            for split in bench.eval_splits():
                cache.get(predictor.model.featurizer, split)
        return dict(cache.passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    data_cfg = build(
        DataConfig,
        {
            "kind": "vader",
            "id_domains": ["movie"],
            "ood_domains": ["tweets"],
            "max_per_domain": 1000,
            "max_per_ood_domain": 200,
        },
        "data",
    )
    data_cfg.options = VaderOptions()
    backbone = load_backbone(BackboneConfig(max_length=128), CPU)
    bench = load_benchmark(data_cfg)
    texts = bench.train.inputs[: args.samples]
    labels = bench.train.labels[: args.samples]
    head = torch.nn.Linear(backbone.featurizer.dim, 2)
    cfg = TrainOptions(epochs=1, lr=3e-5, batch_size=args.batch_size, warmup_steps=2)

    passes = encoder_passes(backbone, data_cfg)
    print(f"encoder passes per split, zero_shot + linear_probe: {passes}")
    assert all(n == 1 for n in passes.values()), passes

    plain_run(backbone, head, texts[:64], labels[:64], cfg)  # warm up allocator and kernels
    ours, plain = [], []
    for _ in range(args.repeats):
        plain.append(plain_run(backbone, head, texts, labels, cfg))
        ours.append(shiftlab_run(backbone, head, texts, labels, cfg))
        print(f"plain {plain[-1]:.2f} samples/s, shiftlab {ours[-1]:.2f} samples/s")
    print(f"threads={torch.get_num_threads()} samples={len(labels)} batch_size={args.batch_size}")
    print(f"best: plain {max(plain):.2f} samples/s, shiftlab {max(ours):.2f} samples/s")
    print(f"ratio={max(ours) / max(plain):.3f}")


if __name__ == "__main__":
    main()
