"""SimNPO: reference-free, length-normalised NPO (Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024,
"Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning",
arXiv 2410.07163).

For a forget example with answer negative log-likelihood ``nll = -log pi_theta(y|x)`` summed
over its |y| answer tokens::

    L_SimNPO = -(2 / beta) * log sigmoid(beta * (nll / |y| - gamma))

averaged over the batch, weighted by ``forget_weight``, plus ``retain_weight`` times the retain
answers' cross-entropy. The paper writes the margin outside the scaling,
``sigmoid(-(beta / |y|) log pi - gamma)``; the reference code (followed here) scales it,
``beta * (nll / |y| - gamma)``; the two agree at the default gamma 0.

Follows ``OPTML-Group/Unlearn-Simple``: TOFU/dataloader.py (``simnpo_grad_diff``:
``forget_loss = get_batch_loss(logits, labels) / loss_mask.sum(-1) - gamma``, ``-F.logsigmoid(
beta * forget_loss).mean() * 2 / beta``, ``loss = npo_coeff * forget_loss + grad_diff_coeff *
retain_loss``), TOFU/config/forget.yaml (``forget_loss: simnpo_grad_diff``, ``gamma: 0.0``,
``grad_diff_coeff: 1.0``, ``lr: 1e-5``, ``num_epochs: 10``, ``weight_decay: 0.01``, warmup one
epoch, batch 1 x accumulation 4 on 8 GPUs) and TOFU/README.md's forget10 run (``beta=4.5``,
``npo_coeff=0.125``; forget05 uses ``beta=2.5``, ``npo_coeff=0.1375``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.trainer import Batch
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Cycle,
    Data,
    LMOptions,
    answer_nll,
    check,
    lm_batch,
    retain_answer_loss,
    run_training,
    unlearned_copy,
)


@dataclass
class SimNPOOptions(LMOptions):
    """SimNPO's beta, margin and term weights (the reference's TOFU forget10 run)."""

    beta: float = param(4.5, "inverse temperature beta (reference README, forget10)")
    gamma: float = param(0.0, "reward margin gamma (reference config)")
    forget_weight: float = param(0.125, "weight of the SimNPO term (npo_coeff, forget10)")
    retain_weight: float = param(1.0, "weight of the retain answer loss (grad_diff_coeff)")
    epochs: int = param(10, "passes over the forget set (reference num_epochs)")
    batch_size: int = param(32, "forget examples per step (reference: 1 x 4 x 8 GPUs)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ConfigError(f"simnpo beta must be positive, got {self.beta}")


def simnpo_loss(
    nll: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float
) -> torch.Tensor:
    """Per-example SimNPO loss ``-(2 / beta) * log sigmoid(beta * (nll / |y| - gamma))``.

    Args:
        nll: (B,) -log pi_theta(y|x), summed over answer tokens.
        lengths: (B,) answer tokens |y|.
        beta: inverse temperature.
        gamma: reward margin.

    Returns:
        (B,) losses.
    """
    return -(2.0 / beta) * F.logsigmoid(beta * (nll / lengths.clamp(min=1) - gamma))


@UNLEARN.register("simnpo", config=SimNPOOptions, requires=("causal_lm",))
def simnpo(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: SimNPOOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Minimise the SimNPO loss of the forget answers plus the retain answer loss on a copy.

    Args:
        model: an LMScorer; not modified (SimNPO needs no reference model).
        forget: forget prompts and answers.
        retain: retain prompts and answers (read only when ``retain_weight > 0``).
        options: beta, gamma, the weights and the optimisation settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    uses_retain = options.retain_weight > 0
    check("simnpo", model, "causal_lm", forget, retain if uses_retain else None)
    student = unlearned_copy(model, device)
    cycle = Cycle(len(retain), np.random.default_rng([seed, 1])) if uses_retain else None

    def loss_fn(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(student, forget, batch.index, options.max_length, device)
        nll, lengths = answer_nll(student.model, encoded)
        loss = options.forget_weight * simnpo_loss(nll, lengths, options.beta, options.gamma).mean()
        if cycle is not None:
            loss = loss + options.retain_weight * retain_answer_loss(
                student, retain, cycle, len(batch.index), options.max_length, device
            )
        return loss

    run_training(
        student,
        loss_fn,
        options,
        n=len(forget),
        seed=seed,
        device=device,
        method="simnpo",
        stateful=[cycle] if cycle is not None else [],
    )
    return student.eval()
