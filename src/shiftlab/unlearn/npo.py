"""Negative Preference Optimization: DPO with only a dispreferred answer, pushing the model's
likelihood of the forget answers below the original model's, with a bounded loss (Zhang, Lin,
Bai, Mei, COLM 2024, arXiv 2404.05868).

For a forget example (x, y) with sequence log-likelihoods ``log pi_theta(y|x)`` (summed over the
answer tokens) and ``log pi_ref(y|x)`` (the original model, frozen)::

    L_NPO = (2 / beta) * log(1 + (pi_theta(y|x) / pi_ref(y|x)) ** beta)
          = -(2 / beta) * log sigmoid(beta * (nll_theta - nll_ref))

averaged over the batch; at theta = ref it is (2 / beta) log 2 per example. ``retain_weight > 0``
adds the retain answers' cross-entropy (NPO+RT, the reference's ``npo_grad_diff``).

Follows ``licong-lin/negative-preference-optimization``: TOFU/dataloader.py (``npo``:
``neg_log_ratios = forget_loss_current - forget_loss_oracle``, ``loss =
-F.logsigmoid(beta * neg_log_ratios).mean() * 2 / beta``; ``npo_grad_diff``: ``npo_coeff *
forget_loss + grad_diff_coeff * retain_loss``), TOFU/data_module.py (``get_batch_loss``: the
summed token cross-entropy) and config/forget.yaml (``beta: 0.1``, ``lr: 1e-5``, ``batch_size: 4``
x ``gradient_accumulation_steps: 4``, ``num_epochs: 10``, ``weight_decay: 0.01``,
``warmup_steps: steps_per_epoch``; its default ``forget_loss`` is ``npo_grad_diff`` with both
coefficients 1, which is ``retain_weight: 1`` here).
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
    frozen_copy,
    lm_batch,
    retain_answer_loss,
    run_training,
    unlearned_copy,
)


@dataclass
class NPOOptions(LMOptions):
    """NPO's inverse temperature, the optional retain term, and the reference's optimisation."""

    beta: float = param(0.1, "inverse temperature beta (reference config)")
    forget_weight: float = param(1.0, "weight of the NPO term (npo_coeff)")
    retain_weight: float = param(
        0.0, "weight of the retain answer loss; 1 gives NPO+RT (npo_grad_diff)"
    )
    epochs: int = param(10, "passes over the forget set (reference num_epochs)")
    batch_size: int = param(16, "forget examples per step (reference: 4 x accumulation 4)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ConfigError(f"npo beta must be positive, got {self.beta}")


def npo_loss(nll: torch.Tensor, ref_nll: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-example NPO loss ``-(2 / beta) * log sigmoid(beta * (nll - ref_nll))``, i.e.
    ``(2 / beta) * log(1 + (pi_theta / pi_ref) ** beta)``.

    Args:
        nll: (B,) -log pi_theta(y|x), summed over answer tokens.
        ref_nll: (B,) the same under the reference model.
        beta: inverse temperature.

    Returns:
        (B,) losses.
    """
    return -(2.0 / beta) * F.logsigmoid(beta * (nll - ref_nll))


def npo_forget_loss(
    lm: nn.Module, reference: nn.Module, batch: dict[str, torch.Tensor], beta: float
) -> torch.Tensor:
    """Per-example NPO loss (B,) of an answer-only batch under ``lm`` against ``reference``
    (both Hugging Face causal LMs; the reference's pass takes no gradient)."""
    nll, _ = answer_nll(lm, batch)
    with torch.no_grad():
        ref_nll, _ = answer_nll(reference, batch)
    return npo_loss(nll, ref_nll, beta)


@UNLEARN.register("npo", config=NPOOptions, requires=("causal_lm",))
def npo(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: NPOOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Minimise the NPO loss of the forget answers (plus, optionally, the retain answer loss) on
    a copy, against the frozen original.

    Args:
        model: an LMScorer; not modified (a frozen copy is the reference).
        forget: forget prompts and answers.
        retain: retain prompts and answers (read only when ``retain_weight > 0``).
        options: beta, the weights and the optimisation settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    uses_retain = options.retain_weight > 0
    check("npo", model, "causal_lm", forget, retain if uses_retain else None)
    reference = frozen_copy(model, device)
    student = unlearned_copy(model, device)
    cycle = Cycle(len(retain), np.random.default_rng([seed, 1])) if uses_retain else None

    def loss_fn(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(student, forget, batch.index, options.max_length, device)
        loss = (
            options.forget_weight
            * npo_forget_loss(student.model, reference.model, encoded, options.beta).mean()
        )
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
        method="npo",
        stateful=[cycle] if cycle is not None else [],
    )
    return student.eval()
