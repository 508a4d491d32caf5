"""Run registered recipes on tiny data, with training shrunk to a few steps."""

from __future__ import annotations

import dataclasses
from typing import Any

from shiftlab.checks import references
from shiftlab.registry import FINETUNE
from shiftlab.typed import NoOptions

TINY = {"epochs": 1, "batch_size": 16, "warmup_steps": 1, "num_c": 3, "epochs_range": [1, 2]}


def tiny_options(config: Any) -> Any:
    """The recipe's default options with training cut to one short epoch."""
    if config is None or isinstance(config, NoOptions):
        return config
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in TINY:
            changes[f.name] = TINY[f.name]
        elif dataclasses.is_dataclass(value):
            changes[f.name] = tiny_options(value)
    return dataclasses.replace(config, **changes)


def default_options(recipe: str) -> Any:
    """Tiny default options of a registered recipe."""
    entry = FINETUNE[recipe]
    return tiny_options(entry.options()) if entry.options is not None else None


def run_recipe(make_context, benchmark, backbone, recipe, options=None, seed=0, name=None):
    """Run ``recipe`` (and, first, the recipes its references name by default); return its
    predictors."""
    options = options if options is not None else default_options(recipe)
    known = {}
    for target in references(options):  # default references name recipes: make them first
        made, _ = run_recipe(make_context, benchmark, backbone, target, seed=seed, name=target)
        known.update({p.name: p for p in made})
    ctx = make_context(benchmark, backbone, known, name=name or recipe, seed=seed)
    return list(FINETUNE[recipe].obj(ctx, options)), ctx
