"""Model soups: averaging weights of fine-tuned models (Wortsman et al., ICML 2022,
arXiv 2203.05482).

Follows ``mlfoundations/model-soups`` (``main.py``). The recipe trains its own ingredients: one
fine-tuning (as ``full_ft``, from the same zero-shot-initialised model) per point of a grid of
learning rates and seeds. Then:

- uniform soup: the mean of every ingredient's weights, every state-dict entry included;
- greedy soup: ingredients sorted by ID val accuracy, best first; one pass adds an ingredient
  to the running uniform average ``soup * n/(n+1) + theta/(n+1)`` only when that strictly raises
  ID val accuracy.

Each ingredient and each soup is a predictor. Only the soups' weights are new (no training).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from shiftlab.config import param
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.full_ft import FullFTConfig, finetune, initial_head
from shiftlab.models.classifier import Predictor
from shiftlab.registry import FINETUNE

State = dict[str, torch.Tensor]


@dataclass
class ModelSoupConfig(FullFTConfig):
    """The ingredients' grid (each trained as full_ft) and which soups to make."""

    lr: float = param(2e-5, "learning rate when lrs is not set (model-soups finetune.py)")
    epochs: int = param(8, "epochs per ingredient (model-soups finetune.py)")
    batch_size: int = param(256, "examples per step (model-soups finetune.py)")
    lrs: list[float] | None = param(None, "learning rates of the grid; default [lr]")
    seeds: list[int] = param([0, 1, 2], "training seeds of the grid (data order, dropout)")
    soups: list[Literal["uniform", "greedy"]] = param(["uniform", "greedy"], "soups to make")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.grid()) < 2:
            raise ConfigError("model_soup needs at least two ingredients (lrs x seeds)")

    def grid(self) -> list[tuple[float, int]]:
        """(lr, seed) of every ingredient."""
        return [(lr, seed) for lr in (self.lrs or [self.lr]) for seed in self.seeds]


def running_average(soup: State, theta: State, n: int) -> State:
    """Add ``theta`` to a uniform average of ``n`` ingredients: ``soup*n/(n+1) + theta/(n+1)``."""
    return {
        k: soup[k] * (n / (n + 1)) + theta[k] * (1 / (n + 1)) if v.is_floating_point() else v
        for k, v in soup.items()
    }


def uniform_soup(states: list[State]) -> State:
    """The mean of every floating-point entry; other entries from the first ingredient."""
    soup = states[0]
    for n, theta in enumerate(states[1:], start=1):
        soup = running_average(soup, theta, n)
    return soup


def greedy_soup(
    states: list[State], scores: list[float], score: Callable[[State], float]
) -> tuple[State, list[int], float]:
    """Greedy soup: best ingredient first, then add each (by descending score) if it helps.

    Args:
        states: ingredient weights.
        scores: each ingredient's held-out (ID val) accuracy.
        score: held-out accuracy of a candidate soup's weights.

    Returns:
        the soup, the indices of the ingredients in it (in order added), and its score.
    """
    order = sorted(range(len(states)), key=lambda i: -scores[i])
    soup, chosen, best = states[order[0]], [order[0]], scores[order[0]]
    for i in order[1:]:
        candidate = running_average(soup, states[i], len(chosen))
        value = score(candidate)
        if value > best:  # strictly better, as the reference
            soup, chosen, best = candidate, [*chosen, i], value
    return soup, chosen, best


@FINETUNE.register("model_soup", config=ModelSoupConfig)
def model_soup(ctx: RecipeContext, cfg: ModelSoupConfig) -> Iterator[Predictor]:
    """Fine-tune a grid of ingredients from one start, then average their weights."""
    val = ctx.benchmark.val
    start = initial_head(ctx, cfg.head_init)

    names, states, scores = [], [], []
    model = None
    for lr, seed in cfg.grid():
        name = f"{ctx.name}[lr={lr:g},seed={seed}]"
        options = dataclasses.replace(cfg, lr=lr)
        model, result = finetune(
            ctx,
            copy.deepcopy(start),
            options,
            label_smoothing=cfg.label_smoothing,
            loss=cfg.loss,
            eps=cfg.eps,
            seed=ctx.seed + seed,
            description=name,
        )
        names.append(name)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        scores.append(ctx.accuracy(model, val))
        params = {"lr": lr, "seed": seed, "ingredient": True}
        yield Predictor(name, "model_soup", model, params=params, save=False, info=result.selection)

    assert model is not None
    scratch = copy.deepcopy(model)

    def soup_accuracy(state: State) -> float:
        scratch.load_state_dict(state)
        return ctx.accuracy(scratch, val)

    for kind in cfg.soups:
        if kind == "uniform":
            state, chosen = uniform_soup(states), list(range(len(states)))
        else:
            state, chosen, _ = greedy_soup(states, scores, soup_accuracy)
        soup = copy.deepcopy(model)
        soup.load_state_dict(state)
        params = {"soup": kind, "ingredients": [names[i] for i in chosen]}
        yield Predictor(f"{ctx.name}[{kind}]", "model_soup", soup.eval(), params=params)
