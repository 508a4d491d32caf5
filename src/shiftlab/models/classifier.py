"""Classifier = featurizer + linear head; Predictor = a named classifier a recipe produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class Classifier(nn.Module):
    """A featurizer (inputs -> features of shape (B, D)) followed by a linear head (D -> K)."""

    def __init__(self, featurizer: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.head = head

    def forward(self, inputs: Any) -> torch.Tensor:
        """Logits of shape (B, K)."""
        return self.head(self.featurizer(inputs))


def linear_head(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    """An ``nn.Linear`` holding ``weight`` (K, D) and ``bias`` (K,), zeros when None."""
    num_classes, dim = weight.shape
    head = nn.Linear(dim, num_classes)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias if bias is not None else torch.zeros(num_classes))
    return head


# Record keys of a standard model trained on the ID data (a probe, plain fine-tuning, ERM): the
# default baselines of effective robustness. Robustness interventions never carry them.
STANDARD = {"standard": True}


@dataclass
class Predictor:
    """A named model to evaluate.

    Attributes:
        name: unique model name in the records, e.g. ``wise_ft[alpha=0.5]``.
        recipe: the recipe that made it.
        model: the classifier; head-only predictors share the pretrained featurizer.
        params: the hyperparameters that distinguish it (``{"alpha": 0.5}``), for the records.
        save: whether the run directory keeps its weights (False for cheap derived models).
        info: extra record keys (e.g. ``{"selected_by": "id_val_accuracy"}``).
        examples: per training example values (N,) by column name (co-teaching's kept
            flags), written with the example ids to ``curation/<name>.csv``.
    """

    name: str
    recipe: str
    model: Classifier
    params: dict[str, Any] = field(default_factory=dict)
    save: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)
