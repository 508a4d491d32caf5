"""Gradient difference: ascent on the forget set's answers plus descent on the retain set's
(TOFU's ``grad_diff``, Maini, Feng, Schwarzschild, Lipton, Kolter 2024, arXiv 2401.06121; after
Liu, Liu, Stone, CoLLAs 2022).

Each step walks a forget batch and pairs it with as many retain examples (a shuffled stream of
the retain set, as TOFU's ``TextForgetDatasetQA`` pairs every forget question with a random
retain question), minimising ``-forget_weight * CE(forget answers) + retain_weight *
CE(retain answers)``, each the token-mean answer cross-entropy. Follows ``locuslab/tofu``
dataloader.py (``loss = forget_loss + retain_loss`` with ``forget_loss = -outputs.loss``) and
config/forget.yaml for the optimisation (the shared LM defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shiftlab.finetune.trainer import Batch
from shiftlab.lm.answer_loss import answer_loss
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Cycle,
    Data,
    LMOptions,
    check,
    lm_batch,
    retain_answer_loss,
    run_training,
    unlearned_copy,
)


@dataclass
class GradDiffOptions(LMOptions):
    """The two terms' weights (TOFU: 1 and 1) and TOFU's optimisation."""

    forget_weight: float = param(1.0, "weight of the (negated) forget answer loss")
    retain_weight: float = param(1.0, "weight of the retain answer loss")


@UNLEARN.register("grad_diff", config=GradDiffOptions, requires=("causal_lm",))
def grad_diff(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: GradDiffOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Ascend the forget answers' loss and descend the retain answers' on a copy.

    Args:
        model: an LMScorer (causal LM + tokenizer); not modified.
        forget: forget prompts and answers, walked once per epoch.
        retain: retain prompts and answers, drawn as a shuffled stream.
        options: the weights and the optimisation settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    check("grad_diff", model, "causal_lm", forget, retain)
    student = unlearned_copy(model, device)
    cycle = Cycle(len(retain), np.random.default_rng([seed, 1]))

    def loss_fn(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(student, forget, batch.index, options.max_length, device)
        forget_loss = answer_loss(student.model, encoded)
        retain_loss = retain_answer_loss(
            student, retain, cycle, len(batch.index), options.max_length, device
        )
        return -options.forget_weight * forget_loss + options.retain_weight * retain_loss

    run_training(
        student,
        loss_fn,
        options,
        n=len(forget),
        seed=seed,
        device=device,
        method="grad_diff",
        stateful=[cycle],
    )
    return student.eval()
