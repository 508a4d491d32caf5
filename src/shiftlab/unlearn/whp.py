"""Who's Harry Potter (WHP): fine-tune the model towards "generic" next-token predictions that
discount what a model reinforced on the forget set has learned to expect (Eldan, Russinovich
2023, arXiv 2310.02238).

1. A reinforced model is the original trained further on the forget answers.
2. At every answer position the generic logits are
   ``v_generic = v_base - alpha * relu(v_reinforced - v_base)`` (base = the frozen original):
   tokens the reinforcement made likelier are pushed down.
3. A copy of the original is fine-tuned on the forget prompts with the generic predictions as
   labels. The paper fine-tunes on "alternative labels for every token", i.e. the generic
   prediction's argmax (``targets: argmax``, the default); ``targets: soft`` uses the whole
   softened distribution ``softmax(v_generic)`` instead.

The paper's second component, replacing idiosyncratic "anchored" terms with generic ones through
a dictionary built by GPT-4, needs that dictionary and is not implemented. No reference code was
released (only the model ``microsoft/Llama2-7b-WhoIsHarryPotter``); MUSE (Shi et al. 2024,
``swj0419/muse_bench``) evaluates WHP over a grid of alpha starting at 1, which is the default
here. The reinforcement's defaults are MUSE baselines/unlearn.py's for its fine-tuned model
(``--epochs 5``, ``--lr 1e-5``); the unlearning fine-tune uses the shared LM defaults (TOFU's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.trainer import Batch
from shiftlab.lm.answer_loss import IGNORE_INDEX
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Data,
    LMOptions,
    check,
    finetune_answers,
    frozen_copy,
    lm_batch,
    lm_logits,
    run_training,
    unlearned_copy,
)


@dataclass
class WHPOptions(LMOptions):
    """Generic targets, the reinforcement and the unlearning fine-tune."""

    alpha: float = param(1.0, "how far the reinforced model's gains are discounted")
    targets: Literal["argmax", "soft"] = param(
        "argmax", "labels: the generic prediction's argmax (paper) or its softmax"
    )
    reinforce_epochs: int = param(5, "epochs of the reinforced model on the forget set (MUSE)")
    reinforce_lr: float = param(1e-5, "learning rate of the reinforced model (MUSE)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha < 0 or self.reinforce_epochs < 1 or self.reinforce_lr <= 0:
            raise ConfigError(
                "whp needs alpha >= 0, reinforce_epochs >= 1 and a positive reinforce_lr"
            )


def generic_logits(base: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """``v_base - alpha * relu(v_reinforced - v_base)``, elementwise (any shape, e.g. (N, V))."""
    return base - alpha * F.relu(reinforced - base)


def whp_loss(
    logits: torch.Tensor, generic: torch.Tensor, targets: Literal["argmax", "soft"]
) -> torch.Tensor:
    """Cross-entropy of the fine-tuned model's logits (N, V) against the generic logits (N, V):
    their argmax as hard labels, or their softmax as soft labels; mean over the N positions."""
    if targets == "argmax":
        return F.cross_entropy(logits, generic.argmax(dim=-1))
    return -(F.softmax(generic, dim=-1) * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


@UNLEARN.register("whp", config=WHPOptions, requires=("causal_lm",))
def whp(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: WHPOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Reinforce a copy on the forget answers, then fine-tune another copy on the generic
    predictions at the forget answers' positions.

    Args:
        model: an LMScorer; not modified (a frozen copy is the baseline).
        forget: forget prompts and answers.
        retain: unused (WHP fine-tunes on the forget text only).
        options: alpha, targets, the reinforcement and the fine-tune settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    check("whp", model, "causal_lm", forget)
    reinforce = dataclasses.replace(
        options, epochs=options.reinforce_epochs, lr=options.reinforce_lr
    )
    reinforced = finetune_answers(
        model, forget, reinforce, seed=seed, device=device, method="whp.reinforce"
    )
    for p in reinforced.parameters():
        p.requires_grad_(False)
    base = frozen_copy(model, device)
    student = unlearned_copy(model, device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(student, forget, batch.index, options.max_length, device)
        positions = encoded["labels"][:, 1:] != IGNORE_INDEX  # logits at t predict token t + 1
        with torch.no_grad():
            v_base = lm_logits(base.model, encoded)[:, :-1][positions].float()
            v_reinforced = lm_logits(reinforced.model, encoded)[:, :-1][positions].float()
            generic = generic_logits(v_base, v_reinforced, options.alpha)
        logits = lm_logits(student.model, encoded)[:, :-1][positions].float()
        return whp_loss(logits, generic, options.targets)

    run_training(student, loss_fn, options, n=len(forget), seed=seed, device=device, method="whp")
    return student.eval()
