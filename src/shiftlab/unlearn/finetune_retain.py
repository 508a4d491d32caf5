"""Fine-tuning on the retain set: the "catastrophic forgetting" baseline of unlearning (Golatkar,
Achille, Soatto, CVPR 2020, arXiv 1911.04933, "Fine-tune"; the same baseline in Kurmanji et al.,
NeurIPS 2023, arXiv 2302.09880).

The model keeps training with cross-entropy on the retain set only, hoping to forget the forget
set as a side effect. Defaults follow ``meghdadk/SCRUB`` large_scale_unlearning.ipynb
(``finetune(model_ft, retain_loader, epochs=10, lr=0.01)``: plain SGD without momentum or weight
decay, the retain loader's batch of 128), with a constant learning rate as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.finetune.trainer import Batch, TrainConfig
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import Data, check, run_training, unlearned_copy


@dataclass
class FinetuneRetainOptions(TrainConfig):
    """Plain SGD on the retain set (SCRUB repository's ``finetune``)."""

    epochs: int = param(10, "passes over the retain set (SCRUB large-scale notebook)")
    lr: float = param(0.01, "learning rate (SCRUB large-scale notebook)")
    weight_decay: float = param(0.0, "weight decay (SCRUB's finetune: 0)")
    batch_size: int = param(128, "retain examples per step (SCRUB: args.batch_size)")
    warmup_steps: int = param(0, "no warmup (SCRUB)")
    grad_clip: float | None = param(None, "no clipping (SCRUB)")
    optimizer: Literal["adamw", "adam", "sgd"] = param(
        "sgd", "optimiser: adamw, adam or sgd (SCRUB: SGD)"
    )
    momentum: float = param(0.0, "SGD momentum (SCRUB's finetune: torch's default 0)")
    schedule: Literal["cosine", "constant"] = param(
        "constant", "lr after warmup: constant (SCRUB) or cosine"
    )


@UNLEARN.register("finetune_retain", config=FinetuneRetainOptions, requires=("encoder",))
def finetune_retain(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: FinetuneRetainOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Fine-tune a copy of the classifier on the retain set with cross-entropy.

    Args:
        model: the classifier (inputs -> (B, K) logits); not modified.
        forget: unused (the baseline never reads it).
        retain: the retain set (inputs, labels).
        options: optimisation settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The fine-tuned copy, in eval mode.
    """
    check("finetune_retain", model, "classifier", retain)
    student = unlearned_copy(model, device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        return F.cross_entropy(student(batch.inputs), batch.labels)

    run_training(
        student,
        loss_fn,
        options,
        n=len(retain),
        seed=seed,
        device=device,
        method="finetune_retain",
        inputs=retain.inputs,
        labels=retain.labels,
    )
    return student.eval()
