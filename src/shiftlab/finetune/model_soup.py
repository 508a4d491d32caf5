"""Model soups: averaging weights of fine-tuned models (Wortsman et al., ICML 2022,
arXiv 2203.05482).

Follows ``mlfoundations/model-soups`` (``main.py``). The recipe trains its own ingredients, each
a fine-tuning (as ``full_ft``) from the same zero-shot-initialised model. By default they come
from a seeded random hyperparameter search, as the paper's 72 CLIP ingredients do; the ranges
are those of the reference's ``hparam_info.json``: learning rate log-uniform in [1e-6, 1e-4],
weight decay log-uniform in [1e-4, 0.5], epochs uniform in 4..16, label smoothing 0 half of the
time and otherwise uniform in [0, 0.25]. (The reference also samples RandAugment and mixup, for
images; text has no such augmentation, so they are not drawn.) ``search: grid`` trains a grid of
learning rates x seeds instead; soups whose ingredients differ only by seed are named
``[uniform_seed_only]`` and ``[greedy_seed_only]``, since they are not the paper's soups. Then:

- uniform soup: the mean of every ingredient's weights, every state-dict entry included;
- greedy soup: ingredients sorted by ID val accuracy, best first; one pass adds an ingredient
  to the running uniform average ``soup * n/(n+1) + theta/(n+1)`` only when that strictly raises
  ID val accuracy.

Each ingredient and each soup is a predictor. Only the soups' weights are new (no training).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.full_ft import FullFTOptions, finetune, initial_head
from shiftlab.models.classifier import STANDARD, Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training.options import FAST
from shiftlab.typed import param

State = dict[str, torch.Tensor]


@dataclass
class ModelSoupOptions(FullFTOptions):
    """How the ingredients are drawn (each trained as full_ft) and which soups to make."""

    lr: float = param(2e-5, "learning rate of grid ingredients when lrs is not set")
    epochs: int = param(8, "epochs of grid ingredients (model-soups finetune.py)")
    batch_size: int = param(256, "examples per step (model-soups finetune.py)")
    search: Literal["random", "grid"] = param(
        "random", "random: the paper's hyperparameter search; grid: lrs x seeds"
    )
    ingredients: int = param(
        4, "random search: number of ingredients (the paper: 72)", within="[2, inf)"
    )
    lr_range: list[float] = param([1e-6, 1e-4], "random search: lr, log-uniform", within="(0, inf)")
    weight_decay_range: list[float] = param(
        [1e-4, 0.5], "random search: weight decay, log-uniform", within="(0, inf)"
    )
    epochs_range: list[int] = param(
        [4, 16], "random search: epochs, uniform integers", within="[1, inf)"
    )
    label_smoothing_max: float = param(
        0.25,
        "random search: label smoothing is 0 half the time, else uniform up to this",
        within="[0, 1)",
    )
    lrs: list[float] | None = param(
        None, "grid: learning rates; default [lr]", within="(0, inf)", nonempty=True, unique=True
    )
    seeds: list[int] = param(
        [0, 1, 2],
        "grid: training seeds (data order, dropout)",
        within="[0, 4294967295]",
        nonempty=True,
        unique=True,
    )
    soups: list[Literal["uniform", "greedy"]] = param(
        ["uniform", "greedy"], "soups to make", nonempty=True, unique=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search == "random" and self.lrs is not None:
            raise ConfigError("model_soup lrs (and seeds) apply to search: grid")
        if self.epoch_points:
            raise ConfigError("model_soup keeps no per-epoch weights: epoch_points must be false")
        count = self.ingredients if self.search == "random" else len(self.grid())
        if count < 2:
            raise ConfigError("model_soup needs at least two ingredients")
        for name in ("lr_range", "weight_decay_range", "epochs_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ConfigError(f"model_soup {name} must be [low, high] with 0 < low <= high")

    def grid(self) -> list[tuple[float, int]]:
        """(lr, seed) of every grid ingredient."""
        return [(lr, seed) for lr in (self.lrs or [self.lr]) for seed in self.seeds]

    @property
    def seed_only(self) -> bool:
        """Whether the ingredients differ only by their seed."""
        return self.search == "grid" and len(self.lrs or [self.lr]) == 1


def sample_ingredients(cfg: ModelSoupOptions, seed: int) -> list[dict[str, Any]]:
    """The random search: one hyperparameter draw per ingredient, the same for the same seed.

    Each draw holds ``lr``, ``weight_decay``, ``epochs``, ``label_smoothing`` and ``seed`` (the
    ingredient's training seed).
    """
    rng = np.random.default_rng([seed, 2203_05482])

    def log_uniform(low: float, high: float) -> float:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    draws = []
    for i in range(cfg.ingredients):
        smoothing = 0.0 if rng.random() < 0.5 else float(rng.uniform(0, cfg.label_smoothing_max))
        draws.append(
            {
                "lr": log_uniform(*cfg.lr_range),
                "weight_decay": log_uniform(*cfg.weight_decay_range),
                "epochs": int(rng.integers(cfg.epochs_range[0], cfg.epochs_range[1] + 1)),
                "label_smoothing": round(smoothing, 4),
                "seed": i,
            }
        )
    return draws


def ingredient_plan(cfg: ModelSoupOptions, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(name suffix, hyperparameters) of every ingredient."""
    if cfg.search == "random":
        return [(f"ingredient={d['seed']}", d) for d in sample_ingredients(cfg, seed)]
    return [(f"lr={lr:g},seed={s}", {"lr": lr, "seed": s}) for lr, s in cfg.grid()]


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


def ingredients(ctx: RecipeContext, cfg: ModelSoupOptions) -> dict[str, Any]:
    """Each ingredient's name -> (train it, its untrained model): the recipe's parts, which an
    executor may train in parallel (see :meth:`RecipeContext.part`)."""
    start = functools.cache(lambda: initial_head(ctx, cfg.head_init))

    def train_one(name: str, hyper: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        options = dataclasses.replace(
            cfg, **{k: v for k, v in hyper.items() if k in ("lr", "weight_decay", "epochs")}
        )
        model, result = finetune(
            ctx,
            copy.deepcopy(start()),
            options,
            label_smoothing=hyper.get("label_smoothing", cfg.label_smoothing),
            loss=cfg,
            seed=ctx.seed + hyper["seed"],
            description=name,
        )
        return model, result.selection

    def untrained() -> torch.nn.Module:
        return Classifier(ctx.trainable_copy(), copy.deepcopy(start()).to(ctx.device))

    return {
        f"{ctx.name}[{suffix}]": (
            functools.partial(train_one, f"{ctx.name}[{suffix}]", hyper),
            untrained,
            hyper,
        )
        for suffix, hyper in ingredient_plan(cfg, ctx.seed)
    }


@FINETUNE.register(
    "model_soup",
    options=ModelSoupOptions,
    parts=ingredients,
    kinds=("encoder",),
    fast={**FAST, "epochs_range": [1, 2]},
)
def model_soup(ctx: RecipeContext, cfg: ModelSoupOptions) -> Iterator[Predictor]:
    """Fine-tune ingredients from one start (a random hyperparameter search), then average
    their weights."""
    val = ctx.benchmark.val
    names, states, scores = [], [], []
    model = None
    for name, (make, untrained, hyper) in ingredients(ctx, cfg).items():
        model, selection = ctx.part(name, make, untrained)
        names.append(name)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        scores.append(ctx.accuracy(model, val))
        params = {**hyper, "ingredient": True, **robust_loss(cfg)}
        info = {**selection, **STANDARD}
        yield Predictor(name, "model_soup", model, params=params, save=False, info=info)

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
        label = f"{kind}_seed_only" if cfg.seed_only else kind
        params = {"soup": kind, "search": cfg.search, "ingredients": [names[i] for i in chosen]}
        params.update(robust_loss(cfg))
        yield Predictor(f"{ctx.name}[{label}]", "model_soup", soup.eval(), params=params)


def robust_loss(cfg: ModelSoupOptions) -> dict[str, object]:
    """The training loss for the records, when it is not cross-entropy."""
    return {} if cfg.loss == "ce" else cfg.loss_params()
