"""Training losses a classifier can be trained with: cross-entropy, squared, PolyLoss.

As in ``locuslab/tta_conjugate`` (``cifar_source_train.py``): squared loss is
``||h - onehot(y)||^2`` summed over classes and averaged over the batch; PolyLoss (Leng et al.,
ICLR 2022, arXiv 2204.12511) is ``CE(h, y) + eps * (1 - softmax(h)_y)``. Test-time adaptation
with conjugate pseudo-labels derives its loss from the one the model was trained with.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["ce", "squared", "poly"]


def classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kind: LossName = "ce",
    *,
    eps: float = 6.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean loss of logits (B, K) against labels (B,).

    Args:
        kind: "ce", "squared" or "poly".
        eps: PolyLoss epsilon (the reference's CIFAR default is 6).
        label_smoothing: for cross-entropy only.
    """
    if kind == "ce":
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if kind == "squared":
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return ((logits - target) ** 2).sum(dim=1).mean()
    p_true = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return F.cross_entropy(logits, labels) + eps * (1 - p_true).mean()
