"""Gradient ascent on the forget set: the "GA" / "NegGrad" baseline of unlearning (for
classifiers as in Jia et al., NeurIPS 2023, arXiv 2304.04934; for language models Jang et al.,
ACL 2023, arXiv 2210.01504, and TOFU's ``grad_ascent``, Maini et al. 2024, arXiv 2401.06121).

The training loss is negated on the forget set: each step raises its cross-entropy. One
registered name works on both model kinds, with each kind's reference defaults:

- a classifier follows ``OPTML-Group/Unlearn-Sparse`` (``unlearn/GA.py``: ``loss =
  -criterion(output, target)`` over the forget loader; README: ``--unlearn GA --unlearn_epochs 5
  --unlearn_lr 0.0001``; arg_parser.py: batch 256, momentum 0.9, weight decay 5e-4; impl.py:
  SGD with ``MultiStepLR`` at epochs 91 and 136, which 5 epochs never reach: a constant rate);
- a causal language model follows ``locuslab/tofu`` (dataloader.py ``grad_ascent``: ``loss =
  -outputs.loss``, the token-mean cross-entropy of the forget answers; config/forget.yaml: lr
  1e-5, 5 epochs, weight decay 0.01, batch 16 x 4, warmup one epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.finetune.trainer import Batch, TrainConfig
from shiftlab.lm.answer_loss import answer_loss
from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Data,
    LMOptions,
    check,
    lm_batch,
    model_kind,
    run_training,
    unlearned_copy,
)


@dataclass
class ClassifierAscentOptions(TrainConfig):
    """A classifier's ascent (Unlearn-Sparse's GA)."""

    epochs: int = param(5, "passes over the forget set (Unlearn-Sparse README)")
    lr: float = param(1e-4, "learning rate (Unlearn-Sparse README)")
    weight_decay: float = param(5e-4, "weight decay (Unlearn-Sparse arg_parser)")
    batch_size: int = param(256, "forget examples per step (Unlearn-Sparse arg_parser)")
    warmup_steps: int = param(0, "no warmup (Unlearn-Sparse --warmup 0)")
    grad_clip: float | None = param(None, "no clipping (Unlearn-Sparse)")
    optimizer: Literal["adamw", "adam", "sgd"] = param("sgd", "optimiser (Unlearn-Sparse: SGD)")
    momentum: float = param(0.9, "SGD momentum (Unlearn-Sparse arg_parser)")
    schedule: Literal["cosine", "constant"] = param("constant", "lr after warmup (constant)")


@dataclass
class LMAscentOptions(LMOptions):
    """A language model's ascent (TOFU's grad_ascent): the shared LM defaults."""


@dataclass
class GradientAscentOptions:
    """Options of each model kind; a run uses the ones of its model."""

    classifier: ClassifierAscentOptions = field(
        default_factory=ClassifierAscentOptions,
        metadata={"help": "settings for a classifier (Unlearn-Sparse GA)"},
    )
    causal_lm: LMAscentOptions = field(
        default_factory=LMAscentOptions,
        metadata={"help": "settings for a causal language model (TOFU grad_ascent)"},
    )


@UNLEARN.register(
    "gradient_ascent", config=GradientAscentOptions, requires=("encoder", "causal_lm")
)
def gradient_ascent(
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: GradientAscentOptions,
    *,
    seed: int,
    device: torch.device,
) -> nn.Module:
    """Maximise the forget set's loss on a copy: cross-entropy of a classifier's labels, or the
    token-mean cross-entropy of a language model's answers.

    Args:
        model: a classifier or an LMScorer; not modified.
        forget: the forget set (inputs and labels, or prompts and answers).
        retain: unused.
        options: the settings of each model kind.
        seed: seeds shuffling and dropout.
        device: where training runs.

    Returns:
        The unlearned copy, in eval mode.
    """
    student = unlearned_copy(model, device)
    if model_kind(model) == "classifier":
        check("gradient_ascent", model, "classifier", forget)

        def classifier_loss(batch: Batch) -> torch.Tensor:
            return -F.cross_entropy(student(batch.inputs), batch.labels)

        run_training(
            student,
            classifier_loss,
            options.classifier,
            n=len(forget),
            seed=seed,
            device=device,
            method="gradient_ascent",
            inputs=forget.inputs,
            labels=forget.labels,
        )
        return student.eval()

    check("gradient_ascent", model, "causal_lm", forget)
    cfg = options.causal_lm

    def lm_loss(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(student, forget, batch.index, cfg.max_length, device)
        return -answer_loss(student.model, encoded)

    run_training(
        student, lm_loss, cfg, n=len(forget), seed=seed, device=device, method="gradient_ascent"
    )
    return student.eval()
