"""SCRUB: a student, initialised as the original model (the teacher), moves away from the teacher
on the forget set and stays close to it on the retain set (Kurmanji, Triantafillou, Hayes,
Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023, arXiv 2302.09880).

Epoch ``e`` (1-based) runs a max-pass over the forget set if ``e <= msteps`` (minimise
``-KL(teacher || student)``), then a min-pass over the retain set (minimise ``gamma * CE +
alpha * KL(teacher || student)``); KL is RepDistiller's ``DistillKL``: softened by the
temperature T, summed over classes, averaged over the batch and scaled by T^2. One optimiser
(and its momentum) serves both passes; the learning rate decays by ``lr_decay_rate`` for every
milestone in ``lr_decay_epochs`` the epoch has passed (repdistiller ``adjust_learning_rate``).

Follows ``meghdadk/SCRUB``: ``helper/KD.py`` (``DistillKL``),
``thirdparty/repdistiller/helper/loops.py`` (``train_distill``: ``loss = gamma * loss_cls +
alpha * loss_div`` when minimising, ``-loss_div`` when maximising; student in train mode,
teacher in eval mode) and the SCRUB cell of large_scale_unlearning.ipynb (``optim = 'sgd'``,
``gamma = 0.99``, ``alpha = 0.001``, ``beta = 0``, ``smoothing = 0.0``, ``msteps = 2``,
``kd_T = 4``, ``sgda_batch_size = 128``, ``del_batch_size = 32``, ``sgda_epochs = 3``,
``sgda_learning_rate = 0.0005``, ``lr_decay_epochs = [3, 5, 9]``, ``lr_decay_rate = 0.1``,
``sgda_weight_decay = 5e-4``, ``sgda_momentum = 0.9``; the loop ``for epoch in range(1,
sgda_epochs + 1)``). The notebook builds its loaders with batches of 512 (forget) and 256
(retain) before setting those args; this module uses the args' 32 and 128.

The loop is written here rather than in the shared trainer: the reference alternates passes over
two sets with different batch sizes under one optimiser and a step decay, which the trainer's
one-set, one-batch-size loop cannot express.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.progress import progress
from shiftlab.registry import UNLEARN
from shiftlab.training import make_optimizer
from shiftlab.typed import param
from shiftlab.unlearn.base import (
    Data,
    Original,
    RelativeBudget,
    Unlearner,
    check_finite,
    epoch_batches,
    ready,
    steps_per_epoch,
)

Phase = Literal["max", "min"]


@dataclass
class SCRUBOptions(RelativeBudget):
    """SCRUB's losses and its optimisation (the SCRUB repository's large-scale settings)."""

    temperature: float = param(4.0, "distillation temperature T (kd_T)", within="(0, inf)")
    alpha: float = param(
        0.001, "weight of KL(teacher || student) on the retain set", within="[0, inf)"
    )
    gamma: float = param(0.99, "weight of the retain cross-entropy", within="[0, inf)")
    msteps: int = param(
        2, "epochs that start with a max-pass over the forget set", within="[0, inf)"
    )
    epochs: int = param(
        3, "epochs, each ending with a min-pass over the retain set", within="[1, inf)"
    )
    lr: float = param(5e-4, "learning rate (sgda_learning_rate)", within="(0, inf)")
    optimizer: Literal["sgd", "adam", "adamw"] = param("sgd", "optimiser")
    momentum: float = param(0.9, "SGD momentum (sgda_momentum)", within="[0, 1)")
    weight_decay: float = param(5e-4, "weight decay (sgda_weight_decay)", within="[0, inf)")
    lr_decay_epochs: list[int] = param(
        [3, 5, 9], "epochs after which the lr decays", within="[1, inf)"
    )
    lr_decay_rate: float = param(0.1, "lr factor per passed milestone", within="(0, 1]")
    batch_size: int = param(
        128, "retain examples per min-step (sgda_batch_size)", within="[1, inf)"
    )
    forget_batch_size: int = param(
        32, "forget examples per max-step (del_batch_size)", within="[1, inf)"
    )
    budget: float | None = param(0.054, "steps / original steps (large-scale: 439 / 8,138)")
    lr_scale: float | None = param(0.05, "lr / original lr, with its optimiser (5e-4 / 0.01)")

    def relative(self, original: Original | None, forget: int, retain: int) -> SCRUBOptions:
        """These options with the budget and lr resolved against the original training: the
        epochs (each a min-pass, the first ``msteps`` also a max-pass) that make ``budget`` of
        its steps, and its optimiser at ``lr_scale`` times its lr."""
        if original is None:
            return self
        changes: dict[str, object] = {}
        if self.lr_scale is not None:
            changes.update(
                lr=self.lr_scale * original.lr,
                optimizer=original.optimizer,
                momentum=original.momentum,
                weight_decay=original.weight_decay,
            )
        if self.budget is not None:
            per_epoch = steps_per_epoch(retain, self.batch_size)
            per_epoch += steps_per_epoch(forget, self.forget_batch_size) if self.msteps else 0
            epochs = max(1, round(self.budget * original.steps / per_epoch))
            changes.update(epochs=epochs, msteps=min(self.msteps, epochs))
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.msteps < 0:
            raise ConfigError(
                f"scrub needs epochs >= 1 and msteps >= 0, got {self.epochs}, {self.msteps}"
            )
        if self.batch_size < 1 or self.forget_batch_size < 1:
            raise ConfigError("scrub batch sizes must be >= 1")
        if self.temperature <= 0 or self.lr <= 0:
            raise ConfigError("scrub temperature and lr must be positive")


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """RepDistiller's ``DistillKL``: ``sum KL(softmax(t / T) || softmax(s / T)) * T^2 / B``.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K).
        temperature: T.

    Returns:
        Scalar, differentiable in the student's logits.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, p_teacher, reduction="sum")
    return kl * temperature**2 / student_logits.shape[0]


def scrub_loss(
    phase: Phase,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    options: SCRUBOptions,
) -> torch.Tensor:
    """A max-step's ``-KL`` or a min-step's ``gamma * CE + alpha * KL`` (``train_distill``).

    Args:
        phase: ``max`` (forget set) or ``min`` (retain set).
        student_logits: (B, K).
        teacher_logits: (B, K).
        labels: (B,) class indices (read by min-steps only).
        options: temperature, alpha and gamma.
    """
    kl = distill_kl(student_logits, teacher_logits, options.temperature)
    if phase == "max":
        return -kl
    return options.gamma * F.cross_entropy(student_logits, labels) + options.alpha * kl


def scrub_phases(epochs: int, msteps: int) -> list[tuple[int, Phase]]:
    """The passes in order: ``(epoch, "max")`` for epochs up to ``msteps``, then
    ``(epoch, "min")`` every epoch (1-based epochs)."""
    phases: list[tuple[int, Phase]] = []
    for epoch in range(1, epochs + 1):
        if epoch <= msteps:
            phases.append((epoch, "max"))
        phases.append((epoch, "min"))
    return phases


def step_decay_lr(lr: float, epoch: int, milestones: list[int], rate: float) -> float:
    """repdistiller ``adjust_learning_rate``: ``lr * rate ** (number of milestones < epoch)``."""
    passed = int(np.sum(epoch > np.asarray(milestones))) if milestones else 0
    return lr * rate**passed


@UNLEARN.register("scrub", options=SCRUBOptions, kinds=("encoder",))
class SCRUB(Unlearner):
    """Run SCRUB's alternating max- and min-passes on a student copy of the classifier."""

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options = self.options.relative(self.original, len(forget), len(retain))
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        teacher = self.frozen(model)
        student = self.copy(model)
        params = [p for p in student.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, options)  # SGD or Adam, as the reference
        phases = scrub_phases(options.epochs, options.msteps)
        sets = {"max": (forget, options.forget_batch_size), "min": (retain, options.batch_size)}
        total = sum(len(sets[phase][0]) for _, phase in phases)
        step = 0
        with progress("unlearn.scrub", total) as advance:
            for epoch, phase in phases:
                lr = step_decay_lr(
                    options.lr, epoch, options.lr_decay_epochs, options.lr_decay_rate
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                data, batch_size = sets[phase]
                student.train()
                for index in epoch_batches(rng.permutation(len(data)), batch_size):
                    batch = ready(student, data, index, self.device)
                    with torch.no_grad():
                        teacher_logits = teacher(batch.inputs)
                    logits = student(batch.inputs)
                    loss = scrub_loss(phase, logits, teacher_logits, batch.labels, options)
                    step += 1
                    check_finite(loss, "scrub", step, lr)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    advance(len(index), loss=float(loss.detach()))
        return student.eval()
