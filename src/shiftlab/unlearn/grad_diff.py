"""Gradient difference: ascent on the forget answers' loss, descent on the retain answers'
(TOFU's ``grad_diff``, Maini et al., arXiv 2401.06121, after Liu, Liu, Stone, CoLLAs 2022):
``-forget_weight * CE(forget) + retain_weight * CE(retain)``, each a token-mean answer loss, a
retain example drawn per forget example (``locuslab/tofu`` dataloader.py, TextForgetDatasetQA;
config/forget.yaml for the shared LM options)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.unlearn.base import UNLEARN, Batch, LMOptions, LossUnlearner, LossWeights, param


@dataclass
class GradDiffOptions(LMOptions, LossWeights):
    forget_weight: float = param(1.0, "weight of the (negated) forget answer loss")
    retain_weight: float = param(1.0, "weight of the retain answer loss")


@UNLEARN.register("grad_diff", options=GradDiffOptions, kinds=("causal_lm",))
class GradDiff(LossUnlearner):
    """Ascend the forget answers' loss and descend the retain answers' on a copy."""

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        return -self.plain_loss(batch)
