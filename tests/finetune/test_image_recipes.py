"""Every recipe on images: timm (no text side) and open_clip (two towers) backbones."""

import dataclasses

import pytest
import torch
from recipe_helpers import default_options, run_recipe

from shiftlab.errors import ConfigError
from shiftlab.evaluate import predictor_logits
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.registry import FINETUNE
from shiftlab.testing import with_pool

TEXT_SIDE = {name for name in FINETUNE.names() if "text_side" in FINETUNE[name].kinds}


def image_options(recipe, backbone):
    options = default_options(recipe)
    if recipe == "calibrated_ensemble" and not backbone.has_text_side:
        options = dataclasses.replace(options, members=["linear_probe", "full_ft"])
    return options


@pytest.mark.parametrize("which", ["timm_backbone", "clip_backbone"])
@pytest.mark.parametrize("recipe", FINETUNE.names())
def test_recipe_conforms_on_images(recipe, which, request, make_context, tiny_image_benchmark):
    backbone = request.getfixturevalue(which)
    if "causal_lm" in FINETUNE[recipe].kinds and "text_side" not in FINETUNE[recipe].kinds:
        pytest.skip(f"{recipe} runs on language models")
    if recipe in TEXT_SIDE and not backbone.has_text_side:
        with pytest.raises(ConfigError, match="no text side"):
            run_recipe(make_context, tiny_image_benchmark, backbone, recipe)
        return
    if "annotations" in FINETUNE[recipe].needs:
        pytest.skip(f"{recipe} masks regions of image arrays (test_conformance runs it on them)")
    if "unlabeled" in FINETUNE[recipe].needs:  # the last OOD domain as the pool
        tiny_image_benchmark = with_pool(tiny_image_benchmark)
    before = weights_fingerprint(backbone.featurizer)
    options = image_options(recipe, backbone)
    first, ctx = run_recipe(make_context, tiny_image_benchmark, backbone, recipe, options)
    assert first and all(p.recipe == recipe for p in first)
    k = tiny_image_benchmark.num_classes
    for p in first[:3]:
        for split in tiny_image_benchmark.eval_splits():
            out = predictor_logits(p, split, ctx.cache)
            assert out.shape == (len(split), k) and torch.isfinite(out).all()
    assert weights_fingerprint(backbone.featurizer) == before, "pretrained model modified"
    second, ctx2 = run_recipe(make_context, tiny_image_benchmark, backbone, recipe, options)
    split = tiny_image_benchmark.test
    assert torch.equal(
        predictor_logits(first[0], split, ctx.cache), predictor_logits(second[0], split, ctx2.cache)
    )


@pytest.mark.parametrize("which", ["timm_backbone", "clip_backbone"])
def test_wise_ft_end_points_on_an_image_model(which, request, make_context, tiny_image_benchmark):
    backbone = request.getfixturevalue(which)
    options = default_options("wise_ft")
    options.alphas = [0.0, 0.5, 1.0]
    made, ctx = run_recipe(make_context, tiny_image_benchmark, backbone, "wise_ft", options)
    finetuned = ctx.predictor("full_ft").model
    test = tiny_image_benchmark.test
    by_alpha = {p.params["alpha"]: p for p in made if "selection" not in p.params}
    torch.testing.assert_close(
        predictor_logits(by_alpha[1.0], test, ctx.cache), ctx.logits(finetuned, test)
    )
    zero = ctx.zero_shot_head() if backbone.has_text_side else finetuned.head
    torch.testing.assert_close(
        predictor_logits(by_alpha[0.0], test, ctx.cache), ctx.logits(ctx.head_only(zero), test)
    )
    middle = predictor_logits(by_alpha[0.5], test, ctx.cache)
    assert not torch.allclose(middle, ctx.logits(finetuned, test))
