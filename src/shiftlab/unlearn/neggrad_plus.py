"""NegGrad+: ``alpha * CE(retain) - (1 - alpha) * CE(forget)`` (Kurmanji et al., arXiv
2302.09880), one pass over the retain set per epoch, the forget set cycled; ``meghdadk/SCRUB``
``loops.py`` ``train_negrad`` and MIA_experiments.ipynb ``negative_grad`` (plain SGD)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.unlearn.base import UNLEARN, Batch, LossUnlearner, RelativeSGD, param


@dataclass
class NegGradPlusOptions(RelativeSGD):
    alpha: float = param(0.9999, "retain weight; forget weighs 1 - alpha", within="[0, 1]")
    epochs: int = param(5, "passes over the retain set (SCRUB ng_epochs)")
    lr: float = param(0.01, "learning rate (SCRUB ng_lr)")
    weight_decay: float = param(0.0, "weight decay (SCRUB negative_grad: 0)")
    batch_size: int = param(32, "retain examples per step (SCRUB retain_bs)")
    forget_batch_size: int = param(16, "forget examples per step (forget_bs)", within="[1, inf)")
    momentum: float = param(0.0, "SGD momentum (SCRUB negative_grad: torch's default 0)")
    budget: float | None = param(0.77, "steps / original steps (SCRUB MIA run: 6,235 / 8,138)")
    lr_scale: float | None = param(1.0, "lr / original lr (SCRUB MIA run: 0.01 / 0.01)")


@UNLEARN.register("neggrad_plus", options=NegGradPlusOptions, kinds=("encoder",))
class NegGradPlus(LossUnlearner):
    """Descend the retain loss and ascend the forget loss on a copy, in one weighted loss."""

    walk = "retain"

    def weights(self) -> tuple[float, float]:
        return 1.0 - self.options.alpha, self.options.alpha

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        return -self.plain_loss(batch)
