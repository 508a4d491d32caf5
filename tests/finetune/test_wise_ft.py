import pytest
import torch
from recipe_helpers import run_recipe

from shiftlab.errors import ConfigError
from shiftlab.evaluate import predictor_logits
from shiftlab.finetune.wise_ft import WiseFTOptions, interpolate


def test_end_points_are_the_zero_shot_and_fine_tuned_models(
    make_context, tiny_benchmark, tiny_backbone
):
    (finetuned,), _ = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "full_ft", name="full_ft"
    )
    (zero,), _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "zero_shot")
    options = WiseFTOptions(alphas=[0.0, 0.5, 1.0], select=False)
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


def test_selection_picks_the_best_id_val_alpha_and_labels_the_fixed_one(
    make_context, tiny_benchmark, tiny_backbone
):
    (finetuned,), _ = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "full_ft", name="full_ft"
    )
    ctx = make_context(tiny_benchmark, tiny_backbone, {"full_ft": finetuned}, name="wise_ft")
    from shiftlab.registry import FINETUNE

    made = {p.name: p for p in FINETUNE["wise_ft"].obj(ctx, WiseFTOptions(alphas=[0.0, 0.5, 1.0]))}
    val = tiny_benchmark.val
    accuracy = {a: ctx.accuracy(made[f"wise_ft[alpha={a:g}]"].model, val) for a in (0.0, 0.5, 1.0)}
    selected = made["wise_ft[val_selected]"]
    assert selected.params["selection"] == "id_val_accuracy"
    assert accuracy[selected.params["alpha"]] == max(accuracy.values())
    first_best = next(a for a in (0.0, 0.5, 1.0) if accuracy[a] == max(accuracy.values()))
    assert selected.params["alpha"] == first_best  # ties go to the first alpha of the grid
    fixed = made["wise_ft[fixed_0.5]"]
    assert fixed.params == {"alpha": 0.5, "finetuned": "full_ft", "selection": "paper_default"}
    for split in tiny_benchmark.eval_splits():
        assert torch.equal(
            ctx.logits(fixed.model, split), ctx.logits(made["wise_ft[alpha=0.5]"].model, split)
        )


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
        WiseFTOptions(alphas=[1.5])
