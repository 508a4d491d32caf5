"""Optimisation options of the shared trainer, and the presets method families start from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shiftlab.errors import ConfigError
from shiftlab.typed import param, validate


@dataclass
class TrainOptions:
    """Optimisation settings shared by every recipe that trains (WiSE-FT's defaults)."""

    epochs: int = param(10, "passes over the ID training split", within="[1, inf)")
    lr: float = param(3e-5, "peak learning rate (WiSE-FT README recipe)", within="(0, inf)")
    weight_decay: float = param(0.1, "weight decay (decoupled for AdamW)", within="[0, inf)")
    batch_size: int = param(512, "examples per step", within="[1, inf)")
    warmup_steps: int = param(500, "linear warmup steps before the cosine decay", within="[0, inf)")
    grad_clip: float | None = param(
        1.0, "max global gradient norm; null disables clipping", within="(0, inf)"
    )
    optimizer: Literal["adamw", "adam", "sgd"] = param("adamw", "optimiser")
    momentum: float = param(0.9, "momentum (SGD only)", within="[0, 1)")
    schedule: Literal["cosine", "constant", "linear_tail"] = param(
        "cosine",
        "lr after warmup: cosine decay, constant, or linear_tail: constant, then linear to 0 over "
        "the last 60% of the steps (co-teaching's decay from epoch 80 of 200)",
    )
    select: Literal["last", "id_val_accuracy", "id_val_worst_group_accuracy"] = param(
        "last", "which epoch's weights to keep: the last, or the best by this ID val score"
    )
    accumulate_steps: int = param(
        1,
        "micro-batches per step: the same update from batch_size / k examples at a time",
        within="[1, inf)",
    )
    gradient_checkpointing: bool = param(
        False, "recompute a Hugging Face encoder's activations in the backward pass (less memory)"
    )
    checkpoint_every: int | Literal["auto"] | None = param(
        "auto",
        "training checkpoints a killed run resumes from: every N epochs; auto: after any epoch "
        "once a minute of training is unsaved ($SHIFTLAB_CHECKPOINT_SECONDS); null: none",
        within="[1, inf)",
    )
    group_by_length: bool = param(
        False,
        "batches of texts of similar length, in random order (less padding: faster; "
        "Hugging Face Trainer's group_by_length)",
    )

    def __post_init__(self) -> None:
        validate(self, type(self).__name__)
        if not 1 <= self.accumulate_steps <= self.batch_size:
            raise ConfigError(
                f"accumulate_steps must be between 1 and batch_size ({self.batch_size}), "
                f"got {self.accumulate_steps}"
            )


@dataclass
class ReferenceSGD(TrainOptions):
    """Plain SGD at a constant rate without warmup or clipping: the optimisation of reference
    code that trains with ``torch.optim.SGD`` as it is (Group DRO, the data-diet heads,
    Unlearn-Sparse, SCRUB's baselines). Subclasses set the reference's rate, momentum, weight
    decay, batch and epochs."""

    warmup_steps: int = param(0, "no warmup (the reference)")
    grad_clip: float | None = param(None, "no clipping (the reference)")
    optimizer: Literal["adamw", "adam", "sgd"] = param("sgd", "optimiser (the reference: SGD)")
    schedule: Literal["cosine", "constant", "linear_tail"] = param(
        "constant", "lr after warmup (constant)"
    )


#: Training shrunk to one short epoch: the ``fast`` options trained methods register with, so
#: that their conformance checks (:mod:`shiftlab.testing`) run in seconds.
FAST = {"epochs": 1, "batch_size": 16, "warmup_steps": 1}
