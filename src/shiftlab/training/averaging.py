"""Weighted averages of a model's weights along its training trajectory.

:class:`MovingAverage` keeps ``sum_t w_t theta_t / sum_t w_t`` over the weights ``theta_0`` (at
construction) and ``theta_t`` after each :meth:`~MovingAverage.update` (the trainer's
``on_step``), online: the t-th update moves the average by the relative weight
``w_t / sum_{s<=t} w_s``. :class:`BetaMovingAverage` is CLIPood's (Shu et al., arXiv 2302.00864;
``thuml/CLIPood``, ``engine.py`` ``GeneralMovingAverage`` and ``main.py``): ``w_t`` is the
Beta(beta, beta) density at ``(t + 0.5) / (T + 1)`` for ``t = 0..T``, ``T`` the number of
optimiser steps, so with beta < 1 both the start and the end of training weigh most.

Every finite floating-point entry of the state dict is averaged (parameters and buffers such as
normalisation statistics); other entries (integer ids, counters, masks holding -inf) are the
model's own. The
average is kept in float32 on the model's device, and is resumable: the object has
``state_dict`` / ``load_state_dict``, so it can be passed to the trainer's ``stateful``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class MovingAverage:
    """The running weighted average of ``model``'s weights: ``theta_0`` (now) has weight
    ``weight(0)``, the weights after the t-th :meth:`update` weight ``weight(t)``."""

    def __init__(self, model: nn.Module, weight: Callable[[int], float]) -> None:
        self.model = model
        self.weight = weight
        self.steps = 0
        self.total_weight = float(weight(0))
        if not self.total_weight > 0:
            raise ValueError(f"the weight of the initial model must be positive, got {weight(0)}")
        self.average = {
            key: value.detach().float().clone()
            for key, value in model.state_dict().items()
            if value.is_floating_point() and bool(torch.isfinite(value).all())
        }

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights in as the next step's."""
        self.steps += 1
        w = float(self.weight(self.steps))
        self.total_weight += w
        share = w / self.total_weight  # = r / (1 + r), r = w_t / sum_{s<t} w_s (the reference)
        state = self.model.state_dict()
        for key, average in self.average.items():
            average.add_(state[key].detach().float() - average, alpha=share)

    def state(self) -> dict[str, torch.Tensor]:
        """A state dict of the model holding the average (cast to each entry's dtype)."""
        return {
            key: self.average[key].to(value.dtype) if key in self.average else value.detach()
            for key, value in self.model.state_dict().items()
        }

    def averaged_into(self, module: nn.Module) -> nn.Module:
        """``module`` (a copy of the model) with the average loaded."""
        module.load_state_dict(self.state())
        return module

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "total_weight": self.total_weight, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.total_weight = float(state["total_weight"])
        for key, value in state["average"].items():
            self.average[key].copy_(value)


def beta_weights(beta: float, total_steps: int) -> Callable[[int], float]:
    """CLIPood's weight of step ``t``: the Beta(beta, beta) density at ``(t+0.5)/(T+1)``."""
    from scipy.stats import beta as beta_distribution

    density = beta_distribution(beta, beta)
    return lambda t: float(density.pdf((t + 0.5) / (total_steps + 1)))


class BetaMovingAverage(MovingAverage):
    """Beta moving average (BMA) over ``total_steps`` optimiser steps (CLIPood)."""

    def __init__(self, model: nn.Module, beta: float, total_steps: int) -> None:
        if beta <= 0 or total_steps < 0:
            raise ValueError(f"BMA needs beta > 0 and total_steps >= 0, got {beta}, {total_steps}")
        self.beta = beta
        self.total_steps = total_steps
        super().__init__(model, beta_weights(beta, total_steps))
