"""Models whose logits are a function of other models' logits: temperature scaling, ensembles.

A :class:`Combination` keeps its members and a ``combine`` rule, so the evaluator can score it
from the members' cached features without running any encoder again; ``forward`` runs the
members on raw inputs (for test-time adaptation and export).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn


class Combination(nn.Module):
    """Logits = ``combine([member(x) for member in members])``."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """Combined logits (N, K) from each member's logits (N, K)."""
        raise NotImplementedError

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.combine([member(inputs) for member in self.members])


class TemperatureScaled(Combination):
    """One model with its logits divided by a temperature ``T``."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__([model])
        self.temperature = float(temperature)

    def combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        return logits[0] / self.temperature


class CalibratedEnsemble(Combination):
    """Members temperature-scaled on their own, then combined per example.

    ``rule="average"``: log of the mean calibrated probability vector. ``rule="confidence"``:
    the calibrated log-probabilities of the member most confident on that example.
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        temperatures: Sequence[float],
        rule: Literal["average", "confidence"] = "average",
    ) -> None:
        super().__init__(members)
        self.temperatures = [float(t) for t in temperatures]
        self.rule = rule

    def combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        log_probs = torch.stack(
            [
                torch.log_softmax(z / t, dim=-1)
                for z, t in zip(logits, self.temperatures, strict=True)
            ]
        )  # (M, N, K)
        if self.rule == "average":
            return torch.logsumexp(log_probs, dim=0) - torch.log(torch.tensor(len(logits)))
        most_confident = log_probs.max(dim=-1).values.argmax(dim=0)  # (N,)
        return log_probs[most_confident, torch.arange(log_probs.shape[1])]
