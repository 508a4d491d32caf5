import torch
import torch.nn.functional as F
from recipe_helpers import run_recipe

from shiftlab.evaluate import predictor_logits


def test_predicts_the_class_whose_prompt_is_most_similar(
    make_context, tiny_benchmark, tiny_backbone
):
    (predictor,), ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "zero_shot")
    encoder = tiny_backbone.featurizer
    with torch.no_grad():
        prompts = F.normalize(encoder(["a negative review.", "a positive review."]), dim=-1)
        inputs = F.normalize(encoder(tiny_benchmark.test.inputs), dim=-1)
    expected = (inputs @ prompts.T).argmax(dim=1)
    logits = predictor_logits(predictor, tiny_benchmark.test, ctx.cache)
    assert torch.equal(logits.argmax(dim=1), expected)
    # logits are the cosine similarities times the backbone's logit scale
    torch.testing.assert_close(
        logits, tiny_backbone.logit_scale * inputs @ prompts.T, atol=1e-4, rtol=0
    )
