"""Negative Preference Optimization (Zhang et al., arXiv 2404.05868): the forget answers'
``-(2 / beta) log sigmoid(beta (nll - nll_ref))``, nll_ref the frozen original's, plus the retain
answers' loss (``licong-lin/negative-preference-optimization`` ``npo_grad_diff``, forget.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.lm.answer_loss import answer_nll
from shiftlab.unlearn.base import UNLEARN, Batch, LMOptions, LossUnlearner, LossWeights, param


@dataclass
class NPOOptions(LMOptions, LossWeights):
    beta: float = param(0.1, "inverse temperature beta (reference config)", within="(0, inf)")
    forget_weight: float = param(1.0, "weight of the NPO term (npo_coeff)")
    retain_weight: float = param(1.0, "weight of the retain answer loss (grad_diff_coeff)")
    epochs: int = param(10, "passes over the forget set (reference num_epochs)")
    batch_size: int = param(16, "forget examples per step (reference: 4 x accumulation 4)")
    epochs_scale: float | None = param(2.0, "forget passes per original epoch (10 after 5)")


def npo_loss(nll: torch.Tensor, ref_nll: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-example ``-(2 / beta) log sigmoid(beta (nll - ref_nll))`` (B,)."""
    return -(2.0 / beta) * torch.nn.functional.logsigmoid(beta * (nll - ref_nll))


@UNLEARN.register("npo", options=NPOOptions, kinds=("causal_lm",))
class NPO(LossUnlearner):
    """Push the forget answers' likelihood below the original model's, boundedly."""

    uses_reference = True

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        nll, _ = answer_nll(self.student.model, batch.inputs)
        with torch.no_grad():
            ref_nll, _ = answer_nll(self.reference.model, batch.inputs)
        return npo_loss(nll, ref_nll, self.options.beta).mean()
