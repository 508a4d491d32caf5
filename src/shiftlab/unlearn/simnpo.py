"""SimNPO, reference-free length-normalised NPO (Fan et al., arXiv 2410.07163): the forget
answers' ``-(2 / beta) log sigmoid(beta (nll / |y| - gamma))`` plus the retain answers' loss.
``OPTML-Group/Unlearn-Simple`` TOFU/dataloader.py (``simnpo_grad_diff``: gamma inside the
scaling) and its README's forget10 run (beta 4.5, npo_coeff 0.125, 10 epochs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.lm.answer_loss import answer_nll
from shiftlab.unlearn.base import UNLEARN, Batch, LossUnlearner, param
from shiftlab.unlearn.npo import NPOOptions


@dataclass
class SimNPOOptions(NPOOptions):
    beta: float = param(4.5, "inverse temperature beta (forget10)")
    gamma: float = param(0.0, "reward margin gamma (reference config)", within="[0, inf)")
    forget_weight: float = param(0.125, "weight of the SimNPO term (npo_coeff, forget10)")
    batch_size: int = param(32, "forget examples per step (reference: 1 x 4 x 8 GPUs)")


def simnpo_loss(nll: torch.Tensor, n: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """Per-example ``-(2 / beta) log sigmoid(beta (nll / |y| - gamma))`` (B,), |y| = ``n``."""
    reward = beta * (nll / n.clamp(min=1) - gamma)
    return -(2.0 / beta) * torch.nn.functional.logsigmoid(reward)


@UNLEARN.register("simnpo", options=SimNPOOptions, kinds=("causal_lm",))
class SimNPO(LossUnlearner):
    """Lower the forget answers' length-normalised likelihood, boundedly, without a reference."""

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        nll, lengths = answer_nll(self.student.model, batch.inputs)
        return simnpo_loss(nll, lengths, self.options.beta, self.options.gamma).mean()
