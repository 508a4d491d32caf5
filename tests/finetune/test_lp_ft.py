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


def test_the_head_gets_no_weight_decay(make_context, tiny_benchmark, tiny_backbone, monkeypatch):
    import shiftlab.training.trainer as trainer

    made = []
    original = trainer.make_optimizer

    def spy(params, cfg):
        made.append(original(params, cfg))
        return made[-1]

    monkeypatch.setattr(trainer, "make_optimizer", spy)
    options = default_options("lp_ft")
    (predictor,), _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "lp_ft", options)
    head = {id(p) for p in predictor.model.head.parameters()}
    decay = {id(p): g["weight_decay"] for g in made[0].param_groups for p in g["params"]}
    assert all(decay[i] == 0.0 for i in head)
    featurizer = [decay[id(p)] for p in predictor.model.featurizer.parameters()]
    assert featurizer and all(d == options.weight_decay == 0.1 for d in featurizer)
    # decay_head: true puts the head back under the same decay
    made.clear()
    options.decay_head = True
    (predictor,), _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "lp_ft", options)
    assert {g["weight_decay"] for g in made[0].param_groups} == {0.1}


def test_linear_probe_and_lp_ft_share_one_probe_fit(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    import shiftlab.finetune.linear_probe as lp

    fits = []
    original = lp.fit_linear_probe

    def counting(*args):
        fits.append(args[5])
        return original(*args)

    monkeypatch.setattr(lp, "fit_linear_probe", counting)
    monkeypatch.setattr(lp, "_fitted", {})
    options = default_options("lp_ft")
    options.epochs = 1
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "linear_probe", options.probe)
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "lp_ft", options)
    assert len(fits) == 1  # the same features, labels, options and seed: fitted once
    options.probe.num_c += 1
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "lp_ft", options)
    assert len(fits) == 2  # other options: fitted again
