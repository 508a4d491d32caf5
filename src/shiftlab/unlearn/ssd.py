"""Selective Synaptic Dampening: shrink the parameters far more important to the forget set than
to the whole training set (Foster, Schoepf, Brintrup, AAAI 2024, arXiv 2308.07707).

Importance is the diagonal of the Fisher information estimated as in the reference: the squared
gradient of each batch's mean cross-entropy, averaged over batches (model in eval mode). With
``[]_D`` the importance on the full training set (retain + forget) and ``[]_Df`` on the forget
set, every parameter with ``[]_Df > alpha * []_D`` is multiplied by
``min(lambda * []_D / []_Df, 1)``; the others are left alone. No training step is taken.

Follows ``if-loops/selective-synaptic-dampening``: ``ssd.py`` ``ParameterPerturber``
(``calc_importance``, ``modify_weight`` with ``exponent = 1`` and ``lower_bound = 1``) and
``forget_random_main.py`` (``dampening_constant = 1``, ``selection_weighting = 10``, loaders of
128, ``full_train_dl`` the retain set followed by the forget set). The reference's full loader
runs unshuffled over the concatenation, so one batch mixes the end of the retain set with the
start of the forget set; here each set is batched on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.progress import progress
from shiftlab.registry import UNLEARN
from shiftlab.runtime import log
from shiftlab.typed import param
from shiftlab.unlearn.base import Data, Unlearner, epoch_batches, ready


@dataclass
class SSDOptions:
    """SSD's two constants (the reference's ResNet18 CIFAR settings)."""

    selection_weighting: float = param(
        10.0,
        "alpha: a parameter is dampened where forget importance > alpha * full importance",
        within="(0, inf)",
    )
    dampening_constant: float = param(
        1.0,
        "lambda: a selected parameter is scaled by min(lambda * full / forget, 1)",
        within="(0, inf)",
    )
    batch_size: int = param(
        128, "examples per importance batch (reference loaders: 128)", within="[1, inf)"
    )

    def __post_init__(self) -> None:
        if self.selection_weighting < 0 or self.dampening_constant < 0 or self.batch_size < 1:
            raise ConfigError(
                "ssd needs selection_weighting >= 0, dampening_constant >= 0 and batch_size >= 1"
            )


def importances(
    model: nn.Module, sets: Sequence[Data], batch_size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Mean over batches of the squared gradient of the batch-mean cross-entropy, per parameter.

    Args:
        model: the classifier (left in eval mode; its gradients are cleared after).
        sets: the sets read one after the other as one dataset, each in order.
        batch_size: examples per batch.
        device: where the batches go.

    Returns:
        ``{name: importance}`` for every parameter requiring grad, shaped like the parameter.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    totals = {n: torch.zeros_like(p) for n, p in named}
    batches = [
        (data, index) for data in sets for index in epoch_batches(np.arange(len(data)), batch_size)
    ]
    model.eval()
    with progress("unlearn.ssd importance", sum(len(d) for d in sets)) as advance:
        for data, index in batches:
            model.zero_grad(set_to_none=True)
            batch = ready(model, data, index, device, train=False)
            F.cross_entropy(model(batch.inputs), batch.labels).backward()
            for n, p in named:
                if p.grad is not None:
                    totals[n] += p.grad.detach() ** 2
            advance(len(index))
    model.zero_grad(set_to_none=True)
    return {n: total / max(1, len(batches)) for n, total in totals.items()}


@torch.no_grad()
def dampen_(
    params: dict[str, torch.Tensor],
    full: dict[str, torch.Tensor],
    forget: dict[str, torch.Tensor],
    selection_weighting: float,
    dampening_constant: float,
) -> dict[str, int]:
    """SSD's ``modify_weight``, in place: where ``forget > alpha * full``, multiply the parameter
    by ``min(lambda * full / forget, 1)``.

    Args:
        params: ``{name: parameter}`` to dampen in place.
        full: importances on the full training set, same names and shapes.
        forget: importances on the forget set.
        selection_weighting: alpha.
        dampening_constant: lambda.

    Returns:
        ``{name: number of dampened entries}``.
    """
    counts = {}
    for name, p in params.items():
        if name not in full or name not in forget:
            continue
        selected = forget[name] > selection_weighting * full[name]
        factor = (dampening_constant * full[name][selected] / forget[name][selected]).clamp(max=1)
        p[selected] = p[selected] * factor.to(p.dtype)
        counts[name] = int(selected.sum())
    return counts


@UNLEARN.register(
    "ssd",
    options=SSDOptions,
    kinds=("encoder",),
    fast={"batch_size": 8, "selection_weighting": 1.0},
)
class SSD(Unlearner):
    """Dampen a copy's parameters by their forget-set and full-set importances."""

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options = self.options
        torch.manual_seed(self.seed)
        student = self.copy(model)
        forget_importance = importances(student, [forget], options.batch_size, self.device)
        full_importance = importances(student, [retain, forget], options.batch_size, self.device)
        params = dict(student.named_parameters())
        dampened = dampen_(
            params,
            full_importance,
            forget_importance,
            options.selection_weighting,
            options.dampening_constant,
        )
        total = sum(p.numel() for p in params.values())
        log(
            f"ssd: {sum(dampened.values()):,} of {total:,} parameters dampened (forget importance "
            f"> {options.selection_weighting:g} x full importance)"
        )
        return student.eval()
