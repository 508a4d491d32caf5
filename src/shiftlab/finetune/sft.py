"""Supervised fine-tuning of a causal language model on a task's answers (Ouyang et al. 2022,
arXiv 2203.02155, the SFT step; the loss on answer tokens only, as TRL's completion-only
training).

Every weight is trained with the shared loop to predict each training example's answer (its
gold label word, or its reference answer) after its prompt; prompt and padding tokens carry no
loss (:mod:`shiftlab.lm.answer_loss`). Defaults follow TRL's ``SFTOptions``: AdamW, lr 2e-5, no
weight decay, batch 8, no warmup (shiftlab's cosine schedule in place of its linear one), with
one epoch and gradient clipping at 1, sized for a CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import STANDARD, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions, TrainResult
from shiftlab.typed import param


@dataclass
class SFTOptions(TrainOptions):
    """Full fine-tuning of the language model (TRL SFTOptions's optimisation)."""

    epochs: int = param(1, "passes over the task's training split")
    lr: float = param(2e-5, "peak learning rate (TRL SFTOptions)")
    weight_decay: float = param(0.0, "no weight decay (TRL SFTOptions)")
    batch_size: int = param(8, "examples per step (TRL SFTOptions)")
    warmup_steps: int = param(0, "no warmup (TRL SFTOptions)")
    max_length: int = param(
        256, "tokens per training example (prompt cut from the left)", within="[2, inf)"
    )


def lm_finetune(ctx: RecipeContext, scorer: torch.nn.Module, cfg: SFTOptions) -> TrainResult:
    """Train ``scorer``'s language model on the training split's answers (in place)."""
    from shiftlab.lm.answer_loss import answer_loss, answer_only_batch

    def loss_fn(batch: Batch) -> torch.Tensor:
        items = batch.inputs
        encoded = answer_only_batch(
            scorer.tokenizer,
            [i.prompt for i in items],
            [i.answer for i in items],
            max_length=cfg.max_length,
        )
        device = next(scorer.model.parameters()).device
        return answer_loss(scorer.model, {k: v.to(device) for k, v in encoded.items()})

    # The loss is a mean over a batch's answer tokens, not its examples: never split.
    return ctx.train(scorer, loss_fn, cfg, splittable=False)


@FINETUNE.register(
    "sft", options=SFTOptions, kinds=("causal_lm",), fast={"batch_size": 16, "warmup_steps": 1}
)
def sft(ctx: RecipeContext, cfg: SFTOptions) -> Iterator[Predictor]:
    """Fine-tune every weight of the language model on the task's answers (answer tokens only)."""
    scorer = ctx.trainable_copy()
    result = lm_finetune(ctx, scorer, cfg)
    info = {**result.selection, **STANDARD}
    yield Predictor(ctx.name, "sft", scorer.eval(), save=False, info=info)
