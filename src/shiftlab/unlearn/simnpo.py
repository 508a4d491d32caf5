"""SimNPO, reference-free length-normalised NPO (Fan et al., arXiv 2410.07163): the forget
answers' ``-(2 / beta) log sigmoid(beta (nll / |y| - gamma))`` plus the retain answers' loss.
``OPTML-Group/Unlearn-Simple`` TOFU/dataloader.py (``simnpo_grad_diff``: gamma inside the
scaling) and its README's forget10 run (beta 4.5, npo_coeff 0.125, 10 epochs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from shiftlab.lm.answer_loss import answer_nll
from shiftlab.unlearn.base import UNLEARN, Batch, LMOptions, LossUnlearner, param


@dataclass
class SimNPOOptions(LMOptions):
    beta: float = param(4.5, "inverse temperature beta (forget10)", within="(0, inf)")
    gamma: float = param(0.0, "reward margin gamma (reference config)", within="[0, inf)")
    forget_weight: float = param(
        0.125, "weight of the SimNPO term (npo_coeff, forget10)", within="[0, inf)"
    )
    retain_weight: float = param(
        1.0, "weight of the retain answer loss (grad_diff_coeff)", within="[0, inf)"
    )
    epochs: int = param(10, "passes over the forget set (reference num_epochs)")
    batch_size: int = param(32, "forget examples per step (reference: 1 x 4 x 8 GPUs)")
    epochs_scale: float | None = param(2.0, "forget passes per original epoch (10 after 5)")


def simnpo_loss(
    nll: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float
) -> torch.Tensor:
    """Per-example ``-(2 / beta) log sigmoid(beta (nll / |y| - gamma))`` (B,)."""
    return -(2.0 / beta) * F.logsigmoid(beta * (nll / lengths.clamp(min=1) - gamma))


@UNLEARN.register("simnpo", options=SimNPOOptions, kinds=("causal_lm",))
class SimNPO(LossUnlearner):
    """Lower the forget answers' length-normalised likelihood, boundedly, without a reference."""

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        nll, lengths = answer_nll(self.student.model, batch.inputs)
        return simnpo_loss(nll, lengths, self.options.beta, self.options.gamma).mean()
