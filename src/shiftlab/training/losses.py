"""Training losses a classifier can be trained with: cross-entropy, squared, PolyLoss, and the
noise-robust GCE and SCE.

As in ``locuslab/tta_conjugate`` (``cifar_source_train.py``): squared loss is
``||h - onehot(y)||^2`` summed over classes and averaged over the batch; PolyLoss (Leng et al.,
ICLR 2022, arXiv 2204.12511) is ``CE(h, y) + eps * (1 - softmax(h)_y)``. Test-time adaptation
with conjugate pseudo-labels derives its loss from the one the model was trained with.

For noisy labels: generalized cross-entropy (GCE, the L_q loss; Zhang and Sabuncu, NeurIPS 2018,
arXiv 1805.07836) is ``(1 - p_y^q) / q``, cross-entropy as q -> 0 and MAE (up to scale) at
q = 1 (``AlanChou/Truncated-Loss`` ``TruncatedLoss.py``, keras'
``CategoricalGeneralizedCrossEntropy``; q = 0.7). Its truncated variant (the reference's
``TruncatedLoss``) subtracts ``L_q(k)`` and trains only on the examples whose ``p_y > k`` at the
last pruning (:class:`Truncation`). Symmetric cross-entropy (SCE; Wang et al., ICCV 2019, arXiv
1908.06112) is ``alpha CE + beta RCE``, the reverse cross-entropy
``-sum_k p_k log clip(onehot(y)_k, 1e-4, 1) = -log(1e-4) (1 - p_y)``
(``YisenWang/symmetric_cross_entropy_for_noisy_labels`` ``loss.py``; alpha 0.1, beta 1.0 is
its CIFAR-10 run in ``train_models.py``, MNIST's 0.01 / 1.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.errors import ConfigError
from shiftlab.typed import param

LossName = Literal["ce", "squared", "poly", "gce", "sce"]

#: The one-hot labels' clip in SCE's reverse cross-entropy (the reference's 1e-4).
RCE_CLIP = 1e-4


def per_example_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kind: LossName = "ce",
    *,
    eps: float = 6.0,
    q: float = 0.7,
    alpha: float = 0.1,
    beta: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Loss (B,) of each example's logits (B, K) against its label (B,).

    Args:
        kind: "ce", "squared", "poly", "gce" or "sce".
        eps: PolyLoss epsilon (the reference's CIFAR default is 6).
        q: GCE's exponent in (0, 1].
        alpha, beta: SCE's weights of cross-entropy and reverse cross-entropy.
        label_smoothing: for cross-entropy only.
    """
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
    if kind == "squared":
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return ((logits - target) ** 2).sum(dim=1)
    log_p = torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    p_true = log_p.exp()
    if kind == "poly":
        return -log_p + eps * (1 - p_true)
    if kind == "gce":
        return (1 - p_true**q) / q
    # SCE: CE on probabilities clipped below at 1e-7 (the reference's), RCE in closed form.
    ce = -torch.clamp(p_true, min=1e-7).log()
    return alpha * ce + beta * -math.log(RCE_CLIP) * (1 - p_true)


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, kind: LossName = "ce", **options: float
) -> torch.Tensor:
    """Mean loss of logits (B, K) against labels (B,) (:func:`per_example_loss`)."""
    if kind == "ce":  # one fused call, as before the other losses existed
        return F.cross_entropy(logits, labels, label_smoothing=options.get("label_smoothing", 0.0))
    if kind == "poly":  # summed as it always was (the same records as before, to the bit)
        p_true = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
        return F.cross_entropy(logits, labels) + options.get("eps", 6.0) * (1 - p_true).mean()
    return per_example_loss(logits, labels, kind, **options).mean()


@dataclass
class LossOptions:
    """The training loss of a recipe that minimises a per-example loss (mixed into its
    options). Every option is part of the entry's digest; a loss other than ``ce`` is part of
    its default name (``full_ft_gce``)."""

    loss: LossName = param(
        "ce", "training loss: ce, gce or sce (noisy labels), squared or poly", added_later=True
    )
    eps: float = param(
        6.0, "PolyLoss epsilon (tta_conjugate's CIFAR default)", within="[-1, inf)",
        added_later=True,
    )  # fmt: skip
    q: float = param(
        0.7, "GCE's exponent: cross-entropy as q -> 0, MAE at 1 (Truncated-Loss)",
        within="(0, 1]", added_later=True,
    )  # fmt: skip
    alpha: float = param(
        0.1, "SCE's cross-entropy weight (the reference's CIFAR-10 run)", within="[0, inf)",
        added_later=True,
    )  # fmt: skip
    beta: float = param(
        1.0, "SCE's reverse cross-entropy weight (the reference's CIFAR-10 run)",
        within="[0, inf)", added_later=True,
    )  # fmt: skip

    def loss_terms(self) -> dict[str, float]:
        """The options of this loss (for :func:`per_example_loss` and the records)."""
        return {
            "poly": {"eps": self.eps},
            "gce": {"q": self.q},
            "sce": {"alpha": self.alpha, "beta": self.beta},
        }.get(self.loss, {})

    def loss_params(self) -> dict[str, object]:
        """The training loss, for the records: ``{"loss": "gce", "q": 0.7}``."""
        return {"loss": self.loss, **self.loss_terms()}

    def per_example(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """This loss (B,) of each example."""
        return per_example_loss(logits, labels, self.loss, **self.loss_terms())

    def mean_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """This loss's mean over the batch (cross-entropy in one fused call, as before)."""
        return classification_loss(logits, labels, self.loss, **self.loss_terms())

    def name_suffix(self) -> str:
        """What the entry's default name adds: ``_gce`` (nothing for cross-entropy)."""
        return "" if self.loss == "ce" else f"_{self.loss}"


@dataclass
class TruncatableLossOptions(LossOptions):
    """A per-example loss, and GCE's truncated variant (for recipes that fine-tune end to end
    with :func:`shiftlab.finetune.full_ft.finetune`)."""

    truncate: bool = param(
        False, "GCE only: the truncated L_q loss, pruning examples with p_y <= k (TruncatedLoss)",
        added_later=True,
    )  # fmt: skip
    k: float = param(
        0.5, "the truncation threshold on p_y (Truncated-Loss' k)", within="(0, 1)",
        added_later=True,
    )  # fmt: skip
    prune_start: int = param(
        40, "the first epoch (1-based) after which the truncation prunes (CIFAR-10's 40)",
        within="[1, inf)", added_later=True,
    )  # fmt: skip
    prune_every: int = param(
        10, "epochs between prunings (the reference's 10)", within="[1, inf)", added_later=True
    )

    def loss_params(self) -> dict[str, object]:
        params = super().loss_params()
        return {**params, "truncate": True, "k": self.k} if self.truncate else params

    def name_suffix(self) -> str:
        return super().name_suffix() + ("_truncated" if self.truncate else "")

    def check_loss(self) -> None:
        """Raise a one-line ConfigError for a truncation of a loss other than GCE."""
        if self.truncate and self.loss != "gce":
            raise ConfigError(
                f"truncate: true truncates GCE's L_q loss; set loss: gce, got {self.loss}"
            )

    def prunes_after(self, epoch: int) -> bool:
        """Whether the truncation prunes after 1-based ``epoch`` (the reference's
        ``(epoch + 1) >= start_prune and (epoch + 1) % 10 == 0`` with 0-based epochs)."""
        return self.truncate and epoch >= self.prune_start and epoch % self.prune_every == 0


class Truncation:
    """The truncated L_q loss's per-example weights (``AlanChou/Truncated-Loss``
    ``TruncatedLoss``): all 1 at first; at each pruning, ``w_i = 1[p_{y_i} > k]`` from the
    current model, i.e. ``L_q(x_i) < L_q(k)``; the loss of a batch is the mean over it of
    ``w_i (L_q(x_i) - L_q(k))``. The weights are saved in training checkpoints."""

    def __init__(self, n: int, q: float, k: float) -> None:
        self.weights = np.ones(n, dtype=np.float32)
        self.q, self.k = q, k

    def loss(self, p_true: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """Mean truncated loss of examples at ``index`` with label probabilities ``p_true``."""
        weights = torch.as_tensor(self.weights[index], device=p_true.device)
        lq = (1 - p_true**self.q) / self.q
        lq_k = (1 - self.k**self.q) / self.q
        return (weights * (lq - lq_k)).mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": torch.from_numpy(self.weights.copy())}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.weights = state["weights"].numpy().copy()

    def prune(self, p_true: np.ndarray) -> None:
        """Keep (weight 1) exactly the examples whose label probability exceeds ``k``."""
        self.weights = (np.asarray(p_true) > self.k).astype(np.float32)
