"""LoRA: low-rank adaptation of a causal language model (Hu et al., ICLR 2022,
arXiv 2106.09685), through PEFT.

The base weights are frozen; a rank-r update ``B A`` (scaled by alpha / r) is trained on the
attention projections PEFT targets for the architecture (``q_proj`` and ``v_proj`` for Llama), on
the task's answers with the loss on answer tokens only (:mod:`shiftlab.finetune.sft`). Defaults
follow the paper and PEFT's ``LoraConfig`` examples: r 8, alpha 16, dropout 0.05, lr 2e-4, no
weight decay. WiSE-FT of a LoRA model scales its merged update (:mod:`shiftlab.lm.lora`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.sft import SFTOptions, lm_finetune
from shiftlab.models.classifier import STANDARD, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.typed import param


@dataclass
class LoRAOptions(SFTOptions):
    """The adapter's shape and its (higher) learning rate."""

    lr: float = param(2e-4, "peak learning rate of the adapter")
    rank: int = param(8, "r, the rank of each update", within="[1, inf)")
    alpha: float = param(16.0, "LoRA alpha; updates are scaled by alpha / r", within="(0, inf)")
    dropout: float = param(0.05, "dropout on the adapter's input", within="[0, 1)")
    target_modules: list[str] | None = param(
        None, "layers adapted; default PEFT's for the architecture (q_proj, v_proj for Llama)"
    )


@FINETUNE.register(
    "lora", options=LoRAOptions, kinds=("causal_lm",), fast={"batch_size": 16, "warmup_steps": 1}
)
def lora(ctx: RecipeContext, cfg: LoRAOptions) -> Iterator[Predictor]:
    """Train a LoRA adapter of the language model on the task's answers."""
    from shiftlab.lm.lora import add_lora

    scorer = ctx.trainable_copy()
    scorer.model = add_lora(
        scorer.model,
        rank=cfg.rank,
        alpha=cfg.alpha,
        dropout=cfg.dropout,
        target_modules=cfg.target_modules,
    )
    result = lm_finetune(ctx, scorer, cfg)
    params = {"rank": cfg.rank, "alpha": cfg.alpha}
    info = {**result.selection, **STANDARD}
    yield Predictor(ctx.name, "lora", scorer.eval(), params=params, save=False, info=info)
