import pytest
import torch
from recipe_helpers import run_recipe

from shiftlab.errors import ConfigError
from shiftlab.evaluate import predictor_logits
from shiftlab.finetune.wise_ft import WiseFTConfig, interpolate


def test_end_points_are_the_zero_shot_and_fine_tuned_models(
    make_context, tiny_benchmark, tiny_backbone
):
    (finetuned,), _ = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "full_ft", name="full_ft"
    )
    (zero,), _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "zero_shot")
    options = WiseFTConfig(alphas=[0.0, 0.5, 1.0])
    ctx = make_context(tiny_benchmark, tiny_backbone, {"full_ft": finetuned}, name="wise_ft")
    from shiftlab.registry import FINETUNE

    at0, half, at1 = FINETUNE["wise_ft"].obj(ctx, options)
    assert [p.name for p in (at0, half, at1)] == [
        "wise_ft[alpha=0]",
        "wise_ft[alpha=0.5]",
        "wise_ft[alpha=1]",
    ]
    for split in tiny_benchmark.eval_splits():
        logits = {
            n: predictor_logits(p, split, ctx.cache)
            for n, p in {"0": at0, "1": at1, "zs": zero, "ft": finetuned}.items()
        }
        assert torch.equal(logits["0"], logits["zs"])
        assert torch.equal(logits["1"], logits["ft"])
    # alpha 0.5 is the mean of every weight, the head included
    zs_state, ft_state = zero.model.state_dict(), finetuned.model.state_dict()
    for key, value in half.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (zs_state[key] + ft_state[key]) / 2)
    # Two encoder passes per split: the pretrained weights (alpha 0 and zero-shot share them)
    # and the fine-tuned weights (alpha 1 and full_ft share them).
    assert ctx.cache.passes["id_val"] == 2


def test_interpolation_formula_and_integer_buffers():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(5)}
    mixed = interpolate(a, b, 0.25)
    torch.testing.assert_close(mixed["w"], torch.tensor([1.0, 3.0]))
    assert mixed["n"] == 5
    with pytest.raises(ConfigError, match="different weights"):
        interpolate({"x": torch.zeros(1)}, b, 0.5)


def test_alphas_outside_the_unit_interval_are_refused():
    with pytest.raises(ConfigError, match="alphas must be in"):
        WiseFTConfig(alphas=[1.5])
