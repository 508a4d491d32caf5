"""Recipes that train a head on encoder features are refused on a language model (and the
reverse) before anything runs, naming what the backbone lacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shiftlab.checks import check_recipes
from shiftlab.errors import ConfigError

LM = SimpleNamespace(name="smollm2", modality="text", kind="causal_lm", has_text_side=False)
ENCODER = SimpleNamespace(name="minilm", modality="text", kind="encoder", has_text_side=True)


def config(*recipes: str) -> SimpleNamespace:
    return SimpleNamespace(recipes=[SimpleNamespace(name=r, kind=r) for r in recipes])


@pytest.mark.parametrize("recipe", ["linear_probe", "full_ft", "lp_ft", "jtt", "model_soup"])
def test_encoder_recipes_are_refused_on_a_language_model(recipe: str) -> None:
    with pytest.raises(ConfigError, match=f"recipe '{recipe}' needs an encoder backbone"):
        check_recipes(config(recipe), LM)


def test_each_kind_keeps_its_own_recipes() -> None:
    check_recipes(config("zero_shot", "sft", "lora", "wise_ft"), LM)
    check_recipes(config("zero_shot", "linear_probe", "full_ft", "flyp", "wise_ft"), ENCODER)
    with pytest.raises(ConfigError, match="recipe 'lora' needs a causal language model"):
        check_recipes(config("lora"), ENCODER)
