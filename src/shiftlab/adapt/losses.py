"""Test-time adaptation losses on logits: entropy and conjugate pseudo-label losses.

Conjugate pseudo-labels (Goyal, Sun, Raghunathan, Kolter, NeurIPS 2022, arXiv 2207.09640): a
source loss of the form ``l(h, y) = f(h) - y.h`` has the conjugate adaptation loss
``f(h) - grad f(h).h`` with pseudo-label ``y* = grad f(h)``. Implemented as in
``locuslab/tta_conjugate`` (``cifar_tta_test.py``), logits first divided by the temperature:

- cross-entropy (``f = logsumexp``): ``y* = softmax(h)``, the loss is the softmax entropy;
- PolyLoss with epsilon: ``y* = (I + eps diag(p) - eps p p^T)^-1 p`` (the soft label at which
  ``h`` is a stationary point of the soft-label PolyLoss), and the loss is that PolyLoss at
  ``y*``: ``logsumexp(h) - sum(y* h - eps y* (1 - p))``; eps = 0 gives cross-entropy's;
- squared loss ``1/2 ||h - y||^2`` (``f = 1/2 ||h||^2``): ``y* = h`` and the loss is
  ``-1/2 ||h||^2``. The reference scripts leave this case out; it follows the paper's recipe.
"""

from __future__ import annotations

import torch

from shiftlab.training.losses import LossName


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Softmax entropy per example, shape (B,) (TENT's ``softmax_entropy``)."""
    return -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(dim=1)


def poly_pseudo_label(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Conjugate pseudo-labels (B, K) of PolyLoss: solve ``(I + eps diag(p) - eps p p^T) y = p``."""
    k = p.shape[1]
    matrix = torch.eye(k, dtype=p.dtype, device=p.device) + eps * torch.diag_embed(p)
    matrix = matrix - eps * p[:, :, None] * p[:, None, :]
    return torch.linalg.solve(matrix, p[:, :, None]).squeeze(2)


def conjugate_loss(
    logits: torch.Tensor,
    source_loss: LossName = "ce",
    *,
    eps: float = 6.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Conjugate adaptation loss per example, shape (B,), for the model's training loss.

    Gradients flow through the pseudo-labels too, as in the reference (nothing is detached).
    """
    h = logits / temperature
    if source_loss == "squared":
        return -0.5 * (h**2).sum(dim=1)
    if source_loss == "ce":
        return entropy(h)
    p = h.softmax(dim=1)
    y = poly_pseudo_label(p, eps)
    return torch.logsumexp(h, dim=1) - (y * h - eps * y * (1 - p)).sum(dim=1)


def softmax_pl_loss(
    logits: torch.Tensor, *, eps: float = 0.0, temperature: float = 1.0
) -> torch.Tensor:
    """The conjugate paper's soft pseudo-label baseline, per example (B,): PolyLoss with
    epsilon at the soft label ``y = softmax(h)``,
    ``logsumexp(h) - sum(p h - eps p (1 - p))`` (``softmax_pl`` in ``cifar_tta_test.py``).
    For eps = 0 it is the softmax entropy."""
    h = logits / temperature
    p = h.softmax(dim=1)
    return torch.logsumexp(h, dim=1) - (p * h - eps * p * (1 - p)).sum(dim=1)


def rpl_loss(logits: torch.Tensor, *, q: float = 0.8, temperature: float = 1.0) -> torch.Tensor:
    """Robust pseudo-labels (Rusak et al. 2022), per example (B,): the generalised
    cross-entropy at the argmax label, ``(1 - p_argmax ** q) / q`` (``rpl`` in
    ``cifar_tta_test.py``, q = 0.8); gradients flow through the probability, not the label."""
    p = (logits / temperature).softmax(dim=1)
    top = p.gather(1, p.argmax(dim=1, keepdim=True)).squeeze(1)
    return (1 - top**q) / q
