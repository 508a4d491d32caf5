"""Gradient ascent on the forget set: classifiers as Jia et al. (arXiv 2304.04934, Unlearn-Sparse
``GA.py``; MultiStepLR never decays in 5 epochs), language models as TOFU's ``grad_ascent``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.unlearn.base import UNLEARN, Batch, LMOptions, LossUnlearner, RelativeSGD, param


@dataclass
class ClassifierAscentOptions(RelativeSGD):
    epochs: int = param(5, "passes over the forget set (Unlearn-Sparse README)")
    lr: float = param(1e-4, "learning rate (Unlearn-Sparse README)")
    weight_decay: float = param(5e-4, "weight decay (Unlearn-Sparse arg_parser)")
    batch_size: int = param(256, "forget examples per step (Unlearn-Sparse arg_parser)")
    budget: float | None = param(0.0028, "steps / original steps (Unlearn-Sparse: 90 / 32,032)")
    lr_scale: float | None = param(1e-3, "lr / original peak lr (Unlearn-Sparse: 1e-4 / 0.1)")


@dataclass
class GradientAscentOptions:
    classifier: ClassifierAscentOptions = param(ClassifierAscentOptions(), "classifiers' options")
    causal_lm: LMOptions = param(LMOptions(), "language models' options (TOFU)")


@UNLEARN.register("gradient_ascent", options=GradientAscentOptions, kinds=("encoder", "causal_lm"))
class GradientAscent(LossUnlearner):
    """Maximise the forget set's training loss (cross-entropy, or the answers' loss) on a copy."""

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        return -self.plain_loss(batch)
