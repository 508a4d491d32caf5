"""Every registered recipe, on tiny real data: it runs, its outputs are well formed, it is
deterministic, and it leaves the pretrained model untouched."""

import pytest
import torch
from recipe_helpers import run_recipe

from shiftlab.checks import capabilities
from shiftlab.evaluate import predictor_logits
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.registry import FINETUNE


@pytest.mark.parametrize("recipe", FINETUNE.names())
def test_recipe_conforms(recipe, make_context, tiny_benchmark, tiny_backbone):
    needs = FINETUNE[recipe].requires
    if needs and not needs & capabilities(tiny_backbone):
        pytest.skip(f"{recipe} runs on {', '.join(sorted(needs))} (tests/lm/test_lm_runs.py)")
    before = weights_fingerprint(tiny_backbone.featurizer)
    first, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, recipe)
    assert first, f"{recipe} made no predictor"
    names = [p.name for p in first]
    assert len(set(names)) == len(names)
    assert all(
        n.startswith(recipe) and p.recipe == recipe for n, p in zip(names, first, strict=True)
    )
    k = tiny_benchmark.num_classes
    logits = {}
    for p in first:
        for split in tiny_benchmark.eval_splits():
            out = predictor_logits(p, split, ctx.cache)
            assert out.shape == (len(split), k)
            assert torch.isfinite(out).all()
            logits[p.name, split.name] = out
    assert weights_fingerprint(tiny_backbone.featurizer) == before, "pretrained model modified"

    second, ctx2 = run_recipe(make_context, tiny_benchmark, tiny_backbone, recipe)
    for p in second:
        for split in tiny_benchmark.eval_splits():
            assert torch.equal(predictor_logits(p, split, ctx2.cache), logits[p.name, split.name])
