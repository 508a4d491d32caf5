"""NegGrad+: descent on the retain set and ascent on the forget set, in one weighted loss
(Kurmanji, Triantafillou, Hayes, Triantafillou, NeurIPS 2023, arXiv 2302.09880, the NegGrad+
baseline).

Each step takes a retain batch and the next forget batch (the forget loader cycled) and
minimises ``alpha * CE(retain) - (1 - alpha) * CE(forget)``. Follows ``meghdadk/SCRUB``:
``thirdparty/repdistiller/helper/loops.py`` ``train_negrad`` (the loss, one pass over the retain
loader with ``cycle(delete_loader)``) and MIA_experiments.ipynb (``negative_grad``: SGD without
momentum or weight decay; ``args.ng_alpha = 0.9999``, ``ng_epochs = 5``, ``ng_lr = 0.01``,
``retain_bs = 32``, ``forget_bs = 16``), with a constant learning rate as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.trainer import Batch, TrainConfig
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Cycle,
    Data,
    check,
    classifier_inputs,
    classifier_labels,
    run_training,
    unlearned_copy,
)


@dataclass
class NegGradPlusOptions(TrainConfig):
    """The blend of retain descent and forget ascent, and SCRUB's optimisation of it."""

    alpha: float = param(
        0.9999, "weight of the retain loss; the forget loss weighs 1 - alpha (SCRUB ng_alpha)"
    )
    epochs: int = param(5, "passes over the retain set (SCRUB ng_epochs)")
    lr: float = param(0.01, "learning rate (SCRUB ng_lr)")
    weight_decay: float = param(0.0, "weight decay (SCRUB negative_grad: 0)")
    batch_size: int = param(32, "retain examples per step (SCRUB retain_bs)")
    forget_batch_size: int = param(16, "forget examples per step (SCRUB forget_bs)")
    warmup_steps: int = param(0, "no warmup (SCRUB)")
    grad_clip: float | None = param(None, "no clipping (SCRUB)")
    optimizer: Literal["adamw", "adam", "sgd"] = param("sgd", "optimiser (SCRUB: SGD)")
    momentum: float = param(0.0, "SGD momentum (SCRUB negative_grad: torch's default 0)")
    schedule: Literal["cosine", "constant"] = param("constant", "lr after warmup (constant)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"neggrad_plus alpha must be in [0, 1], got {self.alpha}")
        if self.forget_batch_size < 1:
            raise ConfigError(f"forget_batch_size must be >= 1, got {self.forget_batch_size}")


def neggrad_plus_loss(
    retain_logits: torch.Tensor,
    retain_labels: torch.Tensor,
    forget_logits: torch.Tensor,
    forget_labels: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """``alpha * CE(retain) - (1 - alpha) * CE(forget)``, each a batch mean.

    Args:
        retain_logits: (B_r, K); retain_labels: (B_r,).
        forget_logits: (B_f, K); forget_labels: (B_f,).
        alpha: the retain weight.
    """
    retain_loss = F.cross_entropy(retain_logits, retain_labels)
    forget_loss = F.cross_entropy(forget_logits, forget_labels)
    return alpha * retain_loss - (1.0 - alpha) * forget_loss


@UNLEARN.register("neggrad_plus", config=NegGradPlusOptions, requires=("encoder",))
def neggrad_plus(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: NegGradPlusOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Train a copy on retain batches, each paired with the next forget batch, minimising
    :func:`neggrad_plus_loss`.

    Args:
        model: the classifier; not modified.
        forget: the forget set (inputs, labels), cycled.
        retain: the retain set, walked once per epoch.
        options: the blend and the optimisation settings.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    check("neggrad_plus", model, "classifier", forget, retain)
    student = unlearned_copy(model, device)
    cycle = Cycle(len(forget), np.random.default_rng([seed, 1]))

    def loss_fn(batch: Batch) -> torch.Tensor:
        index = cycle.next(options.forget_batch_size)
        forget_logits = student(classifier_inputs(student, forget, index, device))
        return neggrad_plus_loss(
            student(batch.inputs),
            batch.labels,
            forget_logits,
            classifier_labels(forget, index, device),
            options.alpha,
        )

    run_training(
        student,
        loss_fn,
        options,
        n=len(retain),
        seed=seed,
        device=device,
        method="neggrad_plus",
        inputs=retain.inputs,
        labels=retain.labels,
        stateful=[cycle],
    )
    return student.eval()
