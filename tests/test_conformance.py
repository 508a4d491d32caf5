"""Every registered entry of every family through its family's conformance check
(:mod:`shiftlab.testing`): a new method is covered here with no edit."""

from __future__ import annotations

import pytest

from shiftlab import config, testing
from shiftlab.features import FeatureCache
from shiftlab.registry import (
    ADAPT,
    AUDITS,
    BACKBONES,
    CURATE,
    CURATE_ACTIONS,
    DATASETS,
    FINETUNE,
    MEMBERSHIP,
    REGISTRIES,
    TRANSFORMS,
    UNLEARN,
)

# Loaders whose fast options read the local data folder (skipped without one).
NEEDS_DATA_DIR = {e.name for e in DATASETS if callable(e.fast)}


def checked(check, *args):
    try:
        check(*args)
    except testing.Skip as why:
        pytest.skip(str(why))


@pytest.fixture
def contexts(make_context, tiny_benchmark):
    """``make_context(name, predictors)`` over the tiny real benchmark, per backbone."""

    def over(backbone):
        return lambda name, known: make_context(tiny_benchmark, backbone, known, name=name)

    return over


@pytest.mark.parametrize("name", FINETUNE.names())
def test_recipe_on_a_text_encoder(name, contexts, tiny_backbone):
    checked(testing.check_recipe, name, contexts(tiny_backbone), tiny_backbone)


@pytest.fixture(scope="module")
def image_data():
    """Contextual-reliability images (3 x 8 x 8 arrays, annotated) and a small CNN."""
    import torch

    from shiftlab.config.sections import BackboneConfig
    from shiftlab.data.build import load_benchmark
    from shiftlab.models import load_backbone

    benchmark = load_benchmark(
        config.parse(
            {"data": {"kind": "contextual_reliability", **DATASETS["contextual_reliability"].fast}}
        ).data
    )
    backbone = load_backbone(
        BackboneConfig(name="small_cnn"), torch.device("cpu"), input_shape=benchmark.input_shape
    )
    return benchmark, backbone


# The recipes that need more than labelled data (a pool, annotations), and full_ft beside them;
# the rest run on images in tests/finetune (a full pass here would add minutes).
IMAGE_RECIPES = ["full_ft", *[e.name for e in FINETUNE if e.needs]]


@pytest.mark.parametrize("name", IMAGE_RECIPES)
def test_recipe_on_an_image_model(name, make_context, image_data):
    benchmark, backbone = image_data

    def context(recipe, known):
        return make_context(benchmark, backbone, known, name=recipe)

    checked(testing.check_recipe, name, context, backbone)


@pytest.fixture(scope="module")
def tiny_lm(tiny_benchmark, tmp_path_factory):
    """A tiny random Llama (character tokenizer) loaded as ``hf_causal_lm:<folder>``, and the
    tiny benchmark as prompts of a sentiment task."""
    import torch

    from shiftlab.config.sections import BackboneConfig, TaskConfig
    from shiftlab.lm.backbone import tiny_causal_lm_folder
    from shiftlab.lm.tasks import lm_benchmark
    from shiftlab.models import load_backbone

    options = tiny_causal_lm_folder(tmp_path_factory.mktemp("tiny-lm"))
    backbone = load_backbone(BackboneConfig(**options), torch.device("cpu"))
    words = {"negative": " bad", "positive": " good"}
    task = TaskConfig(template="Review: {text}\nSentiment:", label_words=words)
    return lm_benchmark(tiny_benchmark, task, [], seed=0), backbone


@pytest.mark.parametrize("name", FINETUNE.names())
def test_recipe_on_a_language_model(name, make_context, tiny_lm):
    benchmark, backbone = tiny_lm

    def context(recipe, known):
        return make_context(benchmark, backbone, known, name=recipe)

    checked(testing.check_recipe, name, context, backbone)


@pytest.mark.parametrize("name", ADAPT.names())
def test_adapter(name):
    testing.check_adapter(name)


@pytest.mark.parametrize("name", CURATE.names())
def test_curation_score(name, tiny_benchmark, tiny_backbone, tmp_path):
    cache = FeatureCache(tmp_path / "cache", batch_size=32)
    checked(testing.check_curation_score, name, tiny_benchmark, tiny_backbone, cache)


@pytest.mark.parametrize("name", CURATE_ACTIONS.names())
def test_curation_action(name, tiny_benchmark, tiny_backbone, tmp_path):
    cache = FeatureCache(tmp_path / "cache", batch_size=32)
    testing.check_curation_action(name, tiny_benchmark, tiny_backbone, cache)


@pytest.mark.parametrize("name", UNLEARN.names())
def test_unlearning_method(name):
    testing.check_unlearning_method(name)


@pytest.mark.parametrize("name", MEMBERSHIP.names())
def test_membership_score(name):
    testing.check_membership_score(name)


@pytest.mark.parametrize("name", AUDITS.names())
def test_audit(name):
    testing.check_audit(name)


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_transform(name):
    testing.check_transform(name)


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset(name, request):
    data_dir = request.getfixturevalue("data_dir") if name in NEEDS_DATA_DIR else None
    checked(testing.check_dataset, name, data_dir)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone(name, tmp_path):
    checked(testing.check_backbone, name, tmp_path)


@pytest.mark.parametrize("entry", [e for r in REGISTRIES.values() for e in r], ids=lambda e: e.name)
def test_entry_options_have_help_and_ranges_and_fast_options_build(entry):
    testing.options_round_trip(entry)
    testing.fast_is_valid(entry)
