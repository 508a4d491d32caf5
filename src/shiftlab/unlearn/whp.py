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
from shiftlab.lm.answer_loss import IGNORE_INDEX, causal_logits
from shiftlab.unlearn.base import UNLEARN, Batch, Data, LMOptions, Unlearner, param


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


@UNLEARN.register("whp", options=WHPOptions, kinds=("causal_lm",))
class WHP(Unlearner):
    """Reinforce a copy on the forget answers, then fine-tune another copy on the generic
    predictions at the forget answers' positions."""

    def uses(self) -> tuple[bool, bool]:
        return True, False  # WHP fine-tunes on the forget text only

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options = self.options
        reinforce = dataclasses.replace(
            options, epochs=options.reinforce_epochs, lr=options.reinforce_lr
        )
        reinforced = self.finetune_answers(model, forget, reinforce)
        for p in reinforced.parameters():
            p.requires_grad_(False)
        base = self.frozen(model)
        student = self.copy(model)

        def loss_fn(batch: Batch) -> torch.Tensor:
            encoded = self.answers(student, forget, batch.index, options.max_length)
            positions = encoded["labels"][:, 1:] != IGNORE_INDEX  # logits at t predict t + 1
            with torch.no_grad():
                v_base = causal_logits(base.model, encoded)[:, :-1][positions].float()
                v_reinforced = causal_logits(reinforced.model, encoded)[:, :-1][positions].float()
                generic = generic_logits(v_base, v_reinforced, options.alpha)
            logits = causal_logits(student.model, encoded)[:, :-1][positions].float()
            return whp_loss(logits, generic, options.targets)

        self.train(student, loss_fn, options, len(forget))
        return student.eval()
