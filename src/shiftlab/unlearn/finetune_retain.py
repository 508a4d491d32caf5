"""Fine-tuning on the retain set, the "catastrophic forgetting" baseline (Golatkar, Achille,
Soatto, CVPR 2020, arXiv 1911.04933; Kurmanji et al., arXiv 2302.09880): cross-entropy on the
retain set only. Defaults: ``meghdadk/SCRUB`` large_scale_unlearning.ipynb (``finetune(...,
epochs=10, lr=0.01)``: plain SGD, no momentum or weight decay, the retain loader's batch 128)."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlab.unlearn.base import UNLEARN, LossUnlearner, LossWeights, RelativeSGD, param


@dataclass
class FinetuneRetainOptions(RelativeSGD, LossWeights):
    epochs: int = param(10, "passes over the retain set (SCRUB large-scale notebook)")
    lr: float = param(0.01, "learning rate (SCRUB large-scale notebook)")
    weight_decay: float = param(0.0, "weight decay (SCRUB's finetune: 0)")
    batch_size: int = param(128, "retain examples per step (SCRUB: args.batch_size)")
    momentum: float = param(0.0, "SGD momentum (SCRUB's finetune: torch's default 0)")
    budget: float | None = param(0.35, "steps / original steps (SCRUB large-scale: 2,820 / 8,138)")
    lr_scale: float | None = param(1.0, "lr / original lr (SCRUB: 0.01 / 0.01)")
    forget_weight: float = param(0.0, "weight of a forget term (the baseline has none)")
    retain_weight: float = param(1.0, "weight of the retain cross-entropy")


@UNLEARN.register("finetune_retain", options=FinetuneRetainOptions, kinds=("encoder",))
class FinetuneRetain(LossUnlearner):
    """Fine-tune a copy of the classifier on the retain set with cross-entropy."""

    walk = "retain"
