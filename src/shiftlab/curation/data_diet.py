"""Seeded linear heads on cached features: the runs that EL2N and GraNd average over.

Paul, Ganguli and Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early in
Training" (NeurIPS 2021, arXiv 2107.07075); reference ``mansheej/data_diet``. A score is the mean
over independent runs (``scripts/get_mean_score.py`` averages ``N_RUNS`` runs; README.md:40 "we
recommend at least 10 runs"): :data:`DEFAULT_SEEDS` is 10 seeds. Here a run is a
``torch.nn.Linear`` head on cached features, initialised by PyTorch's default from its seed (the
reference's Flax ``Dense`` draws LeCun-normal weights and zero biases).

:class:`HeadTrainOptions` is ``scripts/run_full_data.py``'s optimiser (lines 33-43): SGD, lr 0.1,
momentum 0.9, weight decay 5e-4, batch 128, no warmup, no clipping (the shared trainer's SGD is
not Nesterov; the reference's is). The reference keeps lr 0.1 until its first decay at epoch 60
of 200 (``decay_steps``, line 39), so ``epochs`` <= 60 at a constant rate is exactly the prefix
of its schedule at which early scores are read. EL2N is read at epoch 20 (the paper's CIFAR-10
setting, as reproduced by Kirsch, arXiv 2303.14753): the default ``epochs`` is 20, 10% of the
reference run. Scores are computed in eval mode, as the reference's ``get_apply_fn_test``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.training import Batch, ReferenceSGD, train
from shiftlab.typed import param

DEFAULT_SEEDS: tuple[int, ...] = tuple(range(10))


@dataclass
class HeadTrainOptions(ReferenceSGD):
    """How a data-diet head is trained before it is scored (the reference's early schedule:
    SGD with momentum, lr 0.1 constant until epoch 60 there)."""

    epochs: int = param(20, "epochs before scoring (EL2N at epoch 20 of 200 in the reference)")
    lr: float = param(0.1, "learning rate (data_diet run_full_data.py)")
    weight_decay: float = param(5e-4, "weight decay (data_diet run_full_data.py)")
    batch_size: int = param(128, "examples per step (data_diet run_full_data.py)")


def initial_linear_head(dim: int, num_classes: int, seed: int) -> nn.Linear:
    """A ``nn.Linear(dim, num_classes)`` at PyTorch's default initialisation drawn from ``seed``
    (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(dim, num_classes)


def linear_head_factory(dim: int, num_classes: int) -> Callable[[int], nn.Linear]:
    """``make_head(seed)`` for :func:`shiftlab.curation.grand.grand_scores`."""
    return lambda seed: initial_linear_head(dim, num_classes, seed)


def train_linear_head(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    cfg: HeadTrainOptions | None = None,
    device: torch.device | str = "cpu",
) -> nn.Linear:
    """Train a seeded linear head on cached features with the shared trainer.

    Args:
        features: (N, D) cached features.
        labels: (N,) class indices.
        num_classes: K.
        seed: seeds the initialisation and the shuffling.
        cfg: optimisation settings (default :class:`HeadTrainOptions`).
        device: where the head trains.

    Returns:
        The trained head (D -> K), in eval mode.
    """
    cfg = cfg if cfg is not None else HeadTrainOptions()
    device = torch.device(device)
    inputs = np.ascontiguousarray(features, dtype=np.float32)
    head = initial_linear_head(inputs.shape[1], num_classes, seed).to(device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        return F.cross_entropy(head(batch.inputs), batch.labels)

    train(
        head,
        loss_fn,
        inputs,
        np.asarray(labels),
        cfg,
        seed=seed,
        device=device,
        description=f"data-diet head (seed {seed})",
    )
    return head


def linear_head_trainer(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    cfg: HeadTrainOptions | None = None,
    device: torch.device | str = "cpu",
) -> Callable[[int], nn.Linear]:
    """``train_head(seed)`` for :func:`shiftlab.curation.el2n.el2n_scores`."""
    return lambda seed: train_linear_head(
        features, labels, num_classes, seed=seed, cfg=cfg, device=device
    )


@torch.no_grad()
def head_logits(model: nn.Module, inputs: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    """Logits (N, K) of ``model`` in eval mode on inputs (N, ...), in batches (mode restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    try:
        chunks = [
            model(torch.as_tensor(inputs[i : i + batch_size]).to(device, dtype)).double().cpu()
            for i in range(0, len(inputs), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy()
