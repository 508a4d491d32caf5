import torch
from recipe_helpers import default_options, run_recipe

from shiftlab.finetune.linear_probe import probe_pretrained


def test_stage_two_starts_from_the_linear_probe_head(make_context, tiny_benchmark, tiny_backbone):
    options = default_options("lp_ft")
    options.lr = 1e-12  # stage 2 moves nothing measurable: the head stays the probe's
    (predictor,), ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "lp_ft", options)
    probe = probe_pretrained(ctx, options.probe)
    torch.testing.assert_close(predictor.model.head.weight, probe.weight, atol=1e-6, rtol=0)
    assert predictor.params["probe_C"] == probe.c


def test_defaults_train_in_eval_mode_at_a_lower_lr_than_full_ft():
    lp, ft = default_options("lp_ft"), default_options("full_ft")
    assert lp.eval_mode is True
    assert lp.lr < ft.lr
